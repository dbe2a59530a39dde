import { EventEmitter } from 'node:events'
import type { Server, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  FORCE_EXIT_MARGIN_MS,
  FORCED_HOOK_BUDGET_MS,
  forceExitAfterMs,
  MAX_TIMER_MS,
} from './contract.js'
import { type CrashOrigin, describeCrash, onCrashes } from './crash.js'
import { describeValue, LameduckError } from './errors.js'
import { type Hook, type HookResult, type RegisteredHook, runHook, validateHook } from './hooks.js'
import type { LoggerLike, ResolvedOptions } from './options.js'
import type { ProbeState } from './probes.js'
import { FirstReady, ReadinessHolds } from './readiness.js'
import { onSignals } from './signals.js'
import type { Http2ServerLike } from './trackers/http2.js'

/** Where a process is in its life. Readiness answers 200 only in `ready`. */
export type State = 'starting' | 'ready' | 'draining' | 'stopping' | 'stopped'

/** How far along the lifecycle each state is: several lifecycles (a worker's instances, a
 * pod's workers) are as far along as the least advanced of them. */
export const STATE_RANK: Readonly<Record<State, number>> = {
  starting: 0,
  ready: 1,
  draining: 2,
  stopping: 3,
  stopped: 4,
}

/** Why the shutdown started. `retire`: a worker of `lameduck serve --workers` replaced by a
 * reload, with the reload's own lame-duck phase (its pod stays ready with the replacement). */
export type ShutdownReason =
  | { kind: 'signal'; signal: NodeJS.Signals }
  | { kind: 'manual'; reason: string | undefined }
  | { kind: 'retire'; drainDelay: number }
  /** `shutdownOnCrash`: the first uncaught exception or unhandled rejection. */
  | { kind: 'crash'; origin: CrashOrigin; error: unknown }

/** Why connections were destroyed instead of finishing, if they were. */
export type ForceCause =
  | { by: 'timeout'; shutdownTimeoutMs: number }
  | { by: 'signal'; signal: NodeJS.Signals }

export interface ShutdownOutcome {
  reason: ShutdownReason
  /** False when the lame-duck phase was skipped because the process was never ready. */
  drained: boolean
  /** Set when anything was cut short: the deadline passed or a second signal arrived. */
  forced: ForceCause | undefined
  durations: { drainMs: number; closeMs: number; hooksMs: number; totalMs: number }
  /** Connections that ended on their own after the drain began, and those destroyed. */
  connections: { closed: number; forced: number }
  /** Every onDrain callback, then every onShutdown hook in the order they ran. */
  hooks: HookResult[]
  /** True when the application closed a managed server's listener itself (its own SIGTERM
   * handler, `fastify.close()`) before lameduck's close phase: new connections were refused
   * while the Service may still have routed to the process. */
  listenerClosedByApp: boolean
  /** 0 when everything finished on its own; 1 when anything was forced or failed, or (with
   * `shutdownOnCrash`) the process crashed. */
  exitCode: 0 | 1
}

/** The lifecycles of this process (lameduck() may be called more than once: an application
 * server and an admin server set up in different modules) whose shutdown is running and
 * that end the process. The process exits when the last of them stops, with the highest of
 * their exit codes: the first to finish must not end the process while another still
 * drains its connections. */
const exiting = new Set<Lameduck>()
let exitingCode: 0 | 1 = 0

/** Crashes logged after the one that started the shutdown: a timer that throws every few
 * milliseconds would otherwise flood the log. */
const MAX_LOGGED_LATER_CRASHES = 10

/** What the lifecycle asks of each server's connection tracker, whatever its protocol
 * (src/trackers/: Http1Tracker for node:http and node:https, Http2Tracker for node:http2). */
