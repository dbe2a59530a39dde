// The primary of `lameduck serve --workers`: forks N workers with node:cluster, owns the
// signals, keeps one readiness for the pod, drains every worker together, reloads them one
// by one, restarts crashed ones with backoff, and sums every worker's metrics for a scrape.
// The worker side is src/cluster.ts. Collaborators, one concern a file: slot.ts (a worker as
// the primary knows it), backstop.ts (deadlines), collector.ts (metrics), reload.ts
// (SIGHUP), crashes.ts (restart policy).
import cluster from 'node:cluster'
import {
  isProtocolMessage,
  type PodState,
  PROTOCOL,
  type ToPrimary,
  type ToWorker,
  WORKERS_ENV,
} from '../../cluster.js'
import { FORCE_EXIT_MARGIN_MS, FORCED_HOOK_BUDGET_MS, forceExitAfterMs } from '../../contract.js'
import { STATE_RANK, type State } from '../../lifecycle.js'
import type { LoggerLike } from '../../options.js'
import { Backstop } from './backstop.js'
import { MetricsCollector } from './collector.js'
import { type CrashPolicy, CrashTracker } from './crashes.js'
import { gateConnections } from './gate.js'
import { Reloader } from './reload.js'
import { newSlot, type Role, type Slot } from './slot.js'

export interface WorkersOptions {
  /** How many workers serve at once. */
  workers: number
  /** The application's entry script, its arguments, and node's own flags for it. */
  exec: string
  args: readonly string[]
  execArgv: readonly string[]
  /** Every worker's environment. It carries the lameduck settings (LAMEDUCK_*), so every
   * worker drains with the same drainDelay and shutdownTimeout as the primary computes. */
  env: NodeJS.ProcessEnv
  drainDelay: number
  shutdownTimeout: number
  hookTimeout: number
  /** Signals that shut the pod down; a second one forces. */
  signals: readonly NodeJS.Signals[]
  /** The signal that reloads the workers one by one. */
  reloadSignal: NodeJS.Signals
  /** The lame-duck phase of a worker retired by a reload. */
  reloadDrainDelay: number
  /** How long a replacement worker may take to become ready before the reload gives up. */
  readyTimeout: number
  crashes: CrashPolicy
  logger: LoggerLike | false
}

/** How long after it listens a worker may take to call lameduck() before a warning. */
const SILENT_WORKER_MS = 2_000

/** The pod's shutdown, once it began. */
interface Shutdown {
  signal: string
  forced: boolean
  exitCode: 0 | 1
}

/**
 * The primary. One per process: node:cluster's settings are global.
 *
 * The pod's state is the lifecycle's vocabulary (STATE_RANK): `starting` until every
 * worker has been ready together, `ready`, back to `starting` while short of ready workers
 * (readiness words it `not ready`, as a single process after `notReady()`), `draining`
 * from the first signal, `stopped` once every worker has exited.
 *
 * Shutdown, on the first signal:
 * 1. Every worker is told at once; readiness answers 503 in all of them; each runs the
 *    lameduck contract with the same drainDelay and shutdownTimeout.
 * 2. Each worker reports its own deadline; the primary SIGKILLs any worker still alive a
 *    margin past the latest one (a worker stuck in a synchronous loop cannot end itself).
 * 3. The primary exits last: 0 only if every worker exited 0 on its own.
 * A second signal is forwarded, which forces every worker.
 */
export class Primary {
  /** Resolves to the pod's exit code once every worker has exited. */
  readonly done: Promise<number>

  readonly #options: WorkersOptions
  readonly #slots = new Map<number, Slot>()
  #pod: State = 'starting'
  /** True once every worker has been ready together (the startup probe's answer). */
  #started = false
  #shutdown: Shutdown | undefined
  #finished = false
  /** The pod state last sent to the workers. */
  #lastSent = ''
  readonly #restarts = new Set<NodeJS.Timeout>()
  readonly #crashes: CrashTracker
  readonly #collector: MetricsCollector
  readonly #backstop: Backstop
  readonly #reloader: Reloader
  #resolveDone: (code: number) => void = () => {}

