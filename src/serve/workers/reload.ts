// The rolling reload of `lameduck serve --workers` (SIGHUP): one worker at a time, a
// replacement is ready before the worker it replaces is retired.
import { PROTOCOL, type ToWorker } from '../../cluster.js'
import { hasExited, type Role, type Slot, whenReady } from './slot.js'

/** What the reload asks of the primary. */
export interface ReloadHost {
  /** How many workers the pod has when complete. */
  readonly workers: number
  /** A replacement must be ready within this. */
  readonly readyTimeout: number
  /** The lame-duck phase of a retired worker. */
  readonly reloadDrainDelay: number
  shuttingDown(): boolean
  /** The workers serving now. */
  serving(): Slot[]
  has(slot: Slot): boolean
  fork(role: Role): Slot
  /** Tells a worker to shut down (see Primary). */
  command(slot: Slot, message: ToWorker): void
  /** Runs the worker's readiness checks: the failing ones, or undefined without an answer
   * within `ms`. */
  check(slot: Slot, ms: number): Promise<string[] | undefined>
  /** Pod readiness may have changed. */
  update(): void
  log(level: 'info' | 'error', fields: Record<string, unknown>, message: string): void
}

/** How often a reload asks again a replacement whose readiness checks failed. */
const CHECK_RETRY_MS = 250

export class Reloader {
  readonly #host: ReloadHost
  #running = false
  /** A reload was asked for while one ran: it follows. */
  #again = false

  constructor(host: ReloadHost) {
    this.#host = host
  }

  /** Starts a reload, or queues one after the reload that runs. */
  request(signal: NodeJS.Signals): void {
    if (this.#host.shuttingDown()) return
    if (this.#running) {
      this.#again = true
      this.#host.log(
        'info',
        { event: 'reload', phase: 'queued', signal },
        `lameduck serve: ${signal} during a reload: another reload follows this one`,
      )
      return
    }
    void this.#run(signal)
  }

  /** For each worker serving now: start its replacement, wait until it is ready, then
   * retire the old one and wait until it has exited. */
  async #run(signal: NodeJS.Signals): Promise<void> {
    const host = this.#host
    this.#running = true
    const began = performance.now()
    const old = host.serving()
    host.log(
      'info',
      { event: 'reload', phase: 'start', signal, workers: old.length },
      `lameduck serve: ${signal}: reloading ${old.length} worker(s) one at a time`,
    )
    let replaced = 0
    let failure: string | undefined
    for (const previous of old) {
      if (host.shuttingDown()) break
      if (!host.has(previous)) continue
      const result = await this.#replace(previous)
      if (result === 'stop') break
      if (typeof result === 'string' && result !== 'skipped') {
        failure = result
        break
      }
      if (result === true) replaced++
    }
    const ms = Math.round(performance.now() - began)
    if (failure !== undefined) {
      host.log(
        'error',
        { event: 'reload', phase: 'failed', replaced, reason: failure, ms },
        `lameduck serve: reload stopped after ${replaced} worker(s): ${failure}; the others keep serving`,
      )
    } else if (!host.shuttingDown()) {
      host.log(
        'info',
        { event: 'reload', phase: 'done', replaced, ms },
        `lameduck serve: reload done: ${replaced} worker(s) replaced in ${ms} ms`,
      )
    }
    this.#running = false
    if (this.#again && !host.shuttingDown()) {
      this.#again = false
      void this.#run(signal)
    }
  }

  /** Replaces one worker: true when done, 'skipped' when the old one had crashed meanwhile,
   * 'stop' when the pod's shutdown began, else why the replacement failed. */
  async #replace(previous: Slot): Promise<true | 'skipped' | 'stop' | string> {
    const host = this.#host
    const next = host.fork('replacement')
    const deadline = performance.now() + host.readyTimeout
    const ready = await whenReady(next, host.readyTimeout)
    // A shutdown during the wait has already told the replacement what to do.
    if (host.shuttingDown()) return 'stop'
    const checks = ready ? await this.#checksPass(next, deadline) : undefined
    if (host.shuttingDown()) return 'stop'
    if (!ready || checks !== undefined) {
      const failure = hasExited(next)
        ? `worker ${next.worker.id} exited before it was ready`
        : checks !== undefined
          ? `worker ${next.worker.id}'s readiness checks still failed after ${host.readyTimeout} ms (${checks})`
          : `worker ${next.worker.id} was not ready within ${host.readyTimeout} ms`
      this.#dismiss(next)
      return failure
    }
    if (!host.has(previous)) {
      // The old worker crashed while its replacement started: the replacement takes its
      // place, unless a restart already did.
      if (host.serving().length < host.workers) next.role = 'serving'
      else this.#dismiss(next)
      host.update()
      return 'skipped'
    }
    next.role = 'serving'
    previous.role = 'retiring'
    host.update()
    const retired = new Promise<void>((resolve) => previous.worker.once('exit', () => resolve()))
    host.log(
      'info',
      { event: 'worker-retire', worker: previous.worker.id, replacedBy: next.worker.id },
      `lameduck serve: worker ${next.worker.id} ready; retiring worker ${previous.worker.id} (drain ${host.reloadDrainDelay} ms)`,
    )
    host.command(previous, {
      lameduck: PROTOCOL,
      type: 'retire',
      drainDelay: host.reloadDrainDelay,
    })
    await retired
    return true
  }

  /** Asks the ready replacement for its readiness checks until they pass (undefined) or
   * the deadline passes (why they failed). A replacement put in service with failing
   * checks would make the pod answer readiness 503; the old worker keeps serving instead. */
  async #checksPass(slot: Slot, deadline: number): Promise<string | undefined> {
    let failure = 'no answer'
    for (;;) {
      const left = deadline - performance.now()
      if (left <= 0 || !this.#host.has(slot) || this.#host.shuttingDown()) return failure
      const failed = await this.#host.check(slot, left)
      if (failed !== undefined && failed.length === 0) return undefined
      if (failed !== undefined) failure = failed.join(', ')
      await new Promise((resolve) =>
        setTimeout(resolve, Math.min(CHECK_RETRY_MS, Math.max(0, deadline - performance.now()))),
      )
    }
  }

  /** Retires a replacement that will not serve, without a lame-duck phase. */
  #dismiss(slot: Slot): void {
    if (!this.#host.has(slot)) return
    slot.role = 'retiring'
    this.#host.command(slot, { lameduck: PROTOCOL, type: 'retire', drainDelay: 0 })
  }
}
