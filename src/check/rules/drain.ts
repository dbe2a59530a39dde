// The time between the pod's deletion and the listener closing (KUBERNETES.md pitfall 1).
import { imageInfo, lacksShell } from '../images.js'
import { type Container, list, record, routeName, text, type Workload } from '../model.js'
import { databaseOrBroker, singletonOf } from '../singleton.js'
import { seconds, type Timeline } from '../timeline.js'
import { canHandOver } from './rollout.js'
import type { Rule } from './types.js'

/**
 * Shortest drain window not reported: kube-proxy syncs in about 1 s, ingress-nginx picks up
 * endpoint changes about 1 s after its controller, and its maintainers recommend a 5 s
 * preStop sleep. Cloud load balancers can take far longer.
 */
export const MIN_DRAIN_SECONDS = 5

/** Below this, a LAMEDUCK_DRAIN_DELAY_MS value was probably meant as seconds. */
const LIKELY_SECONDS_MS = 1_000

/** preStop sleep + the app's own drain: how long traffic has to move away before the listener closes. */
export function drainWindow(t: Timeline): number {
  return t.preStop.seconds + (t.selfDrain?.seconds ?? 0) + t.drain.seconds
}

function drainPath(t: Timeline) {
  return t.drain.path ?? t.preStop.path
}

/**
 * The preStop sleep to add, in a form that works: the native action (1.30+), or exec sleep
 * where the image has one, and the grace period it then needs (a sleep action longer than
 * the grace period is rejected by the API server).
 */
export function preStopSleepFix(t: Timeline, sleep: number): string {
  const exec = lacksShell(t.container.image)
    ? ` (${t.container.image} has no shell, so not exec sleep)`
    : `; before 1.30, exec: {command: [sleep, "${sleep}"]} if the image has sleep`
  const needed = sleep + (t.selfDrain?.seconds ?? 0) + t.marginSeconds
  const grace =
    t.grace.seconds < needed
      ? ` and raise terminationGracePeriodSeconds to at least ${needed} (it is ${seconds(t.grace.seconds)}; the sleep counts against it)`
      : ''
  return `lifecycle: {preStop: {sleep: {seconds: ${sleep}}}} (Kubernetes 1.30+${exec})${grace}`
}

export const noDrainDelay: Rule = {
  id: 'no-drain-delay',
  severity: 'error',
  scope: 'lameduck',
  summary:
    'neither a preStop sleep nor lameduck’s drain delay: the listener closes while traffic still arrives',
  rationale:
    'the listener closes at SIGTERM while kube-proxy, ingress controllers and load balancers, which learn of the pod’s removal a little later, still send it new connections',
  check({ timelines, report }) {
    for (const t of timelines) {
      if (t.lameduck === undefined) continue
      if (!t.preStop.known || t.preStop.seconds > 0 || t.drain.ms > 0) continue
      report({
        object: t.workload,
        container: t.container,
        path: drainPath(t),
        message: `no drain delay: no preStop sleep and ${t.drain.variable}=0`,
        fix: `remove ${t.drain.variable} (lameduck drains 10 s by default on Kubernetes), or add ${preStopSleepFix(t, 10)}`,
      })
    }
  },
}

function routedBy(w: Workload, t: Timeline): string {
  const names = [...new Set(t.container.routes.map((r) => routeName(r.service)))]
  return names.length > 0 ? names.join(', ') : `${w.services.length} Service(s)`
}

/**
 * Calico Typha: its clients (Felix) connect to the pods' own addresses, found through the
 * Service's endpoints, not through the Service; on SIGTERM it sheds them gradually itself.
 */
function typha(c: Container): boolean {
  if (/(^|\/)typha(:|@|$)/.test(c.image ?? '')) return true
  return list(c.spec['env']).some((e) => text(record(e)?.['name'])?.startsWith('TYPHA_') === true)
}

/** A preStop sleep before `command`, keeping what the hook does. */
function sleepBefore(t: Timeline, command: string, sleep: number): string {
  if (/^kong quit\b/.test(command) && !command.includes('&&'))
    return `exec: {command: [kong, quit, "--wait=${sleep}"]} (kong quit waits that long before it stops accepting)`
  return `exec: {command: [sh, -c, "sleep ${sleep} && ${command.replaceAll('"', '\\"')}"]}${lacksShell(t.container.image) ? ` (${t.container.image} has no shell: use a sleep action and stop the app on SIGTERM instead)` : ''}`
}

