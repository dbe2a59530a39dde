import { FORCE_EXIT_MARGIN_MS, MAX_TIMER_MS } from '../../contract.js'
import type { Slot } from './slot.js'

/**
 * The primary's deadlines. A worker stuck in a synchronous loop cannot end itself, so the
 * primary SIGKILLs what is still alive a margin past the deadline each worker reported: for
 * the pod's shutdown, the latest deadline of them all; for a worker retired by a reload,
 * its own.
 */
export class Backstop {
  #pod: { timer: NodeJS.Timeout; at: number } | undefined
  readonly #retiring = new Map<Slot, NodeJS.Timeout>()
  readonly #onPod: () => void
  readonly #onRetiring: (slot: Slot) => void

  /** `onPod` runs when the pod's deadline passes; `onRetiring` when a retiring worker's does. */
  constructor(onPod: () => void, onRetiring: (slot: Slot) => void) {
    this.#onPod = onPod
    this.#onRetiring = onRetiring
  }

  /** (Re)arms the pod's deadline `budget` ms from now, replacing any earlier one. */
  arm(budget: number): void {
    if (this.#pod !== undefined) clearTimeout(this.#pod.timer)
    // A sum of deadlines past setTimeout's limit would fire after 1 ms.
    const ms = Math.min(budget, MAX_TIMER_MS)
    this.#pod = { timer: setTimeout(this.#onPod, ms), at: performance.now() + ms }
  }

  /** A worker reported that its shutdown ends within `ms`: the pod's deadline moves to a
   * margin past it, if that is later. */
  extend(ms: number): void {
    const at = performance.now() + ms + FORCE_EXIT_MARGIN_MS
    if (this.#pod !== undefined && this.#pod.at >= at) return
    this.arm(ms + FORCE_EXIT_MARGIN_MS)
  }

  /** A retiring worker reported that its shutdown ends within `ms`. */
  retire(slot: Slot, ms: number): void {
    clearTimeout(this.#retiring.get(slot))
    this.#retiring.set(
      slot,
      setTimeout(() => this.#onRetiring(slot), Math.min(ms + FORCE_EXIT_MARGIN_MS, MAX_TIMER_MS)),
    )
  }

  /** The retiring worker exited. */
  retired(slot: Slot): void {
    clearTimeout(this.#retiring.get(slot))
    this.#retiring.delete(slot)
  }

  clear(): void {
    if (this.#pod !== undefined) clearTimeout(this.#pod.timer)
    for (const timer of this.#retiring.values()) clearTimeout(timer)
    this.#retiring.clear()
  }
}
