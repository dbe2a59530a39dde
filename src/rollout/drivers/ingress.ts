// What every ingress driver (--ingress nginx, --ingress haproxy) shares: a real proxy from the
// distribution in front of the pods, routing to the pods' addresses (endpoints, not the
// Service's virtual IP) as ingress controllers do. The pods run on the data path underneath
// (model or iptables: their sandboxes and addresses); the load goes to the proxy, not to the
// Service.
//
// The lab starts the proxy with a configuration of its own in a temporary directory, waits
// until it accepts connections, applies endpoint changes after the propagation delay (± jitter)
// in order, each proxy its own way (nginx.ts: a reload; haproxy.ts: the runtime API), says when
// the proxy exits during the run, and stops it with the run. Which pod served each request,
// and what the proxy did with it (retried it on another pod, or answered 502/503/504 itself,
// and why), comes from the proxy's access log, matched to the request by the client's port
// and time.
import { once } from 'node:events'
import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { onPath } from '../../serve/child.js'
import type { Clock } from '../clock.js'
import type { PodProcess } from '../process.js'
import type { IngressError, Recorder, RequestRecord } from '../recorder.js'
import { type Change, Propagation } from './propagation.js'
import type { ConnectionInfo, DataPath, Endpoint, PodPlacement, ServiceAddress } from './types.js'

export const INGRESS_KINDS = ['none', 'nginx', 'haproxy'] as const
export type IngressKind = (typeof INGRESS_KINDS)[number]
export type ProxyKind = Exclude<IngressKind, 'none'>

/** How long the proxy may take to listen after it was started. */
export const START_TIMEOUT_MS = 5_000
/** A failure the proxy did not log, this soon after a reload, was dropped by the reload. */
const RELOAD_WINDOW_MS = 1_000
/** A log line is matched to a request that ended within this much of it. */
const LOG_MATCH_MS = 1_000
/** The statuses a proxy answers itself when it could not get a response from a pod. */
export const PROXY_ERROR_STATUSES: readonly number[] = [502, 503, 504]

/** What the ingress did with the requests, for the report. */
export interface IngressSummary {
  kind: ProxyKind
  /** How endpoint changes reached the proxy: a reload (nginx) or its runtime API (haproxy). */
  updates: 'reload' | 'runtime-api'
  /** Requests the ingress sent to more than one pod (its retries), ok in the end. */
  retriedOk: number
  /** Failed requests answered 502/503/504 by the ingress itself (it passed the failure on). */
  passedOn: number
  /** Of those, after the ingress had tried more than one pod. */
  passedOnAfterRetry: number
  /** Configuration reloads (one per applied batch of endpoint changes; 0 with a runtime API). */
  reloads: number
  /**
   * Failed requests nginx never logged, dropped by a reload: ended within RELOAD_WINDOW_MS
   * after one (a client connection dropped at the switch of workers), or with no response on
   * a kept-alive connection after one (an old worker closing its idle client connections as
   * it shuts down). The lab's ingress's own failures, not the service's.
   */
  atReload: number
  /**
   * Failed requests the proxy never logged, on a client connection that had carried a request
   * before, that ended without any response: the proxy closed the client's connection instead
   * of answering. haproxy does this (and logs nothing) when a pod closes the connection under a
   * request that was not the first of the client's connection, so that the client may retry
   * it as it would a keep-alive connection closed by the server.
   */
  closedUnlogged: number
}

export interface IngressOptions {
  clock: Clock
  recorder: Recorder
  propagationDelayMs: number
  propagationJitterMs: number
  random?: () => number
}

/** One request as the proxy logged it. */
export interface LogLine {
  /** ms since the lab started, when the proxy finished the request */
  t: number
  clientPort: number
  /** The status the client got. */
  status: number
  /** Addresses (host:port) of the pods the proxy tried, in order; the last one answered. */
  upstreams: string[]
  /** How many attempts the proxy made (more than `upstreams` when it logs only the last). */
  tried: number
  /** The pods' statuses or the proxy's reading of them, as logged. */
  upstreamStatus: string
  /** Set when the proxy answered the status itself: why it got no response from a pod. */
  error: IngressError | undefined
}

/** What sets each proxy apart. */
interface ProxyTraits {
  /** The command that runs the proxy, and how to install it. */
  command: { name: string; install: string }
  /** How a change is applied, for the endpoint events. */
  how: string
  updates: IngressSummary['updates']
}

const PROXIES: Record<ProxyKind, ProxyTraits> = {
  nginx: {
    command: { name: 'nginx', install: 'apt-get install nginx-light' },
    how: 'nginx reload',
    updates: 'reload',
  },
  haproxy: {
    command: { name: 'haproxy', install: 'apt-get install haproxy' },
    how: 'haproxy runtime API',
    updates: 'runtime-api',
  },
}