export interface Tracker {
  /** Lame duck starts: move clients off their connections, keep serving. */
  drain(): void
  /** Resolves once what waits in the kernel has been accepted and read; before close(). */
  settle(): Promise<void>
  /** The listener closes; resolves when no connection is left. `deadlineMs`: how long the
   * close phase may last (shutdownTimeout) before what remains is destroyed. */
  close(deadlineMs: number): Promise<void>
  /** Deadline or forced: destroys what remains and returns how many. */
  destroyAll(): number
  /** Requests in flight now, for the metrics (`except`: the scrape's own response, or the
   * scrapes a worker of `lameduck serve --workers` is answering). */
  inFlight(except?: ServerResponse | ReadonlySet<ServerResponse>): number
  readonly size: number
  readonly closedCount: number
  readonly forcedCount: number
  /** When the application closed the listener itself (performance.now()), if it did. */
  readonly closedByAppAt: number | undefined
  /** Called once when the application closes the listener itself. */
  onClosedByApp: (() => void) | undefined
}

/** A request to shut down: a signal, or (from a `lameduck serve --workers` primary) a
 * retirement. */
export type ShutdownRequest =
  | { kind: 'signal'; signal: NodeJS.Signals }
  | { kind: 'retire'; drainDelay: number }

/** What lameduck() wires in when it runs inside a `lameduck serve --workers` worker
 * (src/cluster.ts). */
export interface Follower {
  /** Replaces process signal handling: the primary's signals and retirements arrive over
   * IPC. Returns a function that stops it. */
  onShutdownRequests(
    signals: readonly NodeJS.Signals[],
    handler: (request: ShutdownRequest) => void,
  ): () => void
  /** Readiness answers for the pod. */
  probeState(own: ProbeState): ProbeState
  /** The logger to use in this worker: `logger`, with the worker's id on every line. */
  logger(logger: LoggerLike | false): LoggerLike | false
  /** Reports the lifecycle's state to the primary from now on; its trackers' figures go
   * into the pod's metrics; its readiness checks answer the primary's reload. */
  attach(lifecycle: Lameduck, trackers: readonly Tracker[], options: ResolvedOptions): void
  /** Answers a scrape with the pod's figures, or this worker's own (marked so) when the
   * primary does not reply in time. Never rejects. */
  metrics(scrape: ServerResponse): Promise<string>
  /** Tells the primary how long this worker's shutdown may take. */
  deadline(ms: number): void
  /** Ends the process once the primary can no longer hand it a connection. */
  exit(code: number): void
}

export interface LifecycleParts {
  /** Resolved options, read-only. */
  options: Readonly<ResolvedOptions>
  /** The logger: `options.logger`, or the follower's tagged one. */
  logger: LoggerLike | false
  servers: readonly (Server | Http2ServerLike)[]
  trackers: readonly Tracker[]
  /** A separate server answering probes, closed last. */
  probeServer: Server | undefined
  /** Set in a worker of `lameduck serve --workers`: signals come from the primary. */
  follower?: Follower | undefined
}

const round = (ms: number) => Math.round(ms)

/** The reason as the log says it: the signal, `shutdown()`'s argument, `retire`, or the
 * crash's origin. */
function describeReason(reason: ShutdownReason): string {
  if (reason.kind === 'signal') return reason.signal
  if (reason.kind === 'retire') return 'retire'
  if (reason.kind === 'crash') return reason.origin
  return reason.reason ?? 'shutdown()'
}

export interface LameduckEvents {
  /** Every state transition, once. */
  state: [state: State, previous: State]
  /** The separate probe server failed (for example, its port is taken). */
  error: [error: Error]
  /** The separate probe server (`probes.port`) listens, at this address. */
  probeListening: [address: AddressInfo]
}

/**
 * The lifecycle of one process: readiness, the shutdown contract, the outcome.
 * Created by `lameduck()`; the public methods are its API.
 */
