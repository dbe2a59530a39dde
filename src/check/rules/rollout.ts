// How a rollout, a node drain or an eviction takes replicas down (KUBERNETES.md pitfalls 7,
// 10 and 13).

import { containerInfo } from '../images.js'
import type { Path } from '../load.js'
import {
  type Budget,
  describe,
  get,
  integer,
  routeName,
  scaled,
  text,
  type Workload,
} from '../model.js'
import { singletonOf } from '../singleton.js'
import type { Rule } from './types.js'

/** Deployment (and Argo Rollout canary) defaults for maxSurge and maxUnavailable. */
export const DEFAULT_MAX_SURGE = '25%'
export const DEFAULT_MAX_UNAVAILABLE = '25%'
export const DEFAULT_PROGRESS_DEADLINE_SECONDS = 600

type IntOrPercent = number | string

function intOrPercent(value: unknown): IntOrPercent | undefined {
  return typeof value === 'number' || typeof value === 'string' ? value : undefined
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

/** `3 replicas`, `1 replica (the default)`, `2 replicas (minReplicas of HorizontalPodAutoscaler/web)`. */
export function replicasText(w: Workload): string {
  const n = w.replicas ?? 0
  if (w.autoscaler !== undefined) {
    return `${plural(n, 'replica')} (minReplicas of ${describe(w.autoscaler)}${w.autoscaler.minWritten ? '' : ', the default'})`
  }
  return `${plural(n, 'replica')}${w.replicasWritten ? '' : ' (the default)'}`
}

/** How many ready pods a rollout of `w` may take down at once, and why; undefined if unknown. */
export interface Unavailability {
  pods: number
  /** How many new pods may start before old ones stop. */
  surge: number
  /** Field that decides it, relative to the object. */
  path: Path
  /** How the number comes about, for messages. */
  explain: string
  recreate: boolean
}

function rolling(w: Workload, base: Path, replicas: number): Unavailability | undefined {
  const surgeValue = intOrPercent(get(w.source.value, [...base, 'maxSurge'])) ?? DEFAULT_MAX_SURGE
  const unavailableValue =
    intOrPercent(get(w.source.value, [...base, 'maxUnavailable'])) ?? DEFAULT_MAX_UNAVAILABLE
  const surge = scaled(surgeValue, replicas, true)
  let unavailable = scaled(unavailableValue, replicas, false)
  if (surge === undefined || unavailable === undefined) return undefined
  let explain = `maxUnavailable ${unavailableValue} of ${replicasText(w)} = ${unavailable}`
  if (surge === 0 && unavailable === 0) {
    // The deployment controller's rule: both 0 would never progress, so it allows 1.
    unavailable = 1
    explain = `maxSurge ${surgeValue} and maxUnavailable ${unavailableValue} of ${replicasText(w)} both round to 0, so the controller uses maxUnavailable 1`
  }
  return {
    pods: Math.min(unavailable, replicas),
    surge,
    path: [...base, 'maxUnavailable'],
    explain,
    recreate: false,
  }
}

export function rolloutUnavailability(w: Workload): Unavailability | undefined {
  const replicas = w.replicas
  if (replicas === undefined || replicas <= 0) return undefined
  if (w.kind === 'Deployment') {
    const type = text(get(w.source.value, ['spec', 'strategy', 'type'])) ?? 'RollingUpdate'
    if (type === 'Recreate') {
      return {
        pods: replicas,
        surge: 0,
        path: ['spec', 'strategy', 'type'],
        explain: `strategy Recreate stops all ${replicasText(w)} before starting new ones`,
        recreate: true,
      }
    }
    return rolling(w, ['spec', 'strategy', 'rollingUpdate'], replicas)
  }
  if (w.kind === 'Rollout') {
    // Argo Rollouts: blueGreen brings the whole new set up before switching the Service;
    // canary replaces pods within maxSurge / maxUnavailable (25% / 25% by default).
    if (get(w.source.value, ['spec', 'strategy', 'blueGreen']) !== undefined) {
      return {
        pods: 0,
        surge: replicas,
        path: ['spec', 'strategy', 'blueGreen'],
        explain: 'a blueGreen rollout',
        recreate: false,
      }
    }
    return rolling(w, ['spec', 'strategy', 'canary'], replicas)
  }
  if (w.kind === 'StatefulSet') {
    const type = text(get(w.source.value, ['spec', 'updateStrategy', 'type'])) ?? 'RollingUpdate'
    if (type !== 'RollingUpdate') return undefined
    const path = ['spec', 'updateStrategy', 'rollingUpdate', 'maxUnavailable']
    const value = intOrPercent(get(w.source.value, path)) ?? 1
    const pods = scaled(value, replicas, false)
    if (pods === undefined) return undefined
    // The StatefulSet controller never uses less than 1: it replaces a pod by deleting it first.
    const resolved = Math.min(Math.max(pods, 1), replicas)
    return {
      pods: resolved,
      surge: 0,
      path,
      explain: `a StatefulSet rollout deletes each pod before starting its replacement, ${resolved} at a time, with ${replicasText(w)}`,
      recreate: false,
    }
  }
  // ReplicaSets and ReplicationControllers do not roll their pods when the template changes.
  return undefined
}

/**
 * Whether another ready endpoint can take over while a pod of `w` terminates, so that
 * delaying SIGTERM moves traffic somewhere: more than one replica, a rollout that starts
 * the new pod first, or a DaemonSet's pods on other nodes.
 */
export function canHandOver(w: Workload): boolean {
  if (w.kind === 'DaemonSet') return true
  if (otherBackends(w).length > 0) return true
  if (w.kind === 'Pod' || w.replicas === undefined) return false
  if (w.replicas >= 2) return true
  const u = rolloutUnavailability(w)
  return u !== undefined && !u.recreate && u.surge > 0
}

/** Other workloads the Services of `w` send user traffic to (reviews-v1, -v2, -v3 behind one Service). */
export function otherBackends(w: Workload): Workload[] {
  const out = new Set<Workload>()
  for (const c of w.serving) {
    for (const { service } of c.routes) {
      for (const b of service.backends) if (b !== w) out.add(b)
    }
  }
  return [...out]
}

const WHOLE_OUTAGE =
  'no pod serves between the old ones stopping and the new ones becoming ready: every rollout is an outage for the clients of this Service'

export const recreateStrategy: Rule = {
  id: 'recreate-strategy',
  severity: 'error',
  scope: 'serving-workloads',
  summary: 'strategy Recreate on a Deployment that takes traffic: every rollout is an outage',
  rationale: WHOLE_OUTAGE,
  check({ model, report }) {
    for (const w of model.workloads) {
      if (!w.takesTraffic) continue
      const u = rolloutUnavailability(w)
      if (u === undefined || !u.recreate) continue
      // One instance by nature: Recreate is right (a surge pod would fight over its volume
      // or its work); single-replica says what a restart means for it.
      if (singletonOf(model, w) !== undefined) continue
      report({
        object: w,
        path: u.path,
        message: u.explain,
        fix: 'strategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}} (if two versions may run side by side)',
      })
    }
  },
}

export const maxUnavailableAll: Rule = {
  id: 'max-unavailable-all',
  severity: 'error',
  scope: 'serving-workloads',
  summary: 'the rolling update may take every ready replica down at once',
  rationale: WHOLE_OUTAGE,
  check({ model, report }) {
    for (const w of model.workloads) {
      if (!w.takesTraffic) continue
      if (w.kind === 'DaemonSet') {
        const path = ['spec', 'updateStrategy', 'rollingUpdate', 'maxUnavailable']
        const value = text(get(w.source.value, path))
        const percent = value === undefined ? undefined : /^(\d+)%$/.exec(value.trim())
        if (percent && Number(percent[1]) >= 100) {
          report({
            object: w,
            path,
            message: `maxUnavailable ${value} lets the rollout stop the pod on every node at once`,
            fix: 'rollingUpdate: {maxUnavailable: 1} (or maxSurge: 1 with maxUnavailable: 0)',
          })
        }
        continue
      }
      const u = rolloutUnavailability(w)
      if (u === undefined || u.recreate || w.replicas === undefined || u.pods < w.replicas) continue
      // A StatefulSet of 1 cannot start the new pod first: only more replicas help, which is
      // single-replica's finding; a singleton must not surge at all.
      if (w.kind === 'StatefulSet' && w.replicas === 1) continue
      if (singletonOf(model, w) !== undefined) continue
      report({
        object: w,
        path: u.path,
        message: `${u.explain}: every ready replica may go down at once`,
        fix:
          w.kind === 'StatefulSet'
            ? 'run at least 2 replicas if any of them can serve (a StatefulSet cannot start the new pod first); a single-primary database is down for every restart'
            : `${w.kind === 'Rollout' ? 'canary' : 'rollingUpdate'}: {maxUnavailable: 0, maxSurge: 1}`,
      })
    }
  },
}

export const singleReplica: Rule = {
  id: 'single-replica',
  severity: 'warning',
  scope: 'serving-workloads',
  summary: 'a single replica behind a Service: a node drain or eviction is an outage',
  rationale:
    'a node drain, an eviction or a node failure stops the only pod; however gracefully it shuts down, nothing serves until its replacement is scheduled, started and ready',
  check({ model, report }) {
    for (const w of model.workloads) {
      if (!w.takesTraffic || w.replicas !== 1 || w.kind === 'Pod') continue
      // Another workload behind the same Service keeps serving (one Deployment per version).
      if (otherBackends(w).length > 0) continue
      const services = [
        ...new Set(w.serving.flatMap((c) => c.routes.map((r) => routeName(r.service)))),
      ]
      const behind = services.length > 0 ? ` behind ${services.join(', ')}` : ''
      // More copies of a singleton would split its data or do its work twice: say what a
      // restart means instead.
      const single = w.autoscaler === undefined ? singletonOf(model, w) : undefined
      if (single !== undefined) {
        report({
          object: w,
          path: ['spec', 'replicas'],
          message: `${replicasText(w)}${behind}, and it runs as one instance: ${single.why}`,
          fix: single.maybe
            ? `a restart is an outage; plan for it (restart in a quiet hour, keep start-up short), or ${single.helps}: ${single.more}`
            : `not more replicas (${single.more}): a restart is an outage; plan for it (restart in a quiet hour, keep start-up short; ${single.helps})`,
        })
        continue
      }
      if (w.autoscaler !== undefined) {
        report({
          object: w.autoscaler,
          path: ['spec', 'minReplicas'],
          message: `${describe(w)} runs ${replicasText(w)}${behind}`,
          fix: 'minReplicas: 2 (and a PodDisruptionBudget with maxUnavailable: 1)',
        })
      } else {
        report({
          object: w,
          path: ['spec', 'replicas'],
          message: `${replicasText(w)}${behind}`,
          fix: 'replicas: 2 or more (and a PodDisruptionBudget with maxUnavailable: 1)',
        })
      }
    }
  },
}

/** Pods `b` lets evictions take from `w`; undefined when the budget cannot be read. */
function allowedDisruptions(
  b: Budget,
  replicas: number,
): { allowed: number; field: Path } | undefined {
  if (b.minAvailable !== undefined) {
    const min = scaled(b.minAvailable, replicas, true)
    return min === undefined
      ? undefined
      : { allowed: Math.max(replicas - min, 0), field: ['spec', 'minAvailable'] }
  }
  if (b.maxUnavailable !== undefined) {
    const max = scaled(b.maxUnavailable, replicas, true)
    return max === undefined ? undefined : { allowed: max, field: ['spec', 'maxUnavailable'] }
  }
  return undefined
}

export const pdbBlocksEviction: Rule = {
  id: 'pdb-blocks-eviction',
  severity: 'warning',
  scope: 'budgets',
  summary: 'a PodDisruptionBudget that allows no disruption at all: node drains never finish',
  rationale:
    'an eviction that would break a budget is refused, so with zero allowed disruptions kubectl drain, cluster upgrades and autoscaler scale-downs wait on these pods until someone deletes the budget or the pods by hand',
  check({ model, report }) {
    for (const w of model.workloads) {
      if (w.replicas === undefined || w.replicas <= 0) continue
      for (const b of w.budgets) {
        const found = allowedDisruptions(b, w.replicas)
        if (found === undefined || found.allowed > 0) continue
        const value = found.field.at(-1) === 'minAvailable' ? b.minAvailable : b.maxUnavailable
        report({
          object: b,
          path: found.field,
          message: `${found.field.at(-1)} ${value} with ${replicasText(w)} of ${describe(w)} allows 0 evictions`,
          fix:
            w.replicas >= 2
              ? `maxUnavailable: 1 (instead of ${found.field.at(-1)}: ${value})`
              : `run 2 or more replicas and use maxUnavailable: 1; with 1 replica a budget can only block drains`,
        })
      }
    }
  },
}

export const noSpread: Rule = {
  id: 'no-spread',
  severity: 'info',
  scope: 'serving-workloads',
  summary: 'replicas without podAntiAffinity or topologySpreadConstraints may share a node',
  rationale:
    'the scheduler spreads replicas only as a soft preference (by default it tolerates a skew of 3 per node), so several may land on one node and a drain or failure of that node stops them together',
  check({ model, report }) {
    for (const w of model.workloads) {
      if (!w.takesTraffic || w.replicas === undefined || w.replicas < 2) continue
      if (get(w.pod, ['affinity', 'podAntiAffinity']) !== undefined) continue
      if (get(w.pod, ['topologySpreadConstraints']) !== undefined) continue
      report({
        object: w,
        path: [...w.podPath, 'affinity'],
        message: `${replicasText(w)} and no podAntiAffinity or topologySpreadConstraints`,
        fix: `topologySpreadConstraints: [{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway, labelSelector: {matchLabels: {${Object.entries(
          w.podLabels,
        )
          .map(([k, v]) => `${k}: ${v}`)
          .join(', ')}}}}]`,
      })
    }
  },
}

export const progressDeadlineTooShort: Rule = {
  id: 'progress-deadline-too-short',
  severity: 'error',
  scope: 'workloads',
  summary: 'progressDeadlineSeconds is not greater than minReadySeconds',
  rationale:
    'the API server rejects a progressDeadlineSeconds that is not above minReadySeconds, and no new pod could count as available before the rollout is declared failed',
  check({ model, report }) {
    for (const w of model.workloads) {
      if (w.kind !== 'Deployment' && w.kind !== 'Rollout') continue
      const spec = w.source.value['spec']
      const deadline = integer(get(spec, ['progressDeadlineSeconds']))
      const minReady = integer(get(spec, ['minReadySeconds'])) ?? 0
      const effective = deadline ?? DEFAULT_PROGRESS_DEADLINE_SECONDS
      if (effective > minReady) continue
      report({
        object: w,
        path: ['spec', deadline === undefined ? 'minReadySeconds' : 'progressDeadlineSeconds'],
        message: `progressDeadlineSeconds ${effective}${deadline === undefined ? ' (the default)' : ''} ≤ minReadySeconds ${minReady}`,
        fix: `progressDeadlineSeconds: ${Math.max(minReady * 2, minReady + DEFAULT_PROGRESS_DEADLINE_SECONDS)} (well above minReadySeconds)`,
      })
    }
  },
}

export const pdbNotRolloutGuard: Rule = {
  id: 'pdb-not-rollout-guard',
  severity: 'warning',
  scope: 'budgets',
  summary: 'a PodDisruptionBudget stricter than the rollout: budgets do not limit rolling updates',
  rationale:
    'budgets limit evictions such as node drains, not rolling updates: the rollout takes down as many pods as its own strategy allows',
  check({ model, report }) {
    for (const w of model.workloads) {
      for (const b of w.budgets) {
        if (w.replicas === undefined || w.replicas <= 0) continue
        const u = rolloutUnavailability(w)
        if (u === undefined) continue
        const found = allowedDisruptions(b, w.replicas)
        if (found === undefined || u.pods <= found.allowed) continue
        if (singletonOf(model, w) !== undefined) continue
        report({
          object: b,
          path: found.field,
          message: `${describe(b)} allows ${plural(found.allowed, 'pod')} of ${describe(w)} down, but its rollout may take ${u.pods} down (${u.explain})`,
          fix: `protect the rollout in ${describe(w)} itself: ${w.kind === 'StatefulSet' ? 'more replicas' : 'rollingUpdate: {maxUnavailable: 0, maxSurge: 1}'}`,
        })
      }
    }
  },
}

/** Members of a consensus system that can be lost while it keeps a majority. */
function tolerated(members: number): number {
  return Math.floor((members - 1) / 2)
}

export const quorumNoPdb: Rule = {
  id: 'quorum-no-pdb',
  severity: 'warning',
  scope: 'workloads',
  summary:
    'a consensus system (etcd, ZooKeeper, Consul, Kafka, CockroachDB) of 3 or more members without a PodDisruptionBudget',
  rationale:
    'Raft and ZooKeeper need a majority of their members up; without a budget a node drain or a cluster upgrade may evict several members at once, and the whole system stops accepting writes until they are back',
  check({ model, report }) {
    for (const w of model.workloads) {
      if (w.kind !== 'StatefulSet' || w.replicas === undefined || w.replicas < 3) continue
      if (w.budgets.length > 0) continue
      const system = w.containers.map(containerInfo).find((i) => i?.quorum === true)
      if (system === undefined) continue
      const labels = Object.entries(w.podLabels)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ')
      report({
        object: w,
        path: ['spec', 'replicas'],
        message: `${replicasText(w)} of ${system.name} and no PodDisruptionBudget selects them: it survives losing ${tolerated(w.replicas)}, and evictions are not limited`,
        fix: `a PodDisruptionBudget with maxUnavailable: 1 and selector: {matchLabels: {${labels}}}`,
      })
    }
  },
}
