// How an EndpointSlice change reaches a data path: after the propagation delay (± jitter),
// and always in the order the changes were made, as kube-proxy applies the EndpointSlice
// stream. Shared by every driver; each applies a batch of due changes its own way.
import type { Clock } from '../clock.js'
import type { Endpoint } from './types.js'

export interface Change {
  op: 'add' | 'remove'
  endpoint: Endpoint
  dueAt: number
}

export interface PropagationOptions {
  clock: Clock
  propagationDelayMs: number
  propagationJitterMs: number
  /** Random source in [0, 1); injectable for unit tests. */
  random?: (() => number) | undefined
  /** Applies the changes now due, oldest first. */
  apply: (changes: Change[]) => void
}

export class Propagation {
  readonly #options: PropagationOptions
  readonly #random: () => number
  /** What the EndpointSlice says (changes published, not yet necessarily applied). */
  readonly #published = new Map<string, Endpoint>()
  readonly #queue: Change[] = []
  #timer: NodeJS.Timeout | undefined

  constructor(options: PropagationOptions) {
    this.#options = options
    this.#random = options.random ?? Math.random
  }

  /** Only a change of membership is published. */
  publish(endpoint: Endpoint, serving: boolean): void {
    if (serving === this.#published.has(endpoint.pod)) return
    if (serving) this.#published.set(endpoint.pod, endpoint)
    else this.#published.delete(endpoint.pod)
    const { propagationDelayMs, propagationJitterMs, clock } = this.#options
    const delay = propagationDelayMs + (this.#random() * 2 - 1) * propagationJitterMs
    const last = this.#queue.at(-1)?.dueAt ?? 0
    // In order: a change never overtakes an earlier one.
    const dueAt = Math.max(last, clock.now() + Math.max(0, delay))
    this.#queue.push({ op: serving ? 'add' : 'remove', endpoint, dueAt })
    this.#schedule()
  }

  /** True when no published change waits for its delay. */
  idle(): boolean {
    return this.#queue.length === 0
  }

  /** Drops pending changes. */
  stop(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    this.#queue.length = 0
  }

  #schedule(): void {
    if (this.#timer !== undefined) return
    const head = this.#queue[0]
    if (head === undefined) return
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined
        this.#due()
      },
      Math.max(0, head.dueAt - this.#options.clock.now()),
    )
  }

  #due(): void {
    const now = this.#options.clock.now()
    const due: Change[] = []
    while (this.#queue.length > 0 && this.#queue[0]!.dueAt <= now + 0.5) {
      due.push(this.#queue.shift()!)
    }
    if (due.length > 0) this.#options.apply(due)
    this.#schedule()
  }
}