export class Lameduck extends EventEmitter<LameduckEvents> {
  readonly #options: Readonly<ResolvedOptions>
  readonly #logger: LoggerLike | false
  readonly #servers: readonly (Server | Http2ServerLike)[]
  readonly #trackers: readonly Tracker[]
  readonly #probeServer: Server | undefined
  readonly #drainHooks: RegisteredHook[] = []
  readonly #shutdownHooks: RegisteredHook[] = []
  readonly #force = new AbortController()
  readonly #holds = new ReadinessHolds()
  readonly #firstReady = new FirstReady()
  #state: State = 'starting'
  #started = false
  #appReady: boolean
  #notReadyReason: string | undefined
  #shutdown: Promise<ShutdownOutcome> | undefined
  #forceCause: ForceCause | undefined
  #forceExitTimer: NodeJS.Timeout | undefined
  #removeSignalHandlers: () => void
  #removeCrashHandlers: () => void = () => {}
  /** Crashes seen after the first, while the shutdown it started runs. */
  #laterCrashes = 0
  /** performance.now() at the start of the shutdown and at the end of each phase. */
  readonly #phaseMarks: number[] = []
  readonly #follower: Follower | undefined

  constructor(parts: LifecycleParts) {
    super()
    this.#options = parts.options
    this.#logger = parts.logger
    this.#servers = parts.servers
    this.#trackers = parts.trackers
    this.#probeServer = parts.probeServer
    this.#appReady = parts.options.autoReady
    this.#follower = parts.follower
    for (const server of this.#servers) {
      if (!server.listening) server.once('listening', () => this.#updateReadiness())
    }
    for (const tracker of this.#trackers) {
      tracker.onClosedByApp = () => this.#warnClosedByApp()
    }
    this.#removeSignalHandlers =
      parts.follower?.onShutdownRequests(parts.options.signals, (request) =>
        this.#onRequest(request),
      ) ?? onSignals(parts.options.signals, (signal) => this.#onRequest({ kind: 'signal', signal }))
    if (parts.options.shutdownOnCrash) {
      this.#removeCrashHandlers = onCrashes((origin, error) => this.#onCrash(origin, error))
    }
    // Let the caller attach 'state' listeners before a server that already listens makes us ready.
    queueMicrotask(() => this.#updateReadiness())
  }

  /** The current state. */
  get state(): State {
    return this.#state
  }

  /** True once the process has been ready at least once (the startup probe's answer). */
  get started(): boolean {
    return this.#started
  }

  /** The address of the separate probe server (with `probes.port`), once it listens. */
  get probeAddress(): AddressInfo | undefined {
    const address = this.#probeServer?.address()
    return address !== null && typeof address === 'object' ? address : undefined
  }

  /** How long each phase of the shutdown has taken so far (the running one until now), in
   * milliseconds; undefined before the shutdown starts. */
  get phaseDurations(): { drainMs: number; closeMs: number; hooksMs: number } | undefined {
    const [start, drainEnd, closeEnd, hooksEnd] = this.#phaseMarks
    if (start === undefined) return undefined
    const now = performance.now()
    const span = (from: number | undefined, to: number | undefined) =>
      from === undefined ? 0 : (to ?? now) - from
    return {
      drainMs: span(start, drainEnd),
      closeMs: span(drainEnd, closeEnd),
      hooksMs: span(closeEnd, hooksEnd),
    }
  }

  /** Why the application said it is not ready, if it did. */
  get notReadyReason(): string | undefined {
    return this.#notReadyReason
  }

  /** The names of the `holdReadiness` tasks still running. */
  get waitingFor(): string[] {
    return this.#holds.names
  }

  /** Resolves the first time the process is ready (every server listens, the application
   * is ready, no `holdReadiness` task runs). Rejects with LAMEDUCK_ERR_SHUTTING_DOWN if the
   * shutdown starts first. */
  whenFirstReady(): Promise<void> {
    return this.#firstReady.promise
  }

  /** Readiness answers 503 (`waitingFor` names the task) until `task` settles: a promise,
   * or an array of promises, all of which must settle. A rejection releases the hold too,
   * and is logged. Usable at any time: a process that was ready stops being ready. */
  holdReadiness(name: string, task: PromiseLike<unknown> | readonly PromiseLike<unknown>[]): this {
    this.#holds.add(name, task, (settled, failure) => {
      if (failure === undefined) {
        this.#log(
          'info',
          { event: 'hold', task: settled, ok: true },
          `lameduck: the task '${settled}' holding readiness settled`,
        )
      } else {
        const error = failure.error instanceof Error ? failure.error.message : String(failure.error)
        this.#log(
          'warn',
          { event: 'hold', task: settled, ok: false, error },
          `lameduck: the task '${settled}' holding readiness failed: ${error}; readiness no longer waits for it`,
        )
      }
      this.#updateReadiness()
    })
    this.#log(
      'info',
      { event: 'hold', task: name },
      `lameduck: readiness waits for the task '${name}'`,
    )
    this.#updateReadiness()
    return this
  }

  /** Marks the application ready; readiness answers 200 once every server also listens. */
  ready(): void {
    this.#appReady = true
    this.#notReadyReason = undefined
    this.#updateReadiness()
  }

  /** Marks the application not ready (readiness answers 503 with the reason) until `ready()`. */
  notReady(reason?: string): void {
    if (reason !== undefined && typeof reason !== 'string') {
      throw new LameduckError(
        'LAMEDUCK_ERR_INVALID_OPTION',
        `Expected the reason passed to notReady to be a string, got ${describeValue(reason)}`,
      )
    }
    this.#appReady = false
    this.#notReadyReason = reason
    this.#updateReadiness()
  }

  /** Runs `fn` when the lame-duck phase starts: stop queue consumers, tell WebSocket clients
   * to reconnect. Bounded by `hookTimeout` (or `options.timeout`); does not delay the phase. */
  onDrain(fn: Hook, options?: { timeout?: number; name?: string }): this {
    this.#assertNotShuttingDown('onDrain')
    const name = options?.name ?? (fn?.name || `onDrain #${this.#drainHooks.length + 1}`)
    this.#drainHooks.push(validateHook('onDrain', name, fn, options, this.#options.hookTimeout))
    return this
  }

  /** Runs `fn` after every connection is closed. Hooks run one at a time, the last
   * registered first (like `defer`), each bounded by its timeout (default `hookTimeout`). */
  onShutdown(name: string, fn: Hook, options?: { timeout?: number }): this {
    this.#assertNotShuttingDown('onShutdown')
    this.#shutdownHooks.push(
      validateHook('onShutdown', name, fn, options, this.#options.hookTimeout),
    )
    return this
  }

  /** Starts the shutdown (as a signal would) and resolves to its outcome; every caller gets
   * the same promise. */
  shutdown(reason?: string): Promise<ShutdownOutcome> {
    this.#shutdown ??= this.#run({ kind: 'manual', reason })
    return this.#shutdown
  }

  #assertNotShuttingDown(method: string): void {
    if (this.#shutdown !== undefined) {
      throw new LameduckError(
        'LAMEDUCK_ERR_SHUTTING_DOWN',
        `${method}() was called after the shutdown started (state '${this.#state}'); register hooks at startup`,
      )
    }
  }

  /** A signal or a retirement: the first starts the shutdown, the next forces it. */
  #onRequest(request: ShutdownRequest): void {
    if (this.#shutdown === undefined) {
      this.#shutdown = this.#run(request)
    } else if (this.#state !== 'stopped') {
      // A retirement is the primary's reload signal.
      this.#forceNow(request.kind === 'signal' ? request.signal : 'SIGHUP')
    }
  }

  /** The first crash starts the shutdown, unless one is running; every crash makes the exit
   * code 1. Those during the shutdown are logged (the first few) and change nothing else:
   * the force-exit timer bounds the rest. */
  #onCrash(origin: CrashOrigin, error: unknown): void {
    const first = this.#shutdown === undefined
    if (!first && ++this.#laterCrashes > MAX_LOGGED_LATER_CRASHES) return
    this.#log(
      'error',
      { event: 'crash', origin, ...describeCrash(error), during: first ? undefined : this.#state },
      first
        ? `lameduck: ${origin}: shutting down (exit code 1): ${describeCrash(error).error}`
        : `lameduck: ${origin} during the shutdown (${this.#state}): ${describeCrash(error).error}${this.#laterCrashes === MAX_LOGGED_LATER_CRASHES ? ' (further ones are not logged)' : ''}`,
    )
    if (first) this.#shutdown = this.#run({ kind: 'crash', origin, error })
  }

  /** A second signal: every wait ends now, connections are destroyed, hooks get
   * FORCED_HOOK_BUDGET_MS in all, and the process exits 1. */
  #forceNow(signal: NodeJS.Signals): void {
    if (this.#force.signal.aborted) return
    this.#forceCause ??= { by: 'signal', signal }
    this.#log('warn', { event: 'force', signal }, `lameduck: second ${signal}: forcing shutdown`)
    this.#armForceExit(FORCED_HOOK_BUDGET_MS + FORCE_EXIT_MARGIN_MS)
    this.#force.abort()
    // The hooks' budget counts from this signal, whether or not a hook has started yet.
    void this.#forcedHookCut()
  }

  #warnClosedByApp(): void {
    // Before it was ever ready, no Service routed to this process: nothing to warn about.
    if (!this.#started) return
    const during = this.#state === 'draining' ? 'during the lame duck' : `while ${this.#state}`
    this.#log(
      'warn',
      { event: 'listener-closed-early', state: this.#state },
      `lameduck: the application closed the listener itself ${during}: new connections are refused while the Service may still route to this process; let lameduck close it (remove the application's own server.close() on SIGTERM)`,
    )
  }

  #updateReadiness(): void {
    if (this.#shutdown !== undefined) return
    if (this.#state !== 'starting' && this.#state !== 'ready') return
    const next =
      this.#appReady && this.#holds.size === 0 && this.#servers.every((s) => s.listening)
        ? 'ready'
        : 'starting'
    if (next === 'ready') this.#started = true
    const fields: Record<string, unknown> = {}
    if (next === 'starting' && this.#notReadyReason !== undefined)
      fields.reason = this.#notReadyReason
    if (next === 'starting' && this.#holds.size > 0) fields.waitingFor = this.#holds.names
    this.#setState(next, fields)
    if (next === 'ready') this.#firstReady.resolve()
  }

  #setState(state: State, fields: Record<string, unknown> = {}, message?: string): void {
    const previous = this.#state
    if (previous === state) return
    this.#state = state
    this.#log(
      'info',
      { event: 'state', state, previous, ...fields },
      message ?? `lameduck: ${state}`,
    )
    this.#emitState(state, previous)
  }

  /** Calls each 'state' listener in turn; one that throws, or an async one whose promise
   * rejects, is logged and the next still runs, as hooks are isolated: a listener's bug
   * must not stop the shutdown mid-phase (a rejection left unhandled would end the process
   * with the in-flight requests reset). */
  #emitState(state: State, previous: State): void {
    const report = (error: unknown) => {
      const message = error instanceof Error ? error.message : String(error)
      this.#log(
        'error',
        { event: 'state-listener', state, error: message },
        `lameduck: a 'state' listener threw on '${state}': ${message}`,
      )
    }
    for (const listener of this.rawListeners('state') as ((...args: State[]) => unknown)[]) {
      try {
        const result = listener.call(this, state, previous)
        if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
          ;(result as PromiseLike<unknown>).then(undefined, report)
        }
      } catch (error) {
        report(error)
      }
    }
  }

  #log(level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, message: string): void {
    const logger = this.#logger
    if (logger !== false) logger[level](fields, message)
  }

  #connections(): number {
    let open = 0
    for (const tracker of this.#trackers) open += tracker.size
    return open
  }

  /** Ends the process at `ms` from now, whatever the application does. Unref'd: it never
   * keeps a process alive that would otherwise exit. */
  #armForceExit(budget: number): void {
    this.#follower?.deadline(Math.min(budget, MAX_TIMER_MS))
    if (!this.#options.exit) return
    // A sum of phase budgets past setTimeout's limit would fire after 1 ms.
    const ms = Math.min(budget, MAX_TIMER_MS)
    clearTimeout(this.#forceExitTimer)
    this.#forceExitTimer = setTimeout(() => {
      this.#log(
        'error',
        { event: 'force-exit', state: this.#state },
        `lameduck: still running ${ms} ms after the deadline was armed; exiting 1`,
      )
      process.exit(1)
    }, ms)
    this.#forceExitTimer.unref()
  }

  /** Resolves after `ms`, or at once when the shutdown is forced. The timer is not
   * unref'd: a shutdown in progress keeps the process alive (bounded by the force-exit
   * timer), or the process could end mid-phase with exit code 0. */
  #wait(ms: number, cancel?: AbortSignal): Promise<void> {
    const signal = this.#force.signal
    if (signal.aborted || cancel?.aborted || ms === 0) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      signal.addEventListener('abort', done, { once: true })
      cancel?.addEventListener('abort', done, { once: true })
      function done() {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        cancel?.removeEventListener('abort', done)
        resolve()
      }
    })
  }

  /**
   * The shutdown contract, in order:
   *
   * 1. Signal: arm an unref'd timer that ends the process by drainDelay + shutdownTimeout +
   *    hook budget + margin, whatever the application does. A second signal forces.
   * 2. Lame duck (drainDelay), only if the process was ever ready: readiness answers 503,
   *    the listener stays open, every response carries `Connection: close` and its socket
   *    closes after it; onDrain callbacks start.
   * 3. Close (shutdownTimeout): the listener closes; idle connections and connections that
   *    never sent a request close; in-flight requests finish and their sockets close. The
   *    phase ends when the last connection is gone; at the deadline the rest are destroyed.
   * 4. Hooks: onDrain callbacks are awaited, then onShutdown hooks run last-registered
   *    first, each bounded by its timeout; a failing hook does not stop the next.
   * 5. Exit: `stopped`; exit code 0 if everything finished on its own, else 1.
   */
  async #run(reason: ShutdownReason): Promise<ShutdownOutcome> {
    const started = performance.now()
    if (this.#options.exit) exiting.add(this)
    this.#phaseMarks.push(started)
    const drains = this.#started
    if (!drains) {
      this.#firstReady.reject(
        new LameduckError(
          'LAMEDUCK_ERR_SHUTTING_DOWN',
          'The shutdown started before the process was ever ready',
        ),
      )
    }
    const drainDelay = reason.kind === 'retire' ? reason.drainDelay : this.#options.drainDelay
    this.#armForceExit(
      forceExitAfterMs({
        drainDelayMs: drains ? drainDelay : 0,
        shutdownTimeoutMs: this.#options.shutdownTimeout,
        hooksMs: this.#hookBudget(),
      }),
    )
    const why = describeReason(reason)
    const drainResults = drains
      ? (await this.#lameDuck(why, drainDelay)).results
      : Promise.resolve([])
    this.#phaseMarks.push(performance.now())
    await this.#close(why)
    this.#phaseMarks.push(performance.now())
    const hooks = await this.#hooks(drainResults)
    this.#phaseMarks.push(performance.now())
    return this.#exit(reason, drains, hooks)
  }

  /** Every onShutdown hook's timeout, plus the longest onDrain callback's. */
  #hookBudget(): number {
    return (
      this.#shutdownHooks.reduce((sum, hook) => sum + hook.timeoutMs, 0) +
      this.#drainHooks.reduce((max, hook) => Math.max(max, hook.timeoutMs), 0)
    )
  }

  /** 2. Lame duck: `draining`, the trackers move clients off, onDrain callbacks start; then
   * `drainDelay`. Resolves with the callbacks' results, still running (awaited in the hooks
   * phase). */
  async #lameDuck(why: string, drainDelay: number): Promise<{ results: Promise<HookResult[]> }> {
    this.#setState(
      'draining',
      { reason: why, drainDelayMs: drainDelay, connections: this.#connections() },
      drainDelay === 0
        ? `lameduck: draining (${why}): readiness 503, no lame-duck delay (drainDelay 0), closing now`
        : `lameduck: draining (${why}): readiness 503, serving for ${drainDelay} ms with Connection: close`,
    )
    for (const tracker of this.#trackers) tracker.drain()
    const results = Promise.all(
      this.#drainHooks.map((hook) => runHook(hook, 'drain', this.#forcedHookCut())),
    )
    await this.#wait(drainDelay)
    return { results }
  }

  /** 3. Close, once what waits in the kernel (after a blocked event loop: new connections in
   * the accept queue, requests in socket buffers) has been accepted and read; at the
   * deadline, what remains is destroyed. */
  async #close(why: string): Promise<void> {
    const shutdownTimeout = this.#options.shutdownTimeout
    if (!this.#force.signal.aborted) {
      await Promise.all(this.#trackers.map((tracker) => tracker.settle()))
    }
    const openAtClose = this.#connections()
    // Close first, then announce: whoever sees 'stopping' finds the listener closed.
    const closed = Promise.all(this.#trackers.map((tracker) => tracker.close(shutdownTimeout)))
    const drainMs = this.phaseDurations?.drainMs ?? 0
    this.#setState(
      'stopping',
      { reason: why, drainMs: round(drainMs), connections: openAtClose },
      `lameduck: stopping: listener closed, ${openAtClose} connection(s) open, waiting up to ${shutdownTimeout} ms`,
    )
    const closedFirst = new AbortController()
    const deadline = this.#wait(shutdownTimeout, closedFirst.signal).then(() => 'deadline' as const)
    const first = await Promise.race([closed.then(() => 'closed' as const), deadline])
    closedFirst.abort()
    if (first === 'closed') return
    this.#forceCause ??= { by: 'timeout', shutdownTimeoutMs: shutdownTimeout }
    let destroyed = 0
    for (const tracker of this.#trackers) destroyed += tracker.destroyAll()
    const cause = this.#forceCause
    // A second signal can arrive when every connection is already gone: nothing to report.
    if (destroyed > 0) {
      this.#log(
        'warn',
        { event: 'forced', connections: destroyed, cause: cause?.by },
        cause?.by === 'signal'
          ? `lameduck: forced ${destroyed} connection(s) closed on ${cause.signal}`
          : `lameduck: forced ${destroyed} connection(s) still open after shutdownTimeout ${shutdownTimeout} ms`,
      )
    }
    await closed
  }

  /** 4. Hooks: the onDrain callbacks' results, then every onShutdown hook, last registered
   * first; each failure is logged. */
  async #hooks(drainResults: Promise<HookResult[]>): Promise<HookResult[]> {
    const hooks = await drainResults
    for (const hook of [...this.#shutdownHooks].reverse()) {
      hooks.push(
        this.#hookBudgetSpent
          ? { name: hook.name, phase: 'shutdown', status: 'skipped', durationMs: 0 }
          : await runHook(hook, 'shutdown', this.#forcedHookCut()),
      )
    }
    for (const result of hooks) this.#logHook(result)
    return hooks
  }

  #logHook(result: HookResult): void {
    const fields = { event: 'hook', hook: result.name, phase: result.phase, status: result.status }
    if (result.status === 'error') {
      const message = result.error instanceof Error ? result.error.message : String(result.error)
      this.#log(
        'error',
        { ...fields, error: message },
        `lameduck: ${result.phase} hook '${result.name}' failed: ${message}`,
      )
    } else if (result.status === 'skipped') {
      this.#log(
        'error',
        fields,
        `lameduck: ${result.phase} hook '${result.name}' skipped: the forced shutdown's hook budget ran out`,
      )
    } else if (result.status === 'timeout') {
      this.#log(
        'error',
        { ...fields, timeoutMs: result.timeoutMs },
        `lameduck: ${result.phase} hook '${result.name}' timed out after ${result.durationMs} ms`,
      )
    }
  }

  /** 5. Exit: the outcome, `stopped`, and the exit (unless `exit: false`). */
  #exit(reason: ShutdownReason, drained: boolean, hooks: HookResult[]): ShutdownOutcome {
    const forced = this.#forceCause
    const connections = { closed: 0, forced: 0 }
    for (const tracker of this.#trackers) {
      connections.closed += tracker.closedCount
      connections.forced += tracker.forcedCount
    }
    const exitCode =
      forced !== undefined ||
      hooks.some((h) => h.status !== 'ok') ||
      reason.kind === 'crash' ||
      this.#laterCrashes > 0
        ? 1
        : 0
    const [start = 0, drainEnd = 0, closeEnd = 0, hooksEnd = 0] = this.#phaseMarks
    const outcome: ShutdownOutcome = {
      reason,
      drained,
      forced,
      durations: {
        drainMs: round(drainEnd - start),
        closeMs: round(closeEnd - drainEnd),
        hooksMs: round(hooksEnd - closeEnd),
        totalMs: round(performance.now() - start),
      },
      connections,
      hooks,
      listenerClosedByApp: this.#trackers.some((t) => t.closedByAppAt !== undefined),
      exitCode,
    }
    this.#removeSignalHandlers()
    this.#removeCrashHandlers()
    if (this.#probeServer !== undefined) {
      this.#probeServer.close()
      this.#probeServer.closeAllConnections()
    }
    clearTimeout(this.#forceExitTimer)
    this.#setState(
      'stopped',
      {
        reason: describeReason(reason),
        exitCode,
        forced: forced?.by,
        connections,
        durations: outcome.durations,
        hooksFailed: hooks.filter((h) => h.status !== 'ok').map((h) => h.name),
        hooks: hooks.map((h) => ({ name: h.name, phase: h.phase, status: h.status })),
        listenerClosedByApp: outcome.listenerClosedByApp,
      },
      `lameduck: stopped in ${outcome.durations.totalMs} ms, exit code ${exitCode}`,
    )
    if (this.#options.exit) {
      exiting.delete(this)
      if (exitCode > exitingCode) exitingCode = exitCode
      // Another lifecycle of this process still shuts down: the last one to stop exits.
      if (exiting.size > 0) return outcome
      if (this.#follower !== undefined) this.#follower.exit(exitingCode)
      else process.exit(exitingCode)
    }
    return outcome
  }

  /** Resolves FORCED_HOOK_BUDGET_MS after a second signal: from then on every hook still
   * running counts as timed out. Never resolves otherwise. */
  #forcedHookCut(): Promise<void> {
    this.#hookCut ??= new Promise<void>((resolve) => {
      const spent = () => {
        this.#hookBudgetSpent = true
        resolve()
      }
      const start = () => setTimeout(spent, FORCED_HOOK_BUDGET_MS).unref()
      if (this.#force.signal.aborted) start()
      else this.#force.signal.addEventListener('abort', start, { once: true })
    })
    return this.#hookCut
  }
  #hookCut: Promise<void> | undefined
  /** Set once the forced shutdown's hook budget has run out: hooks not started are skipped. */
  #hookBudgetSpent = false
}
