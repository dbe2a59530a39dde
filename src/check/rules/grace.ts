// The grace period against the time the container needs to stop (KUBERNETES.md pitfalls 2-4).
import { get, integer } from '../model.js'
import { budgetSum, seconds, type Timeline } from '../timeline.js'
import type { Rule } from './types.js'

/** After a preStop hook that used the whole grace period, the kubelet still allows this. */
export const MIN_GRACE_AFTER_PRESTOP_SECONDS = 2

function graceText(t: Timeline): string {
  return `grace ${seconds(t.grace.seconds)}${t.grace.written ? '' : ' (the default)'}`
}

function isZero(t: Timeline): boolean {
  return t.grace.written && t.grace.seconds === 0
}

function preStopUsesGrace(t: Timeline): boolean {
  return t.preStop.known && t.preStop.seconds > 0 && t.preStop.seconds >= t.grace.seconds
}

export const gracePeriodZero: Rule = {
  id: 'grace-period-zero',
  severity: 'error',
  scope: 'serving-workloads',
  summary: 'terminationGracePeriodSeconds: 0 skips preStop and does not wait for the app',
  rationale:
    'with a grace period of 0 the preStop hook is skipped and the kubelet does not wait for the app, cutting every in-flight request',
  check({ model, report }) {
    for (const w of model.workloads) {
      if (!w.takesTraffic) continue
      if (integer(get(w.pod, ['terminationGracePeriodSeconds'])) !== 0) continue
      report({
        object: w,
        path: [...w.podPath, 'terminationGracePeriodSeconds'],
        message: 'terminationGracePeriodSeconds is 0',
        fix: 'remove the field (default 30 s) or set it to cover the shutdown, e.g. terminationGracePeriodSeconds: 45',
      })
    }
  },
}

export const prestopExceedsGrace: Rule = {
  id: 'prestop-exceeds-grace',
  severity: 'error',
  scope: 'serving',
  summary: 'the preStop hook takes the whole grace period, leaving the app no time after SIGTERM',
  rationale: `the grace period counts from deletion and includes the preStop hook: the API server rejects a sleep action longer than it, and an exec sleep that uses it up leaves the app ${MIN_GRACE_AFTER_PRESTOP_SECONDS} s between SIGTERM and SIGKILL`,
  check({ timelines, report }) {
    for (const t of timelines) {
      if (t.grace.invalid || isZero(t) || !preStopUsesGrace(t)) continue
      const { preStop } = t
      const rejected = preStop.kind === 'sleep' && preStop.seconds > t.grace.seconds
      const consequence = rejected
        ? 'the API server rejects the sleep action'
        : `the app gets ${MIN_GRACE_AFTER_PRESTOP_SECONDS} s after SIGTERM`
      const needed = Math.ceil(t.totalSeconds)
      report({
        object: t.workload,
        container: t.container,
        path: [
          ...preStop.path,
          ...(preStop.kind === 'sleep' ? ['sleep', 'seconds'] : ['exec', 'command']),
        ],
        message: `preStop sleep ${seconds(preStop.seconds)} ≥ ${graceText(t)}: ${consequence}`,
        fix: Number.isFinite(needed)
          ? `shorten the preStop sleep (5-10 s is plenty) or raise terminationGracePeriodSeconds to at least ${needed} (${budgetSum(t)})`
          : 'sleep a fixed 5-10 s in preStop, never `infinity`',
      })
    }
  },
}

export const gracePeriodTooShort: Rule = {
  id: 'grace-period-too-short',
  severity: 'error',
  scope: 'serving',
  summary:
    'terminationGracePeriodSeconds is shorter than the preStop hook and the shutdown after it, plus a margin',
  rationale:
    'the kubelet SIGKILLs the container when the grace period runs out, whatever it is doing: a lameduck app is killed before its own shutdown deadline (in-flight requests cut, its outcome never logged), any other app gets less than the margin after a long preStop hook',
  check({ timelines, report }) {
    for (const t of timelines) {
      if (t.grace.invalid || isZero(t) || preStopUsesGrace(t)) continue
      if (t.totalSeconds <= t.grace.seconds) continue
      // Without lameduck the checker only knows the hook and the margin: an app with no
      // preStop hook is not held to any grace period.
      if (t.lameduck === undefined && t.preStop.seconds + (t.selfDrain?.seconds ?? 0) <= 0) continue
      const needed = Math.ceil(t.totalSeconds)
      const shrink =
        t.lameduck === undefined
          ? ''
          : [t.drain, t.shutdown, t.hooks]
              .filter((s) => s.ms > 0)
              .map((s) => s.variable)
              .join(', ')
      report({
        object: t.workload,
        container: t.container,
        path: t.grace.path,
        message: `${budgetSum(t)} > ${graceText(t)}`,
        fix: `set terminationGracePeriodSeconds: ${needed}${shrink === '' ? '' : `, or lower ${shrink}`}${t.preStop.seconds > 0 ? ' or the preStop sleep' : ''}`,
      })
    }
  },
}
