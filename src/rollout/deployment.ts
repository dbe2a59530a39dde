// The Deployment controller model: the rolling update of pkg/controller/deployment/rolling.go,
// reduced to one Deployment whose pods the lab starts itself.
//
// Each reconcile, with `active` = pods not terminating (terminating pods count for nothing,
// as ReplicaSets ignore pods with a deletionTimestamp):
//   1. Scale up the new revision: up to maxSurge above spec.replicas in total, never above
//      spec.replicas for the new revision.
//   2. Scale down old pods: at most (active - minAvailable - new pods not yet available),
//      unavailable old pods first; then available old pods while more than minAvailable
//      (spec.replicas - maxUnavailable) pods are available. Among old pods, not-ready ones go
//      first, then the most recently ready (as a ReplicaSet ranks pods to delete).
// A pod is available once it has been ready for minReadySeconds. The update is complete when
// every pod is of the new revision and available.
import { randomInt } from 'node:crypto'
import type { Clock } from './clock.js'
import type { Kubelet, Pod } from './kubelet.js'
import { type Fenceposts, type LabOptions, resolveFenceposts } from './options.js'

/** Characters Kubernetes uses in generated names (no vowels, no look-alikes). */
const NAME_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789'

function randomName(length: number): string {
  let out = ''
  for (let i = 0; i < length; i++) out += NAME_ALPHABET[randomInt(NAME_ALPHABET.length)]
  return out
}

/** What one reconcile decided; the caller (and the unit tests) act on it. */
export interface Plan {
  create: number
  delete: PlannedPod[]
}

/** The part of a pod the plan looks at. */
export interface PlannedPod {
  revision: number
  /** ms since the lab started when it became ready, undefined when not ready */
  readySince: number | undefined
}

/** Not-ready pods rank as ready "in the future": deleted first. */
const readyOrder = (pod: PlannedPod) => pod.readySince ?? Number.MAX_VALUE

/** Pure: the rolling-update step for the given pods (none of them terminating). */
export function planRollingUpdate<P extends PlannedPod>(input: {
  replicas: number
  fenceposts: Fenceposts
  minReadyMs: number
  revision: number
  pods: readonly P[]
  now: number
}): { create: number; delete: P[] } {
  const { replicas, fenceposts, minReadyMs, revision, pods, now } = input
  const available = (pod: PlannedPod) =>
    pod.readySince !== undefined && now - pod.readySince >= minReadyMs
  const fresh = pods.filter((pod) => pod.revision === revision)
  const old = pods.filter((pod) => pod.revision !== revision)

  const maxTotal = replicas + fenceposts.maxSurge
  const create = Math.max(0, Math.min(maxTotal - pods.length, replicas - fresh.length))

  const total = pods.length + create
  const minAvailable = replicas - fenceposts.maxUnavailable
  const freshUnavailable = fresh.length + create - fresh.filter(available).length
  let maxScaledDown = total - minAvailable - freshUnavailable
  const doomed: P[] = []
  if (maxScaledDown > 0) {
    const rank = (a: P, b: P) => readyOrder(b) - readyOrder(a)
    const unhealthy = old.filter((pod) => !available(pod)).sort(rank)
    for (const pod of unhealthy) {
      if (maxScaledDown === 0) break
      doomed.push(pod)
      maxScaledDown--
    }
    const availableCount = pods.filter(available).length
    let scaleDown = Math.min(availableCount - minAvailable, maxScaledDown)
    const healthy = old.filter((pod) => available(pod)).sort(rank)
    for (const pod of healthy) {
      if (scaleDown <= 0) break
      doomed.push(pod)
      scaleDown--
    }
  }
  return { create, delete: doomed }
}

export class DeploymentController {
  /** The revision pods are being moved to; 0 is the initial one. */
  revision = 0
  readonly fenceposts: Fenceposts
  readonly #options: LabOptions
  readonly #clock: Clock
  readonly #kubelet: Kubelet
  readonly #onError: (error: Error) => void
  readonly #templateHashes: string[] = []
  #starting = 0
  #halted = false
  /** ms since the lab started of the last progress (pod created, available or deleted). */
  lastProgressAt = 0

  constructor(
    options: LabOptions,
    clock: Clock,
    kubelet: Kubelet,
    onError: (error: Error) => void,
  ) {
    this.#options = options
    this.#clock = clock
    this.#kubelet = kubelet
    this.#onError = onError
    this.fenceposts = resolveFenceposts(options.replicas, options.maxSurge, options.maxUnavailable)
  }

  /** Pods not terminating and not exited. */
  active(): Pod[] {
    return this.#kubelet.pods.filter((pod) => !pod.terminating && pod.state !== 'exited')
  }

  /** Creates the initial revision's replicas, all at once. */
  createInitial(): void {
    this.lastProgressAt = this.#clock.now()
    for (let i = 0; i < this.#options.replicas; i++) this.#create()
  }

  /** Moves to a new pod template revision; reconcile() then carries the update out. */
  startRollout(): void {
    this.revision++
    this.lastProgressAt = this.#clock.now()
    this.reconcile()
  }

  /** Every pod is of the current revision, available, and there are spec.replicas of them. */
  complete(): boolean {
    if (this.#starting > 0) return false
    const active = this.active()
    const now = this.#clock.now()
    return (
      active.length === this.#options.replicas &&
      active.every(
        (pod) =>
          pod.record.revision === this.revision &&
          pod.readySince !== undefined &&
          now - pod.readySince >= this.#options.minReadyMs,
      )
    )
  }

  /** Stops reconciling for good: the lab is tearing the pods down. */
  halt(): void {
    this.#halted = true
  }

  /** One level-triggered pass; safe to call on every event and tick. */
  reconcile(): void {
    if (this.#halted || this.revision === 0 || this.#starting > 0) return
    const active = this.active()
    const plan = planRollingUpdate({
      replicas: this.#options.replicas,
      fenceposts: this.fenceposts,
      minReadyMs: this.#options.minReadyMs,
      revision: this.revision,
      pods: active.map((pod) => ({
        pod,
        revision: pod.record.revision,
        readySince: pod.readySince,
      })),
      now: this.#clock.now(),
    })
    for (let i = 0; i < plan.create; i++) this.#create()
    for (const { pod } of plan.delete) {
      this.lastProgressAt = this.#clock.now()
      void this.#kubelet.delete(pod)
    }
  }

  /** Marks progress when a new-revision pod becomes available. */
  noteAvailable(pod: Pod): void {
    if (pod.record.revision === this.revision) this.lastProgressAt = this.#clock.now()
  }

  #podName(): string {
    this.#templateHashes[this.revision] ??= randomName(10)
    return `${this.#options.name}-${this.#templateHashes[this.revision]}-${randomName(5)}`
  }

  #create(): void {
    this.lastProgressAt = this.#clock.now()
    this.#starting++
    this.#kubelet.start(this.#podName(), this.revision).then(
      () => {
        this.#starting--
        this.reconcile()
      },
      (error: Error) => {
        this.#starting--
        this.#onError(error)
      },
    )
  }
}
