// The time between the pod's deletion and the listener closing (KUBERNETES.md pitfall 1).
import { seconds, type Timeline } from '../timeline.js'
import type { Rule } from './types.js'

/**
 * Shortest drain window not reported: kube-proxy syncs in about 1 s, ingress-nginx picks up
 * endpoint changes about 1 s after its controller, and its maintainers recommend a 5 s
 * preStop sleep. Cloud load balancers can take far longer.
 */
export const MIN_DRAIN_SECONDS = 5

/** Below this, a LAMEDUCK_DRAIN_DELAY_MS value was probably meant as seconds. */
const LIKELY_SECONDS_MS = 1_000

/** preStop sleep + app drain, the time traffic has to move away before the listener closes. */
export function drainWindow(t: Timeline): number {
  return t.preStop.seconds + t.drain.seconds
}

function drainPath(t: Timeline) {
  return t.drain.path ?? t.preStop.path
}

export const noDrainDelay: Rule = {
  id: 'no-drain-delay',
  severity: 'error',
  summary:
    'neither a preStop sleep nor lameduck’s drain delay: the listener closes while traffic still arrives',
  check({ timelines, report }) {
    for (const t of timelines) {
      if (!t.preStop.known || t.preStop.seconds > 0 || t.drain.ms > 0) continue
      report({
        object: t.workload,
        container: t.container,
        path: drainPath(t),
        message: `container ${t.container.name}: no drain delay (no preStop sleep, ${t.drain.variable}=0): the listener closes at SIGTERM while kube-proxy, ingress controllers and load balancers still send new connections`,
        fix: `remove ${t.drain.variable} (lameduck drains 10 s by default on Kubernetes), or add lifecycle: {preStop: {sleep: {seconds: 10}}}`,
      })
    }
  },
}

export const drainDelayShort: Rule = {
  id: 'drain-delay-short',
  severity: 'warning',
  summary: `the drain window (preStop sleep + drain delay) is under ${MIN_DRAIN_SECONDS} s`,
  check({ timelines, report }) {
    for (const t of timelines) {
      const window = drainWindow(t)
      if (!t.preStop.known || window <= 0 || window >= MIN_DRAIN_SECONDS) continue
      const parts = [`preStop ${seconds(t.preStop.seconds)}`, `drain ${seconds(t.drain.seconds)}`]
      const unit =
        t.drain.source !== 'default' && t.drain.ms > 0 && t.drain.ms < LIKELY_SECONDS_MS
          ? ` (${t.drain.variable} is in milliseconds: ${t.drain.ms} means ${seconds(t.drain.seconds)})`
          : ''
      report({
        object: t.workload,
        container: t.container,
        path: drainPath(t),
        message: `container ${t.container.name}: drain window ${seconds(window)} (${parts.join(' + ')}) < ${MIN_DRAIN_SECONDS} s${unit}: endpoint removal reaches kube-proxy in about 1 s and ingress controllers and cloud load balancers later`,
        fix: `${t.drain.variable}: "10000" (lameduck's default), or a preStop sleep of 5-10 s`,
      })
    }
  },
}
