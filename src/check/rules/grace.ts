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
  summary: 'terminationGracePeriodSeconds: 0 skips preStop and does not wait for the app',
  check({ model, report }) {
    for (const w of model.workloads) {
      if (integer(get(w.pod, ['terminationGracePeriodSeconds'])) !== 0) continue
      report({
        object: w,
        path: [...w.podPath, 'terminationGracePeriodSeconds'],
        message:
          'terminationGracePeriodSeconds is 0: the preStop hook is skipped and the kubelet does not wait for the app, cutting every in-flight request',
        fix: 'remove the field (default 30 s) or set it to cover the shutdown, e.g. terminationGracePeriodSeconds: 45',
      })
    }
  },
}

export const prestopExceedsGrace: Rule = {
  id: 'prestop-exceeds-grace',
  severity: 'error',
  summary: 'the preStop hook takes the whole grace period, leaving the app no time after SIGTERM',
  check({ timelines, report }) {
    for (const t of timelines) {
      if (isZero(t) || !preStopUsesGrace(t)) continue
      const { preStop } = t
      const rejected = preStop.kind === 'sleep' && preStop.seconds > t.grace.seconds
      const consequence = rejected
        ? 'the API server rejects a sleep action longer than the grace period'
        : `SIGTERM arrives when the grace period is spent and the app gets ${MIN_GRACE_AFTER_PRESTOP_SECONDS} s before SIGKILL`
      const needed = Math.ceil(t.totalSeconds)
      report({
        object: t.workload,
        container: t.container,
        path: [
          ...preStop.path,
          ...(preStop.kind === 'sleep' ? ['sleep', 'seconds'] : ['exec', 'command']),
        ],
        message: `container ${t.container.name}: preStop sleep ${seconds(preStop.seconds)} ≥ ${graceText(t)}: ${consequence}`,
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
  summary:
    'terminationGracePeriodSeconds is shorter than preStop + drain + shutdown + hooks + margin',
  check({ timelines, report }) {
    for (const t of timelines) {
      if (isZero(t) || preStopUsesGrace(t)) continue
      if (t.totalSeconds <= t.grace.seconds) continue
      const needed = Math.ceil(t.totalSeconds)
      const shrink = [t.drain, t.shutdown, t.hooks]
        .filter((s) => s.ms > 0)
        .map((s) => s.variable)
        .join(', ')
      report({
        object: t.workload,
        container: t.container,
        path: t.grace.path,
        message: `container ${t.container.name}: ${budgetSum(t)} > ${graceText(t)}: the kubelet SIGKILLs the app before its own shutdown deadline`,
        fix: `set terminationGracePeriodSeconds: ${needed}${shrink === '' ? '' : `, or lower ${shrink}`}${t.preStop.seconds > 0 ? ' or the preStop sleep' : ''}`,
      })
    }
  },
}
