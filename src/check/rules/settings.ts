// lameduck's own settings as the manifest passes them in LAMEDUCK_* variables.

import { MAX_TIMER_MS } from '../../contract.js'
import { get, list, record, text } from '../model.js'
import { seconds } from '../timeline.js'
import { SIGNALS_ENV } from './signals.js'
import type { Rule } from './types.js'

/** Signals no process can handle. */
const UNCATCHABLE = new Set(['SIGKILL', 'SIGSTOP'])

export const lameduckEnvInvalid: Rule = {
  id: 'lameduck-env-invalid',
  severity: 'error',
  scope: 'lameduck',
  summary:
    'a LAMEDUCK_* variable, or a timing flag of `lameduck serve`, holds a value lameduck rejects at start-up',
  rationale: 'lameduck validates its options when it starts and refuses to run with a bad one',
  check({ model, report, timelineOf }) {
    for (const w of model.workloads) {
      for (const c of w.containers) {
        const env = list(c.spec['env'])
        if (c.lameduck === undefined) continue
        const t = timelineOf(w, c)
        for (const s of [t.drain, t.shutdown, t.hooks, t.childStop]) {
          if (s?.flag === undefined || s.invalid === undefined) continue
          report({
            object: w,
            container: c,
            path: [...c.path, c.spec['command'] !== undefined ? 'command' : 'args'],
            message: `lameduck serve ${s.flag} is ${JSON.stringify(s.invalid)}, but it expects a duration such as 500ms, 2s or 1m (a bare number means seconds)${s === t.hooks ? ', at least 1ms' : ''}; lameduck serve exits 2 at start-up`,
            fix: `${s.flag} ${seconds(s.seconds).replace(' ', '')} (${seconds(s.seconds)} is the default)`,
          })
        }
        if (!env.some((e) => String(get(e, ['name']) ?? '').startsWith('LAMEDUCK_'))) continue
        for (const s of [t.drain, t.shutdown, t.hooks, t.childStop]) {
          if (s === undefined || s.flag !== undefined || s.invalid === undefined) continue
          const min = s === t.hooks ? 1 : 0
          report({
            object: w,
            container: c,
            path: s.path ?? c.path,
            message: `${s.variable} is ${JSON.stringify(s.invalid)}, but lameduck expects an integer number of milliseconds from ${min} to ${MAX_TIMER_MS}`,
            fix: `${s.variable}: "${s.ms}" (milliseconds as a quoted string; ${seconds(s.seconds)} is lameduck's default)`,
          })
        }
        env.forEach((entry, index) => {
          if (record(entry)?.['name'] !== SIGNALS_ENV) return
          const raw = text(get(entry, ['value']))
          if (raw === undefined || raw.trim() === '') return
          const bad = raw
            .split(',')
            .map((s) => s.trim())
            .filter((s) => !/^SIG[A-Z0-9]+$/.test(s) || UNCATCHABLE.has(s))
          if (bad.length === 0) return
          report({
            object: w,
            container: c,
            path: [...c.path, 'env', index, 'value'],
            message: `${SIGNALS_ENV} is ${JSON.stringify(raw)}; ${bad.map((s) => JSON.stringify(s)).join(', ')} ${bad.length === 1 ? 'is not a' : 'are not'} catchable signal name${bad.length === 1 ? '' : 's'}`,
            fix: `${SIGNALS_ENV}: "SIGTERM,SIGINT"`,
          })
        })
      }
    }
  },
}

export const envValueUnknown: Rule = {
  id: 'env-value-unknown',
  severity: 'info',
  scope: 'lameduck',
  summary: 'a LAMEDUCK_* timing comes from a Secret, fieldRef or a ConfigMap not in the input',
  rationale:
    'the checker cannot read the value and assumes lameduck’s default, so the timeline may be off by the difference',
  check({ timelines, report }) {
    for (const t of timelines) {
      if (t.lameduck === undefined) continue
      for (const s of [t.drain, t.shutdown, t.hooks, t.childStop]) {
        if (s?.unknown === undefined) continue
        report({
          object: t.workload,
          container: t.container,
          path: s.path ?? t.container.path,
          message: `${s.variable} comes from ${s.unknown}; lameduck's default ${seconds(s.seconds)} is assumed`,
          fix: 'pass the manifest that defines the value too (a ConfigMap in the same input is read), or write the value in env',
        })
      }
    }
  },
}
