// The pod's metrics. A scrape reaches one worker, which asks the primary; every live worker
// that runs lameduck is asked for its figures, and the answer sums them once all have
// answered or METRICS_COLLECT_TIMEOUT_MS has passed.
import { METRICS_COLLECT_TIMEOUT_MS, PROTOCOL, type ToWorker } from '../../cluster.js'
import type { State } from '../../lifecycle.js'
import { type Figures, longest, type PhaseDurations, type PodFigures } from '../../metrics.js'
import type { Slot } from './slot.js'

/** What the collector reads from the primary. */
export interface CollectorHost {
  /** Every live worker. */
  slots(): Iterable<Slot>
  has(slot: Slot): boolean
  /** The pod's state for the metrics. */
  state(): State
  shuttingDown(): boolean
  send(slot: Slot, message: ToWorker): void
}

/** One scrape's collection of every worker's figures. */
interface Collection {
  /** The scraped worker and its request id. */
  requester: Slot
  id: number
  /** Asked, not answered yet. */
  waiting: Set<Slot>
  answers: Map<Slot, Figures>
  timer: NodeJS.Timeout | undefined
}

export class MetricsCollector {
  readonly #host: CollectorHost
  readonly #collections = new Map<number, Collection>()
  #next = 0
  /** Counters of the workers that have exited, so the pod's never go down. */
  readonly #exited = { closed: 0, forced: 0 }
  /** The longest of each shutdown phase among the pod's workers since the pod's shutdown
   * began (a reload's retiring workers do not count: their drain is not the pod's). */
  #phases: PhaseDurations | undefined

  constructor(host: CollectorHost) {
    this.#host = host
  }

  /** The worker's figures as it sent them (an answer, or its last ones when it exits). */
  record(slot: Slot, figures: Figures): void {
    slot.figures = figures
    if (this.#host.shuttingDown() && slot.role !== 'retiring')
      this.#phases = longest(this.#phases, figures.phases)
  }

  /** A scrape reached `requester`, which asked with `id`. */
  collect(requester: Slot, id: number): void {
    const key = ++this.#next
    const collection: Collection = {
      requester,
      id,
      waiting: new Set(),
      answers: new Map(),
      timer: undefined,
    }
    this.#collections.set(key, collection)
    for (const slot of this.#host.slots()) {
      // A worker still loading has no lameduck to answer; it counts as starting.
      if (slot.state === undefined || !slot.worker.isConnected()) continue
      collection.waiting.add(slot)
      this.#host.send(slot, { lameduck: PROTOCOL, type: 'collect', id: key })
    }
    if (collection.waiting.size === 0) this.#answer(key)
    else collection.timer = setTimeout(() => this.#answer(key), METRICS_COLLECT_TIMEOUT_MS).unref()
  }

  /** A worker's answer to `collect`. */
  figures(slot: Slot, key: number, figures: Figures): void {
    const collection = this.#collections.get(key)
    this.record(slot, figures)
    if (collection === undefined || !collection.waiting.delete(slot)) return
    collection.answers.set(slot, figures)
    if (collection.waiting.size === 0) this.#answer(key)
  }

  /** The worker exited: its counters stay in the pod's (what it last sent: its final
   * figures when it finished its shutdown; those of the last scrape when it crashed or was
   * killed), and no collection waits for it. */
  exited(slot: Slot): void {
    this.#exited.closed += slot.figures?.closed ?? 0
    this.#exited.forced += slot.figures?.forced ?? 0
    for (const [key, collection] of this.#collections) {
      if (collection.waiting.delete(slot) && collection.waiting.size === 0) this.#answer(key)
    }
  }

  #answer(key: number): void {
    const collection = this.#collections.get(key)
    if (collection === undefined) return
    this.#collections.delete(key)
    clearTimeout(collection.timer)
    const { requester, answers } = collection
    const pod: PodFigures = {
      state: this.#host.state(),
      inFlight: 0,
      open: 0,
      closed: this.#exited.closed,
      forced: this.#exited.forced,
      phases: this.#host.shuttingDown() ? this.#phases : undefined,
      workers: { starting: 0, ready: 0, draining: 0, stopping: 0, stopped: 0 },
      unanswered: collection.waiting.size,
    }
    for (const figures of answers.values()) {
      pod.inFlight += figures.inFlight
      pod.open += figures.open
    }
    for (const slot of this.#host.slots()) {
      // A worker that did not answer this time still has its counters as last sent.
      pod.closed += slot.figures?.closed ?? 0
      pod.forced += slot.figures?.forced ?? 0
      pod.workers[slot.state ?? 'starting']++
    }
    if (this.#host.has(requester))
      this.#host.send(requester, { lameduck: PROTOCOL, type: 'metrics', id: collection.id, pod })
  }
}