export abstract class Ingress implements DataPath {
  readonly kind
  readonly proxy: ProxyKind
  readonly connectionsPerPod = new Map<string, number>()
  protected readonly options: IngressOptions
  protected readonly dir: string
  protected port = 0
  protected process: PodProcess | undefined
  /** When each reload was asked for (lab time). */
  protected readonly reloadedAt: number[] = []
  readonly #inner: DataPath
  readonly #propagation: Propagation
  #applied = new Map<string, Endpoint>()
  /** How many endpoints the proxy had from when (lab time), in order. */
  readonly #history: { t: number; endpoints: number }[] = [{ t: 0, endpoints: 0 }]
  readonly #wanted = new Map<string, Endpoint>()
  #pending: Change[] = []
  #updating = false
  #closing = false
  readonly #byAddress = new Map<string, string>()

  readonly #traits: ProxyTraits

  constructor(inner: DataPath, options: IngressOptions, proxy: ProxyKind) {
    this.#inner = inner
    this.kind = inner.kind
    this.proxy = proxy
    this.#traits = PROXIES[proxy]
    this.options = options
    this.#propagation = new Propagation({ ...options, apply: (changes) => this.#apply(changes) })
    this.dir = join(tmpdir(), `lameduck-${proxy}-${process.pid}-${Date.now()}`)
  }

  /** Writes the configuration into `dir` and starts the proxy on `port`. */
  protected abstract launch(): PodProcess
  /** Makes `wanted` the proxy's endpoints; resolves once new requests see them. */
  protected abstract update(changes: Change[], wanted: ReadonlyMap<string, Endpoint>): Promise<void>
  /** One line of the proxy's access log (`started`: the lab's start, ms since the epoch). */
  protected abstract parseLogLine(raw: string, started: number): LogLine | undefined
  /** The last lines the proxy wrote about an error, for a failure to start. */
  protected abstract errorTail(): string
  /** What the proxy does, for the report's data path line. */
  protected abstract settings(): string