  constructor(options: WorkersOptions) {
    this.#options = options
    this.done = new Promise<number>((resolve) => {
      this.#resolveDone = resolve
    })
    this.#crashes = new CrashTracker(options.crashes)
    this.#collector = new MetricsCollector({
      slots: () => this.#slots.values(),
      has: (slot) => this.#slots.has(slot.worker.id),
      state: () => this.#metricsState(),
      shuttingDown: () => this.#shutdown !== undefined,
      send: (slot, message) => this.#send(slot, message),
    })
    this.#backstop = new Backstop(
      () => this.#killAll(),
      (slot) => this.#killRetiring(slot),
    )
    this.#reloader = new Reloader({
      workers: options.workers,
      readyTimeout: options.readyTimeout,
      reloadDrainDelay: options.reloadDrainDelay,
      shuttingDown: () => this.#shutdown !== undefined,
      serving: () => [...this.#slots.values()].filter((s) => s.role === 'serving'),
      has: (slot) => this.#slots.has(slot.worker.id),
      fork: (role) => this.#fork(role),
      command: (slot, message) => this.#command(slot, message),
      check: (slot, ms) => this.#check(slot, ms),
      update: () => this.#update(),
      log: (level, fields, message) => this.#log(level, fields, message),
    })
  }

  /** Installs the signal handlers and forks the workers. */
  start(): this {
    const options = this.#options
    cluster.setupPrimary({
      exec: options.exec,
      args: [...options.args],
      execArgv: [...options.execArgv],
    })
    const handlers = new Map<NodeJS.Signals, () => void>()
    for (const signal of options.signals) handlers.set(signal, () => this.#onSignal(signal))
    handlers.set(options.reloadSignal, () => this.#reloader.request(options.reloadSignal))
    // Never removed: a signal that arrives between the last worker's exit and the primary's
    // own must not end the primary by its default action (and a different exit code).
    for (const [signal, handler] of handlers) process.on(signal, handler)
    this.#log(
      'info',
      {
        event: 'primary',
        pid: process.pid,
        workers: options.workers,
        exec: options.exec,
        drainDelayMs: options.drainDelay,
        shutdownTimeoutMs: options.shutdownTimeout,
      },
      `lameduck serve: starting ${options.workers} worker(s) of ${options.exec}`,
    )
    for (let i = 0; i < options.workers; i++) this.#fork('serving')
    return this
  }

  #log(level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string): void {
    if (this.#options.logger !== false)
      this.#options.logger[level]({ role: 'primary', ...fields }, message)
  }

  #send(slot: Slot, message: ToWorker): void {
    if (slot.worker.isConnected()) slot.worker.send(message)
  }

  #serving(): number {
    let count = 0
    for (const slot of this.#slots.values()) if (slot.role === 'serving') count++
    return count
  }

  #readyServing(): number {
    let count = 0
    for (const slot of this.#slots.values())
      if (slot.role === 'serving' && slot.state === 'ready') count++
    return count
  }

  /** Whether node:cluster may hand this worker a new connection: a ready worker serving the
   * pod may; another (starting, a replacement not ready yet, retiring) only while no worker
   * is ready and serving, as at the pod's start and during its shutdown. */
  #admits(slot: Slot): boolean {
    if (slot.role === 'serving' && slot.state === 'ready') return true
    return this.#readyServing() === 0
  }

  /** Readiness's status word for the pod's state. */
  #status(): string {
    return this.#pod === 'starting' && this.#started ? 'not ready' : this.#pod
  }

  #podState(): PodState {
    if (STATE_RANK[this.#pod] >= STATE_RANK.draining)
      return { ready: false, started: this.#started, status: 'draining', reason: undefined }
    const reason = `${this.#readyServing()} of ${this.#options.workers} workers ready`
    return { ready: this.#pod === 'ready', started: this.#started, status: this.#status(), reason }
  }

  /** Recomputes pod readiness and tells every worker when it changed. */
  #update(): void {
    if (this.#shutdown === undefined) {
      const ready = this.#readyServing() >= this.#options.workers
      const next: State = ready ? 'ready' : 'starting'
      if (next !== this.#pod) {
        this.#pod = next
        if (ready) this.#started = true
        const state = this.#podState()
        this.#log(
          ready ? 'info' : 'warn',
          { event: 'pod', state: state.status, reason: state.reason },
          `lameduck serve: pod ${state.status} (${state.reason})`,
        )
      }
    }
    const state = this.#podState()
    const key = JSON.stringify(state)
    if (key === this.#lastSent) return
    this.#lastSent = key
    for (const slot of this.#slots.values())
      this.#send(slot, { lameduck: PROTOCOL, type: 'pod', pod: state })
  }

  #fork(role: Role): Slot {
    const worker = cluster.fork({ ...this.#options.env, [WORKERS_ENV]: String(process.pid) })
    const slot = newSlot(worker, role)
    this.#slots.set(worker.id, slot)
    gateConnections(worker, () => this.#admits(slot))
    this.#log(
      'info',
      { event: 'worker-start', worker: worker.id, pid: worker.process.pid, slot: role },
      `lameduck serve: worker ${worker.id} started (pid ${worker.process.pid}, ${role})`,
    )
    worker.on('message', (message: unknown) => {
      if (isProtocolMessage(message)) this.#onMessage(slot, message as ToPrimary)
    })
    worker.once('listening', () => {
      // A worker that listens but never reports is an app that does not call lameduck():
      // it can never be ready, and neither can the pod. Say so once, not silently.
      setTimeout(() => {
        if (slot.state === undefined && this.#slots.has(worker.id)) {
          this.#log(
            'warn',
            { event: 'worker-silent', worker: worker.id, pid: worker.process.pid },
            `lameduck serve: worker ${worker.id} listens but its app has not called lameduck(server); the pod is ready only when every worker's app does`,
          )
        }
      }, SILENT_WORKER_MS).unref()
    })
    worker.on('exit', (code: number | null, signal: string | null) =>
      this.#onExit(slot, code, signal as NodeJS.Signals | null),
    )
    // A failed send (the worker is exiting) is not an error of the pod: 'exit' follows.
    worker.on('error', () => {})
    return slot
  }

  #onMessage(slot: Slot, message: ToPrimary): void {
    switch (message.type) {
      case 'exiting':
        this.#collector.record(slot, message.figures)
        this.#send(slot, { lameduck: PROTOCOL, type: 'exit' })
        return
      case 'metrics':
        this.#collector.collect(slot, message.id)
        return
      case 'figures':
        this.#collector.figures(slot, message.id, message.figures)
        return
      case 'deadline':
        if (this.#shutdown !== undefined) this.#backstop.extend(message.ms)
        else if (slot.role === 'retiring') this.#backstop.retire(slot, message.ms)
        return
      case 'state':
        this.#onState(slot, message.state)
        return
      case 'checked':
        slot.worker.emit('lameduck-checked', message.id, message.failed)
        return
    }
  }

  #onState(slot: Slot, state: State): void {
    const previous = slot.state
    slot.state = state
    if (previous === undefined) {
      this.#send(slot, { lameduck: PROTOCOL, type: 'pod', pod: this.#podState() })
      if (slot.command !== undefined) this.#send(slot, slot.command)
    }
    if (state === 'ready' && previous !== 'ready') {
      this.#log(
        'info',
        {
          event: 'worker-ready',
          worker: slot.worker.id,
          pid: slot.worker.process.pid,
          slot: slot.role,
          ms: Math.round(performance.now() - slot.startedAt),
        },
        `lameduck serve: worker ${slot.worker.id} ready`,
      )
    }
    slot.worker.emit('lameduck-state', state)
    this.#update()
  }

  #nextCheck = 0

  /** Asks a worker to run its readiness checks; resolves to the failing ones (`name:
   * reason`), or undefined when it does not answer within `ms` or exits. */
  #check(slot: Slot, ms: number): Promise<string[] | undefined> {
    const id = ++this.#nextCheck
    return new Promise((resolve) => {
      const timer = setTimeout(() => settle(undefined), ms).unref()
      const onChecked = (answered: number, failed: string[]) => {
        if (answered === id) settle(failed)
      }
      const onExit = () => settle(undefined)
      const settle = (failed: string[] | undefined) => {
        clearTimeout(timer)
        slot.worker.off('lameduck-checked', onChecked)
        slot.worker.off('exit', onExit)
        resolve(failed)
      }
      slot.worker.on('lameduck-checked', onChecked)
      slot.worker.once('exit', onExit)
      this.#send(slot, { lameduck: PROTOCOL, type: 'check', id })
    })
  }

  /** Tells a worker to shut down: over IPC once its lameduck() runs, else by SIGTERM (a
   * worker still loading serves nothing and has no handler yet). */
  #command(slot: Slot, message: ToWorker): void {
    slot.command = message
    if (slot.state !== undefined) this.#send(slot, message)
    else {
      slot.stoppedLoading = true
      slot.worker.process.kill('SIGTERM')
    }
  }

  #onExit(slot: Slot, code: number | null, signal: NodeJS.Signals | null): void {
    this.#slots.delete(slot.worker.id)
    this.#collector.exited(slot)
    const id = slot.worker.id
    const fields = { worker: id, pid: slot.worker.process.pid, code, signal, slot: slot.role }
    const how = signal === null ? `code ${code}` : signal
    if (this.#shutdown !== undefined) {
      const clean = code === 0 || (slot.stoppedLoading && signal === 'SIGTERM')
      if (!clean) this.#shutdown.exitCode = 1
      this.#log(
        clean ? 'info' : 'warn',
        { event: 'worker-exit', ...fields },
        `lameduck serve: worker ${id} exited (${how})`,
      )
      this.#update()
      if (this.#slots.size === 0) this.#finish()
      return
    }
    if (slot.role === 'retiring') {
      this.#backstop.retired(slot)
      this.#log(
        code === 0 ? 'info' : 'warn',
        { event: 'worker-exit', ...fields },
        `lameduck serve: worker ${id} retired (${how})`,
      )
      this.#update()
      return
    }
    if (slot.role === 'replacement') {
      // The reload waiting on it reports the failure.
      this.#log(
        'error',
        { event: 'worker-exit', ...fields },
        `lameduck serve: worker ${id} (${how})`,
      )
      this.#update()
      return
    }
    this.#onCrash(fields, how)
  }

  #onCrash(fields: Record<string, unknown> & { worker: number }, how: string): void {
    const verdict = this.#crashes.crash(performance.now())
    const { windowMs } = this.#options.crashes
    if (verdict.kind === 'loop') {
      this.#log(
        'error',
        { event: 'crash-loop', ...fields, crashes: verdict.recent, windowMs },
        `lameduck serve: worker ${fields.worker} exited (${how}); ${verdict.recent} crashes within ${windowMs} ms: shutting the pod down, exit code 1`,
      )
      this.#update()
      this.#beginShutdown('crash-loop', 1)
      return
    }
    this.#log(
      'error',
      { event: 'worker-crash', ...fields, crashes: verdict.recent, restartInMs: verdict.delayMs },
      `lameduck serve: worker ${fields.worker} exited (${how}); restarting in ${verdict.delayMs} ms`,
    )
    this.#update()
    const timer = setTimeout(() => {
      this.#restarts.delete(timer)
      // A reload may have filled the place meanwhile.
      if (this.#shutdown === undefined && this.#serving() < this.#options.workers)
        this.#fork('serving')
    }, verdict.delayMs)
    this.#restarts.add(timer)
  }

  /** The pod's state for the metrics, as readiness reports it: ready or starting (also when
   * short of ready workers) until the shutdown; then the least advanced of the workers. */
  #metricsState(): State {
    if (this.#shutdown === undefined) return this.#pod
    let state: State = 'stopped'
    for (const slot of this.#slots.values()) {
      if (slot.state !== undefined && STATE_RANK[slot.state] < STATE_RANK[state]) state = slot.state
    }
    return STATE_RANK[state] < STATE_RANK.draining ? 'draining' : state
  }

  #onSignal(signal: NodeJS.Signals): void {
    if (this.#finished) return
    if (this.#shutdown === undefined) this.#beginShutdown(signal, 0)
    else this.#force(signal)
  }

  #beginShutdown(signal: string, exitCode: 0 | 1): void {
    if (this.#shutdown !== undefined) return
    const options = this.#options
    this.#shutdown = { signal, forced: false, exitCode }
    for (const timer of this.#restarts) clearTimeout(timer)
    this.#restarts.clear()
    const drainDelay = this.#started ? options.drainDelay : 0
    this.#log(
      'info',
      { event: 'pod', state: 'draining', reason: signal, workers: this.#slots.size },
      `lameduck serve: draining (${signal}): ${this.#slots.size} worker(s) answer readiness 503 and drain for ${drainDelay} ms`,
    )
    this.#pod = 'draining'
    this.#update()
    // Until the workers report their own deadlines, assume the pod's settings.
    this.#backstop.arm(
      forceExitAfterMs({
        drainDelayMs: drainDelay,
        shutdownTimeoutMs: options.shutdownTimeout,
        hooksMs: options.hookTimeout,
      }) + FORCE_EXIT_MARGIN_MS,
    )
    const message: ToWorker = {
      lameduck: PROTOCOL,
      type: 'signal',
      signal: (signal.startsWith('SIG') ? signal : 'SIGTERM') as NodeJS.Signals,
    }
    for (const slot of this.#slots.values()) {
      // A worker retiring in a reload is already shutting down; telling it again would
      // count as a second signal and force it.
      if (slot.role !== 'retiring') this.#command(slot, message)
    }
    if (this.#slots.size === 0) this.#finish()
  }

  #force(signal: NodeJS.Signals): void {
    const shutdown = this.#shutdown
    if (shutdown === undefined || shutdown.forced) return
    shutdown.forced = true
    shutdown.exitCode = 1
    this.#log(
      'warn',
      { event: 'force', signal, workers: this.#slots.size },
      `lameduck serve: second ${signal}: forcing ${this.#slots.size} worker(s)`,
    )
    for (const slot of this.#slots.values()) {
      if (slot.state === undefined) slot.worker.process.kill('SIGKILL')
      else this.#send(slot, { lameduck: PROTOCOL, type: 'signal', signal })
    }
    this.#backstop.arm(FORCED_HOOK_BUDGET_MS + 2 * FORCE_EXIT_MARGIN_MS)
  }

  /** The pod's deadline passed. */
  #killAll(): void {
    if (this.#shutdown !== undefined) this.#shutdown.exitCode = 1
    this.#log(
      'error',
      { event: 'force-exit', workers: [...this.#slots.keys()] },
      `lameduck serve: ${this.#slots.size} worker(s) still running past the deadline; SIGKILL`,
    )
    for (const slot of this.#slots.values()) slot.worker.process.kill('SIGKILL')
  }

  /** A retiring worker outlived its own deadline. */
  #killRetiring(slot: Slot): void {
    this.#log(
      'error',
      { event: 'worker-kill', worker: slot.worker.id, pid: slot.worker.process.pid },
      `lameduck serve: retiring worker ${slot.worker.id} outlived its own deadline; SIGKILL`,
    )
    slot.worker.process.kill('SIGKILL')
  }

  #finish(): void {
    if (this.#finished) return
    this.#finished = true
    this.#backstop.clear()
    const exitCode = this.#shutdown?.exitCode ?? 1
    this.#pod = 'stopped'
    this.#log(
      exitCode === 0 ? 'info' : 'warn',
      { event: 'stopped', reason: this.#shutdown?.signal, exitCode },
      `lameduck serve: every worker exited; exit code ${exitCode}`,
    )
    this.#resolveDone(exitCode)
  }
}
