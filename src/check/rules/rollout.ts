// How a rollout takes replicas down (KUBERNETES.md pitfalls 7, 10 and 13).
import type { Path } from '../load.js'
import { describe, get, integer, scaled, text, type Workload } from '../model.js'
import type { Rule } from './types.js'

/** Deployment defaults for maxSurge and maxUnavailable. */
export const DEFAULT_MAX_SURGE = '25%'
export const DEFAULT_MAX_UNAVAILABLE = '25%'
export const DEFAULT_PROGRESS_DEADLINE_SECONDS = 600

type IntOrPercent = number | string

function intOrPercent(value: unknown): IntOrPercent | undefined {
  return typeof value === 'number' || typeof value === 'string' ? value : undefined
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}

/** How many ready pods a rollout of `w` may take down at once, and why; undefined if unknown. */
export interface Unavailability {
  pods: number
  /** Field that decides it, relative to the object. */
  path: Path
  /** How the number comes about, for messages. */
  explain: string
  recreate: boolean
}

export function rolloutUnavailability(w: Workload): Unavailability | undefined {
  const replicas = w.replicas
  if (replicas === undefined || replicas <= 0) return undefined
  const replicasText = `${plural(replicas, 'replica')}${w.replicasWritten ? '' : ' (the default)'}`
  if (w.kind === 'Deployment') {
    const type = text(get(w.source.value, ['spec', 'strategy', 'type'])) ?? 'RollingUpdate'
    if (type === 'Recreate') {
      return {
        pods: replicas,
        path: ['spec', 'strategy', 'type'],
        explain: `strategy Recreate stops all ${replicasText} before starting new ones`,
        recreate: true,
      }
    }
    const rolling = ['spec', 'strategy', 'rollingUpdate']
    const surgeValue =
      intOrPercent(get(w.source.value, [...rolling, 'maxSurge'])) ?? DEFAULT_MAX_SURGE
    const unavailableValue =
      intOrPercent(get(w.source.value, [...rolling, 'maxUnavailable'])) ?? DEFAULT_MAX_UNAVAILABLE
    const surge = scaled(surgeValue, replicas, true)
    let unavailable = scaled(unavailableValue, replicas, false)
    if (surge === undefined || unavailable === undefined) return undefined
    let explain = `maxUnavailable ${unavailableValue} of ${replicasText} = ${unavailable}`
    if (surge === 0 && unavailable === 0) {
      // The deployment controller's rule: both 0 would never progress, so it allows 1.
      unavailable = 1
      explain = `maxSurge ${surgeValue} and maxUnavailable ${unavailableValue} of ${replicasText} both round to 0, so the controller uses maxUnavailable 1`
    }
    return {
      pods: Math.min(unavailable, replicas),
      path: [...rolling, 'maxUnavailable'],
      explain,
      recreate: false,
    }
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
      path,
      explain: `a StatefulSet rollout deletes each pod before starting its replacement, ${resolved} at a time, with ${replicasText}`,
      recreate: false,
    }
  }
  return undefined
}

export const recreateStrategy: Rule = {
  id: 'recreate-strategy',
  severity: 'error',
  summary: 'strategy Recreate on a Deployment that takes traffic: every rollout is an outage',
  check({ model, report }) {
    for (const w of model.workloads) {
      if (!w.takesTraffic) continue
      const u = rolloutUnavailability(w)
      if (u === undefined || !u.recreate) continue
      report({
        object: w,
        path: u.path,
        message: `${u.explain}: no pod serves between the old ones stopping and the new ones becoming ready`,
        fix: 'strategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}',
      })
    }
  },
}

export const maxUnavailableAll: Rule = {
  id: 'max-unavailable-all',
  severity: 'error',
  summary: 'the rolling update may take every ready replica down at once',
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
      report({
        object: w,
        path: u.path,
        message: `${u.explain}: the rollout may take every ready replica down at once`,
        fix:
          w.kind === 'StatefulSet'
            ? 'run at least 2 replicas (a StatefulSet cannot start the new pod first), or accept the gap'
            : 'strategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}',
      })
    }
  },
}

export const progressDeadlineTooShort: Rule = {
  id: 'progress-deadline-too-short',
  severity: 'error',
  summary: 'progressDeadlineSeconds is not greater than minReadySeconds',
  check({ model, report }) {
    for (const w of model.workloads) {
      if (w.kind !== 'Deployment') continue
      const spec = w.source.value['spec']
      const deadline = integer(get(spec, ['progressDeadlineSeconds']))
      const minReady = integer(get(spec, ['minReadySeconds'])) ?? 0
      const effective = deadline ?? DEFAULT_PROGRESS_DEADLINE_SECONDS
      if (effective > minReady) continue
      report({
        object: w,
        path: ['spec', deadline === undefined ? 'minReadySeconds' : 'progressDeadlineSeconds'],
        message: `progressDeadlineSeconds ${effective}${deadline === undefined ? ' (the default)' : ''} ≤ minReadySeconds ${minReady}: the API server rejects it, and no new pod could count as available before the rollout is declared failed`,
        fix: `progressDeadlineSeconds: ${Math.max(minReady * 2, minReady + DEFAULT_PROGRESS_DEADLINE_SECONDS)} (well above minReadySeconds)`,
      })
    }
  },
}

export const pdbNotRolloutGuard: Rule = {
  id: 'pdb-not-rollout-guard',
  severity: 'warning',
  summary: 'a PodDisruptionBudget stricter than the rollout: budgets do not limit rolling updates',
  check({ model, report }) {
    for (const w of model.workloads) {
      for (const b of w.budgets) {
        if (w.replicas === undefined || w.replicas <= 0) continue
        const u = rolloutUnavailability(w)
        if (u === undefined) continue
        let allowed: number | undefined
        let field: Path
        if (b.minAvailable !== undefined) {
          const min = scaled(b.minAvailable, w.replicas, true)
          allowed = min === undefined ? undefined : Math.max(w.replicas - min, 0)
          field = ['spec', 'minAvailable']
        } else if (b.maxUnavailable !== undefined) {
          allowed = scaled(b.maxUnavailable, w.replicas, true)
          field = ['spec', 'maxUnavailable']
        } else {
          continue
        }
        if (allowed === undefined || u.pods <= allowed) continue
        report({
          object: b,
          path: field,
          message: `${describe(b)} allows ${plural(allowed, 'pod')} of ${describe(w)} down, but its rollout may take ${u.pods} down (${u.explain}): budgets limit evictions such as node drains, not rolling updates`,
          fix: `protect the rollout in ${describe(w)} itself: ${w.kind === 'StatefulSet' ? 'more replicas' : 'rollingUpdate: {maxUnavailable: 0, maxSurge: 1}'}`,
        })
      }
    }
  },
}
