// The worker side of `lameduck serve --workers`. Inside a worker forked by that primary,
// `lameduck(server)` follows the primary over the cluster IPC channel instead of acting
// alone: the primary owns the signals and tells every worker when to drain, and readiness
// and metrics answer for the whole pod. Outside such a worker nothing here runs.
import type { Cluster } from 'node:cluster'
import type { ServerResponse } from 'node:http'
import {
  type Follower,
  type Lameduck,
  type ShutdownRequest,
  STATE_RANK,
  type State,
  type Tracker,
} from './lifecycle.js'
import {
  type Figures,
  type MetricsSource,
  type PodFigures,
  readFigures,
  renderPodMetrics,
  renderWorkerMetrics,
} from './metrics.js'
import type { LoggerLike, ResolvedOptions } from './options.js'
import { Checks, type ProbeState } from './probes.js'

/** Set by `lameduck serve --workers` in each worker's environment (to the primary's pid).
 * A worker of any other cluster primary does not follow it. */
export const WORKERS_ENV = 'LAMEDUCK_SERVE_WORKERS'
/** Tag of every message of this protocol, so the application's own IPC messages pass by. */
export const PROTOCOL = 'lameduck/1'

/** What the primary tells the pod: its readiness, shared by every worker's probes. */
export interface PodState {
  ready: boolean
  /** True once every worker has been ready together (the startup probe's answer). */
  started: boolean
  /** The readiness status word while not ready: starting, not ready, draining. */
  status: string
  /** Why, for a person: "1 of 2 workers ready". */
  reason: string | undefined
}

/** Primary → worker. */
export type ToWorker =
  /** Start the shutdown as this signal would; a second one forces it. */
  | { lameduck: typeof PROTOCOL; type: 'signal'; signal: NodeJS.Signals }
  /** Reload: shut this worker down with this lame-duck phase; its readiness answers for the
   * pod, which stays ready with the worker that replaced it. */
  | { lameduck: typeof PROTOCOL; type: 'retire'; drainDelay: number }
  | { lameduck: typeof PROTOCOL; type: 'pod'; pod: PodState }
  /** The answer to `exiting`: the primary hands this worker no more connections. */
  | { lameduck: typeof PROTOCOL; type: 'exit' }
  /** A scrape elsewhere in the pod: answer `figures` with this id. */
  | { lameduck: typeof PROTOCOL; type: 'collect'; id: number }
  /** A reload asks a ready replacement to run its readiness checks: answer `checked`. */
  | { lameduck: typeof PROTOCOL; type: 'check'; id: number }
  /** The answer to this worker's `metrics` request: the pod's figures. */
  | { lameduck: typeof PROTOCOL; type: 'metrics'; id: number; pod: PodFigures }

/** Worker → primary. */
export type ToPrimary =
  /** The worker's state (the least advanced of its lameduck instances). Sent at the first
   * `lameduck()` call and on every change. */
  | { lameduck: typeof PROTOCOL; type: 'state'; state: State; started: boolean }
  /** The worker's shutdown started; it ends the process within `ms` whatever happens. */
  | { lameduck: typeof PROTOCOL; type: 'deadline'; ms: number }
  /** The worker's shutdown is done; it exits once the primary answers `exit`. `figures`
   * are its last, which the primary keeps in the pod's counters. */
  | { lameduck: typeof PROTOCOL; type: 'exiting'; exitCode: number; figures: Figures }
  /** A scrape reached this worker: the primary collects every worker's figures and answers
   * `metrics` with this id. */
  | { lameduck: typeof PROTOCOL; type: 'metrics'; id: number }
  /** The answer to `collect`. */
  | { lameduck: typeof PROTOCOL; type: 'figures'; id: number; figures: Figures }
  /** The answer to `check`: the failing checks, `name: reason`. */
  | { lameduck: typeof PROTOCOL; type: 'checked'; id: number; failed: string[] }

export function isProtocolMessage(message: unknown): message is { type: string } {
  return (
    typeof message === 'object' &&
    message !== null &&
    (message as { lameduck?: unknown }).lameduck === PROTOCOL
  )
}

type RequestHandler = (request: ShutdownRequest) => void