export const noPrestopDelay: Rule = {
  id: 'no-prestop-delay',
  severity: 'warning',
  scope: 'serving-other',
  summary:
    'a Service routes to the container but nothing delays SIGTERM until the endpoint removal has spread',
  rationale:
    'when a pod is deleted, SIGTERM and the removal from the Service start together; kube-proxy, ingress controllers and load balancers learn of the removal up to seconds later and keep sending new connections, which are refused once the app closes its listener; a preStop sleep keeps the app serving until they have caught up (an app that keeps serving for a few seconds after SIGTERM on its own needs none: lameduck/ignore it)',
  check({ model, timelines, report }) {
    for (const t of timelines) {
      if (t.lameduck !== undefined || t.container.routes.length === 0) continue
      // Through a headless Service clients resolve pod addresses themselves (StatefulSet
      // peers, cluster-aware clients); kube-proxy's race is not theirs.
      if (t.container.routes.every((r) => r.service.headless)) continue
      const stops = t.preStop.stopsAtOnce
      if (t.preStop.kind !== 'none' && t.preStop.kind !== 'tcpSocket' && stops === undefined)
        continue
      if (t.selfDrain !== undefined || !canHandOver(t.workload)) continue
      // Clients of databases and brokers hold long connections and reconnect when one
      // closes, whatever the delay; Typha's clients do not go through the Service at all.
      if (databaseOrBroker(t.container) !== undefined || typha(t.container)) continue
      if (imageInfo(t.container.image)?.drainsItself === true) continue
      // One instance on a ReadWriteOnce volume: no other pod can take over, not even a surge.
      if (singletonOf(model, t.workload)?.volume === true) continue
      report({
        object: t.workload,
        container: t.container,
        path: t.preStop.kind === 'none' ? t.container.path : t.preStop.path,
        message:
          stops === undefined
            ? `no preStop hook: SIGTERM arrives at deletion while ${routedBy(t.workload, t)} may still send it new connections`
            : `the preStop hook \`${stops}\` stops the app at once instead of delaying it, while ${routedBy(t.workload, t)} may still send it new connections`,
        fix:
          stops === undefined
            ? preStopSleepFix(t, MIN_DRAIN_SECONDS)
            : `sleep before it: ${sleepBefore(t, stops, MIN_DRAIN_SECONDS)}, and a grace period that covers the sleep and the stop`,
      })
    }
  },
}

export const drainDelayShort: Rule = {
  id: 'drain-delay-short',
  severity: 'warning',
  scope: 'serving',
  summary: `the drain window (preStop sleep + drain delay) is under ${MIN_DRAIN_SECONDS} s`,
  rationale:
    'endpoint removal reaches kube-proxy in about 1 s and ingress controllers and cloud load balancers later; a shorter drain still refuses some of their connections',
  check({ timelines, report }) {
    for (const t of timelines) {
      const window = drainWindow(t)
      if (!t.preStop.known || window <= 0 || window >= MIN_DRAIN_SECONDS) continue
      // Without lameduck the drain only matters when another endpoint can take the traffic.
      if (t.lameduck === undefined && (t.container.routes.length === 0 || !canHandOver(t.workload)))
        continue
      const parts = [`preStop ${seconds(t.preStop.seconds)}`]
      if (t.selfDrain !== undefined)
        parts.push(`${t.selfDrain.where} ${seconds(t.selfDrain.seconds)}`)
      if (t.lameduck !== undefined) parts.push(`drain ${seconds(t.drain.seconds)}`)
      const unit =
        t.lameduck !== undefined &&
        t.drain.source !== 'default' &&
        t.drain.ms > 0 &&
        t.drain.ms < LIKELY_SECONDS_MS
          ? ` (${t.drain.variable} is in milliseconds: ${t.drain.ms} means ${seconds(t.drain.seconds)})`
          : ''
      const image = imageInfo(t.container.image)
      report({
        object: t.workload,
        container: t.container,
        path: t.lameduck !== undefined ? drainPath(t) : t.preStop.path,
        message: `drain window ${seconds(window)} (${parts.join(' + ')}) < ${MIN_DRAIN_SECONDS} s${unit}`,
        fix:
          t.lameduck !== undefined
            ? `${t.drain.variable}: "10000" (lameduck's default), or a preStop sleep of 5-10 s`
            : t.selfDrain?.where.includes('ConfigMap')
              ? `raise ${image?.name ?? 'the app'}'s own drain (${t.selfDrain.where}) to ${MIN_DRAIN_SECONDS} s or more`
              : t.selfDrain !== undefined
                ? `add the rest before SIGTERM (${t.selfDrain.where} is fixed): ${preStopSleepFix(t, Math.ceil(MIN_DRAIN_SECONDS - window + t.preStop.seconds))}`
                : `a preStop sleep of ${MIN_DRAIN_SECONDS}-10 s: ${preStopSleepFix(t, MIN_DRAIN_SECONDS)}`,
      })
    }
  },
}