  async start(): Promise<ServiceAddress> {
    const { name, install } = this.#traits.command
    if (!onPath(name)) {
      throw new Error(
        `--ingress ${this.proxy} needs the ${name} command, not found in PATH (Debian: ${install})`,
      )
    }
    const inner = await this.#inner.start()
    mkdirSync(this.dir, { recursive: true })
    this.port = await freePort()
    const proxy = this.launch()
    this.process = proxy
    await this.#listening(proxy)
    proxy.once('exit', () => {
      if (this.#closing) return
      this.options.recorder.event(
        'warning',
        undefined,
        `the ${this.proxy} ingress exited during the run: ${proxy.outputTail() || this.errorTail()}`,
      )
    })
    return { host: '127.0.0.1', port: this.port, notes: inner.notes ?? [] }
  }

  describe(): string {
    return `${this.proxy} ingress on 127.0.0.1:${this.port} (${this.settings()}) to the pods of ${this.#inner.describe()}`
  }

  placePod(name: string, probePort: boolean): Promise<PodPlacement> {
    return this.#inner.placePod(name, probePort)
  }

  releasePod(name: string): void {
    this.#inner.releasePod(name)
  }

  /** The ingress watches the endpoints itself; the Service underneath carries no load. */
  publish(endpoint: Endpoint, serving: boolean): void {
    if (serving) this.#byAddress.set(`${endpoint.host}:${endpoint.port}`, endpoint.pod)
    this.#propagation.publish(endpoint, serving)
  }

  endpoints(): Endpoint[] {
    return [...this.#applied.values()]
  }

  /** Settled when every change is applied, or when the proxy is gone (nothing will apply). */
  settled(): boolean {
    if (this.process?.exit !== undefined) return true
    return this.#propagation.idle() && !this.#updating && this.#pending.length === 0
  }

  routesTo(pod: string): boolean {
    return this.#applied.has(pod)
  }

  /** The client's connection ends at the proxy: requests are traced to pods from its log. */
  connection(): ConnectionInfo | undefined {
    return undefined
  }

  prune(): void {}

  async close(): Promise<void> {
    this.#closing = true
    this.#propagation.stop()
    const proxy = this.process
    if (proxy !== undefined && proxy.exit === undefined) {
      proxy.signalGroup('SIGKILL')
      await once(proxy, 'exit')
    }
    await this.#inner.close()
  }

  /** Removes the ingress's directory (its configuration and logs). */
  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true })
  }

  /**
   * Traces each request to the pod that answered it and says what the ingress did, from the
   * proxy's access log; call it once the load has stopped.
   */
  annotate(requests: RequestRecord[]): IngressSummary {
    const summary: IngressSummary = {
      kind: this.proxy,
      updates: this.#traits.updates,
      retriedOk: 0,
      passedOn: 0,
      passedOnAfterRetry: 0,
      reloads: this.reloadedAt.length,
      atReload: 0,
      closedUnlogged: 0,
    }
    this.connectionsPerPod.clear()
    const byPort = new Map<number, LogLine[]>()
    for (const line of this.#readLog()) {
      const list = byPort.get(line.clientPort) ?? []
      list.push(line)
      byPort.set(line.clientPort, list)
      const pod = this.#podOf(line.upstreams.at(-1))
      if (pod !== undefined)
        this.connectionsPerPod.set(pod, (this.connectionsPerPod.get(pod) ?? 0) + 1)
    }
    for (const request of requests) {
      if (request.localPort === undefined && request.outcome === 'ok') continue
      const candidates =
        request.localPort === undefined ? [] : (byPort.get(request.localPort) ?? [])
      let best: LogLine | undefined
      for (const line of candidates) {
        const distance = Math.abs(line.t - request.end)
        if (
          distance <= LOG_MATCH_MS &&
          (best === undefined || distance < Math.abs(best.t - request.end))
        ) {
          best = line
        }
      }
      if (best === undefined) {
        if (request.outcome === 'ok') continue
        const unlogged = this.unlogged(request)
        if (unlogged === 'reload') {
          summary.atReload++
          request.ingress = { upstreamStatus: '', tried: 0, pods: [], reload: true }
        } else if (unlogged === 'closed') {
          summary.closedUnlogged++
          request.ingress = {
            proxy: this.proxy,
            upstreamStatus: '',
            tried: 0,
            pods: [],
            error: 'closed',
            unlogged: true,
          }
        }
        continue
      }
      candidates.splice(candidates.indexOf(best), 1)
      const pod = this.#podOf(best.upstreams.at(-1))
      if (pod !== undefined) request.pod = pod
      const pods = best.upstreams.flatMap((u) => this.#podOf(u) ?? [])
      request.ingress = {
        proxy: this.proxy,
        upstreamStatus: best.upstreamStatus,
        tried: best.tried,
        pods,
        ...(best.error === undefined ? {} : { error: best.error }),
      }
      if (request.outcome === 'ok' && best.tried > 1) summary.retriedOk++
      if (request.outcome !== 'ok' && best.error !== undefined) {
        summary.passedOn++
        if (best.tried > 1) summary.passedOnAfterRetry++
      }
    }
    return summary
  }

  /** How many endpoints the proxy had at `t` (lab time). */
  protected endpointsAt(t: number): number {
    let count = 0
    for (const entry of this.#history) {
      if (entry.t > t) break
      count = entry.endpoints
    }
    return count
  }

  /** The proxy's access log (`access.log` in its directory), read once the load has stopped. */
  #readLog(): LogLine[] {
    const started = this.options.clock.startedAt.getTime()
    return (this.fileText('access.log') ?? '')
      .split('\n')
      .flatMap((raw) => this.parseLogLine(raw, started) ?? [])
  }

  /**
   * Why the proxy never logged a failed request: dropped by a reload ('reload'), or closed
   * under it without an answer ('closed'), or unknown. By default, a failure that ended within
   * RELOAD_WINDOW_MS after a reload is the reload's.
   */
  protected unlogged(request: RequestRecord): 'reload' | 'closed' | undefined {
    const reload = this.reloadedAt.some(
      (t) => request.end >= t && request.end <= t + RELOAD_WINDOW_MS,
    )
    return reload ? 'reload' : undefined
  }

  /** A file of the proxy's directory, or undefined. */
  protected fileText(name: string): string | undefined {
    try {
      return readFileSync(join(this.dir, name), 'utf8')
    } catch {
      return undefined
    }
  }

  #podOf(upstream: string | undefined): string | undefined {
    return upstream === undefined ? undefined : this.#byAddress.get(upstream)
  }

  #apply(changes: Change[]): void {
    for (const change of changes) {
      if (change.op === 'add') this.#wanted.set(change.endpoint.pod, change.endpoint)
      else this.#wanted.delete(change.endpoint.pod)
    }
    this.#pending.push(...changes)
    void this.#update()
  }

  /**
   * Applies the pending changes, one update at a time (changes that arrive meanwhile go into
   * the next one); the endpoint events are recorded once the proxy uses the new endpoints.
   */
  async #update(): Promise<void> {
    if (this.#updating) return
    this.#updating = true
    try {
      while (this.#pending.length > 0 && this.process?.exit === undefined) {
        const changes = this.#pending
        this.#pending = []
        const wanted = new Map(this.#wanted)
        await this.update(changes, wanted)
        this.#applied = wanted
        this.#history.push({ t: this.options.clock.now(), endpoints: wanted.size })
        for (const change of changes) {
          this.options.recorder.event(
            change.op === 'add' ? 'endpoint-added' : 'endpoint-removed',
            change.endpoint.pod,
            this.#traits.how,
          )
        }
      }
    } finally {
      this.#updating = false
    }
  }

  async #listening(proxy: PodProcess): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS
    const name = this.#traits.command.name
    for (;;) {
      if (proxy.exit !== undefined) {
        throw new Error(
          `--ingress ${this.proxy}: ${name} exited at start: ${proxy.outputTail() || this.errorTail()}`,
        )
      }
      if (await accepts(this.port)) return
      if (Date.now() > deadline) {
        throw new Error(
          `--ingress ${this.proxy}: ${name} did not listen on 127.0.0.1:${this.port} within ${START_TIMEOUT_MS} ms: ${proxy.outputTail() || this.errorTail()}`,
        )
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }
}

/** A failed request, on a reused connection, that ended with no response at all. */
export function closedUnlogged(request: RequestRecord): boolean {
  return (
    request.reused === true &&
    request.status === undefined &&
    (request.outcome === 'hang_up' || request.outcome === 'reset')
  )
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}