/** How long a stopped worker waits for the primary's `exit` before it exits anyway. */
export const EXIT_ACK_TIMEOUT_MS = 1_000
/** How long the primary waits for the workers' figures for one scrape; a worker that has
 * not answered by then is left out (and counted as unanswered). */
export const METRICS_COLLECT_TIMEOUT_MS = 1_000
/** How long a scraped worker waits for the pod's figures before it answers with its own.
 * Past the primary's own bound, so a slow worker alone never causes the fallback. Under
 * Prometheus's default scrape timeout of 10 s. */
export const METRICS_ANSWER_TIMEOUT_MS = METRICS_COLLECT_TIMEOUT_MS + 500

let follower: ClusterFollower | undefined

/** node:cluster, in a worker. */
function clusterModule(): Cluster {
  return process.getBuiltinModule('node:cluster') as unknown as Cluster
}

/** The follower for this process when it is a worker of `lameduck serve --workers`, else
 * undefined. */
export function followPrimary(): Follower | undefined {
  // node:cluster is asked last: loading it in a primary creates two EventEmitters, and
  // lameduck() must not add kinds of object before the application's own (see http2Module
  // in trackers/http2.ts; node loads it itself when a server listens). In a worker, node
  // has loaded it already.
  if (process.env[WORKERS_ENV] === undefined || process.send === undefined) return undefined
  if (!clusterModule().isWorker) return undefined
  follower ??= new ClusterFollower()
  return follower
}

function tagged(logger: LoggerLike, worker: number): LoggerLike {
  return {
    info: (fields, message) => logger.info({ worker, ...fields }, message),
    warn: (fields, message) => logger.warn({ worker, ...fields }, message),
    error: (fields, message) => logger.error({ worker, ...fields }, message),
  }
}

class ClusterFollower implements Follower {
  #pod: PodState = { ready: false, started: false, status: 'starting', reason: undefined }
  #retiring = false
  readonly #handlers = new Set<RequestHandler>()
  /** Each lameduck() instance of this worker, with its options (its readiness checks). */
  readonly #attached: (MetricsSource & { options: ResolvedOptions })[] = []
  /** Scrapes waiting for the pod's figures: not in-flight requests of the pod. */
  readonly #scrapes = new Set<ServerResponse>()
  readonly #waiting = new Map<number, (pod: PodFigures) => void>()
  #nextScrape = 0
  /** Commands that arrived before any lameduck() instance could act on them. */
  #pending: ToWorker[] = []
  #lastSent = ''

  constructor() {
    process.on('message', (message: unknown) => {
      if (isProtocolMessage(message)) this.#onMessage(message as ToWorker)
    })
  }

  onShutdownRequests(signals: readonly NodeJS.Signals[], handler: RequestHandler): () => void {
    // The primary forwards its signals. Ignore the ones that reach the worker directly (a
    // terminal's Ctrl-C goes to the whole process group): acting on them too would count
    // the primary's forwarded copy as a second signal and force the shutdown. SIGHUP is the
    // primary's reload signal; its default action would end the worker.
    const ignore = () => {}
    const ignored = [...new Set<NodeJS.Signals>([...signals, 'SIGHUP'])]
    for (const signal of ignored) process.on(signal, ignore)
    this.#handlers.add(handler)
    return () => {
      this.#handlers.delete(handler)
      for (const signal of ignored) process.off(signal, ignore)
    }
  }

