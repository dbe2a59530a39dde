// The load generator: open loop at a fixed rate, over a keep-alive pool, as a typical Node
// client sends requests (an http.Agent configured like Node's global agent since v19, with a
// bounded pool). Requests are issued on schedule whether or not earlier ones finished; every
// request ends with exactly one outcome, at the latest at its deadline.
import http from 'node:http'
import type { Socket } from 'node:net'
import type { Clock } from './clock.js'
import type { WeightedPath } from './options.js'
import type { Outcome, Recorder, RequestRecord } from './recorder.js'
import type { ServiceModel } from './service.js'

/** Node's global agent keeps idle sockets this long (v19+), less when the server hints less. */
const AGENT_FREE_SOCKET_TIMEOUT_MS = 5_000
/** The scheduler's tick; requests due within a tick are issued together. */
const TICK_MS = 1
/** Issuing this much later than scheduled counts as falling behind. */
export const BEHIND_LAG_MS = 100
/** Achieving less than this share of the target rate counts as falling behind. */
export const BEHIND_RATE_SHARE = 0.95

export interface LoadOptions {
  port: number
  rate: number
  connections: number
  paths: WeightedPath[]
  timeoutMs: number
  maxRequests: number
  clock: Clock
  recorder: Recorder
  service: ServiceModel
}

export interface LoadSummary {
  targetRate: number
  achievedRate: number
  sent: number
  /** ms since the lab started */
  startedAt: number
  stoppedAt: number
  /** The latest any request was issued after its scheduled time. */
  maxLagMs: number
  /** The load stopped because it reached --max-requests. */
  hitMaxRequests: boolean
  behind: boolean
}

export class LoadGenerator {
  inFlight = 0
  sent = 0
  readonly #options: LoadOptions
  readonly #agent: http.Agent
  readonly #ports = new WeakMap<Socket, number>()
  readonly #pickPath: () => string
  #interval: NodeJS.Timeout | undefined
  #startedAt = 0
  #stoppedAt = 0
  #maxLagMs = 0
  #hitMaxRequests = false
  #drained: (() => void) | undefined