  probeState(own: ProbeState): ProbeState {
    return {
      // A retiring worker answers for the pod, which its replacement keeps ready.
      ready: () => (this.#retiring ? this.#pod.ready : own.ready() && this.#pod.ready),
      started: () => own.started() || this.#pod.started,
      status: () => (this.#retiring || own.ready() ? this.#pod.status : own.status()),
      reason: () => (this.#retiring || own.ready() ? this.#pod.reason : own.reason()),
    }
  }

  /** Tags the worker's log lines with its id, so a pod's log says which worker each line
   * is about. */
  logger(logger: LoggerLike | false): LoggerLike | false {
    return logger === false ? false : tagged(logger, clusterModule().worker?.id ?? 0)
  }

  attach(lifecycle: Lameduck, trackers: readonly Tracker[], options: ResolvedOptions): void {
    this.#attached.push({ lifecycle, trackers, options })
    lifecycle.on('state', () => this.#report())
    this.#report()
    const pending = this.#pending
    this.#pending = []
    for (const message of pending) this.#onMessage(message)
  }

  metrics(scrape: ServerResponse): Promise<string> {
    this.#scrapes.add(scrape)
    const id = ++this.#nextScrape
    return new Promise<string>((resolve) => {
      let timer: NodeJS.Timeout | undefined
      const settle = (text: () => string) => {
        clearTimeout(timer)
        this.#waiting.delete(id)
        // Rendered while the scrape is still in the set, so it does not count itself.
        resolve(text())
        this.#scrapes.delete(scrape)
      }
      const own = () => settle(() => renderWorkerMetrics(this.#figures()))
      if (!process.connected) {
        own()
        return
      }
      timer = setTimeout(own, METRICS_ANSWER_TIMEOUT_MS).unref()
      this.#waiting.set(id, (pod) => settle(() => renderPodMetrics(pod)))
      this.#send({ lameduck: PROTOCOL, type: 'metrics', id })
    })
  }

  #figures(): Figures {
    return readFigures(this.#attached, this.#scrapes)
  }

  deadline(ms: number): void {
    this.#send({ lameduck: PROTOCOL, type: 'deadline', ms })
  }

  /**
   * With round-robin distribution the primary accepts each connection and sends it to a
   * worker over IPC. A connection sent just before the primary learnt that this worker
   * closed its listener is still in the channel; node's cluster returns it to the primary
   * for another worker only if this process reads it, and loses it (the client hangs) if the
   * process has exited. The channel is ordered both ways: once the primary answers this
   * message, it has seen the listener close, and every connection it sent before is read.
   */
  exit(code: number): void {
    const exit = () => process.exit(code)
    if (!process.connected) exit()
    this.#onExit = exit
    setTimeout(exit, EXIT_ACK_TIMEOUT_MS)
    this.#send({ lameduck: PROTOCOL, type: 'exiting', exitCode: code, figures: this.#figures() })
  }

  #onExit: (() => void) | undefined

  #onMessage(message: ToWorker): void {
    if (message.type === 'pod') {
      this.#pod = message.pod
      return
    }
    if (message.type === 'exit') {
      this.#onExit?.()
      return
    }
    if (message.type === 'check') {
      void this.#check(message.id)
      return
    }
    if (message.type === 'collect') {
      this.#send({ lameduck: PROTOCOL, type: 'figures', id: message.id, figures: this.#figures() })
      return
    }
    if (message.type === 'metrics') {
      this.#waiting.get(message.id)?.(message.pod)
      return
    }
    if (this.#handlers.size === 0) {
      this.#pending.push(message)
      return
    }
    let request: ShutdownRequest
    if (message.type === 'retire') {
      this.#retiring = true
      // A reload hands keep-alive clients off for the reload's lame duck, not the pod's.
      request = { kind: 'retire', drainDelay: message.drainDelay }
    } else {
      request = { kind: 'signal', signal: message.signal }
    }
    for (const handler of [...this.#handlers]) handler(request)
  }

  #report(): void {
    let state: State = 'stopped'
    let started = true
    for (const { lifecycle } of this.#attached) {
      if (STATE_RANK[lifecycle.state] < STATE_RANK[state]) state = lifecycle.state
      started &&= lifecycle.started
    }
    const key = `${state} ${started}`
    if (key === this.#lastSent) return
    this.#lastSent = key
    this.#send({ lameduck: PROTOCOL, type: 'state', state, started })
  }

  /** Runs every attached instance's readiness checks, as a readiness probe would. */
  async #check(id: number): Promise<void> {
    const failed: string[] = []
    for (const { options } of this.#attached) {
      const failures = await new Checks(options.checks, options.checkTimeout, false).failures()
      for (const [name, reason] of Object.entries(failures)) failed.push(`${name}: ${reason}`)
    }
    this.#send({ lameduck: PROTOCOL, type: 'checked', id, failed })
  }

  #send(message: ToPrimary): void {
    if (process.connected && process.send !== undefined) process.send(message)
  }
}