  constructor(options: LoadOptions) {
    this.#options = options
    this.#agent = new http.Agent({
      keepAlive: true,
      scheduling: 'lifo',
      timeout: AGENT_FREE_SOCKET_TIMEOUT_MS,
      maxSockets: options.connections,
    })
    this.#pickPath = weightedPicker(options.paths)
  }

  start(): void {
    const { clock, rate, maxRequests } = this.#options
    this.#startedAt = clock.now()
    this.#options.recorder.event(
      'load-started',
      undefined,
      `${rate} req/s over up to ${this.#options.connections} keep-alive connections`,
    )
    this.#interval = setInterval(() => {
      const elapsed = clock.now() - this.#startedAt
      const due = Math.min(maxRequests, Math.floor((elapsed * rate) / 1_000) + 1)
      while (this.sent < due) {
        const scheduledAt = this.#startedAt + (this.sent * 1_000) / rate
        this.#maxLagMs = Math.max(this.#maxLagMs, clock.now() - scheduledAt)
        this.#issue(this.sent++)
      }
      if (this.sent >= maxRequests) {
        this.#hitMaxRequests = true
        this.#options.recorder.event('warning', undefined, `reached --max-requests ${maxRequests}`)
        this.#stopIssuing()
      }
    }, TICK_MS)
  }

  /** Stops issuing; resolves once every request issued has an outcome. */
  async stop(): Promise<LoadSummary> {
    this.#stopIssuing()
    if (this.inFlight > 0) await new Promise<void>((resolve) => (this.#drained = resolve))
    this.#agent.destroy()
    this.#options.recorder.event('load-stopped', undefined, `${this.sent} requests`)
    return this.summary()
  }

  /** Stops issuing and destroys every connection; requests in flight end as they may. */
  abort(): void {
    this.#stopIssuing()
    this.#agent.destroy()
  }

  summary(): LoadSummary {
    const seconds = Math.max(1e-3, (this.#stoppedAt - this.#startedAt) / 1_000)
    const achievedRate = this.sent / seconds
    return {
      targetRate: this.#options.rate,
      achievedRate: Math.round(achievedRate * 10) / 10,
      sent: this.sent,
      startedAt: this.#startedAt,
      stoppedAt: this.#stoppedAt,
      maxLagMs: Math.round(this.#maxLagMs),
      hitMaxRequests: this.#hitMaxRequests,
      behind:
        achievedRate < this.#options.rate * BEHIND_RATE_SHARE || this.#maxLagMs > BEHIND_LAG_MS,
    }
  }

  #stopIssuing(): void {
    if (this.#interval === undefined) return
    clearInterval(this.#interval)
    this.#interval = undefined
    this.#stoppedAt = this.#options.clock.now()
  }

  #issue(id: number): void {
    const { clock, port, timeoutMs, recorder, service } = this.#options
    const path = this.#pickPath()
    const start = clock.now()
    this.inFlight++
    let socket: Socket | undefined
    let settled = false
    const finish = (outcome: Outcome, status?: number, message?: string) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      const clientPort = socket === undefined ? undefined : this.#ports.get(socket)
      const info = clientPort === undefined ? undefined : service.connection(clientPort)
      const record: RequestRecord = { id, path, start, end: clock.now(), outcome }
      if (info?.pod !== undefined) record.pod = info.pod
      if (status !== undefined) record.status = status
      if (message !== undefined) record.message = message
      recorder.request(record)
      this.inFlight--
      if (this.inFlight === 0 && this.#interval === undefined) this.#drained?.()
    }
    const request = http.request({ host: '127.0.0.1', port, path, agent: this.#agent })
    const timer = setTimeout(() => {
      finish('timeout', undefined, `no response within ${timeoutMs} ms`)
      request.destroy()
    }, timeoutMs)
    request.on('socket', (s: Socket) => {
      socket = s
      if (this.#ports.has(s)) return
      // The connect() call has been made by now, so the local port is known even while the
      // socket connects; the Service model may reset the connection before 'connect'.
      if (s.localPort !== undefined) this.#ports.set(s, s.localPort)
      else s.once('connect', () => this.#ports.set(s, s.localPort!))
    })
    request.on('response', (response) => {
      const status = response.statusCode ?? 0
      response.resume()
      response.on('end', () => {
        if (status >= 500) finish('http_5xx', status, `HTTP ${status}`)
        else if (status >= 400) finish('other', status, `HTTP ${status}`)
        else finish('ok', status)
      })
      response.on('error', (error) => {
        const [outcome, message] = this.#classify(error, socket)
        finish(outcome, status, message)
      })
      response.on('close', () => {
        if (!response.complete) finish('hang_up', status, 'connection closed during the response')
      })
    })
    request.on('error', (error) => {
      const [outcome, message] = this.#classify(error, socket)
      finish(outcome, undefined, message)
    })
    request.end()
  }

  #classify(error: NodeJS.ErrnoException, socket: Socket | undefined): [Outcome, string] {
    const clientPort = socket === undefined ? undefined : this.#ports.get(socket)
    const info = clientPort === undefined ? undefined : this.#options.service.connection(clientPort)
    // The Service model accepted the connection, then reset it because the backend refused
    // (or there was none): in a cluster the client's connect() itself would have been refused.
    if (info?.resetCause === 'refused') {
      return ['refused', `${error.message} (backend ${info.pod} refused the connection)`]
    }
    if (info?.resetCause === 'no-endpoint') {
      return ['refused', `${error.message} (the Service had no ready endpoint)`]
    }
    if (error.code === 'ECONNREFUSED') return ['refused', error.message]
    if (error.message === 'socket hang up' || error.message === 'aborted') {
      return ['hang_up', error.message]
    }
    if (error.code === 'ECONNRESET' || error.code === 'EPIPE') return ['reset', error.message]
    if (error.code === 'ETIMEDOUT') return ['timeout', error.message]
    return ['other', error.code === undefined ? error.message : `${error.code}: ${error.message}`]
  }
}

/** Returns a function picking a path at random in proportion to its weight. */
export function weightedPicker(
  paths: readonly WeightedPath[],
  random: () => number = Math.random,
): () => string {
  const total = paths.reduce((sum, p) => sum + p.weight, 0)
  return () => {
    let x = random() * total
    for (const p of paths) {
      x -= p.weight
      if (x < 0) return p.path
    }
    return paths.at(-1)!.path
  }
}
