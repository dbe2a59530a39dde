// The load generator: open loop at a fixed rate. Each request picks a shape (method and path)
// and a client kind by weight, then one of that kind's pools, as requests to a service come
// from several upstream services with pools of their own. The client kinds live in clients/,
// one module each. Requests are issued on schedule whether or not earlier ones finished;
// every request ends with exactly one outcome, at the latest at its deadline.
import {
  type ClientFailure,
  type ConnectionFailure,
  clientKind,
  type LoadClient,
} from './clients/index.js'
import type { Clock } from './clock.js'
import type { ConnectionInfo, DataPath } from './drivers/types.js'
import type { WeightedClient, WeightedPath } from './options.js'
import type { Outcome, Recorder, RequestRecord } from './recorder.js'

/** The scheduler's tick; requests due within a tick are issued together. */
const TICK_MS = 1
/** Issuing this much later than scheduled counts as falling behind. */
export const BEHIND_LAG_MS = 100
/** Achieving less than this share of the target rate counts as falling behind. */
export const BEHIND_RATE_SHARE = 0.95

export interface LoadOptions {
  /** The Service's address. @default '127.0.0.1' */
  host?: string
  port: number
  rate: number
  /** Connections one client pool may hold. */
  connections: number
  /** Independent pools of each pooled client kind, as several upstream services would be. */
  pools: number
  paths: WeightedPath[]
  clients: WeightedClient[]
  /** The path WebSocket clients connect to. */
  wsPath: string
  timeoutMs: number
  maxRequests: number
  clock: Clock
  recorder: Recorder
  /** The data path, asked which pod a client connection went to. */
  service: Pick<DataPath, 'connection'>
  /** Whether the Service is a balancer in the lab's own process (the model). @default true */
  userland?: boolean
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

/** Bytes of every POST body: enough for one TCP segment or two. */
export const POST_BODY_BYTES = 2_048

interface ClientSlot {
  kind: string
  queues: boolean
  websocket: boolean
  instances: LoadClient[]
}

export class LoadGenerator {
  inFlight = 0
  sent = 0
  readonly #options: LoadOptions
  readonly #clients: ClientSlot[]
  readonly #pickPath: () => WeightedPath
  readonly #pickClient: () => ClientSlot
  readonly #body = Buffer.alloc(POST_BODY_BYTES, 'lameduck ')
  #interval: NodeJS.Timeout | undefined
  #startedAt = 0
  #stoppedAt = 0
  #maxLagMs = 0
  #hitMaxRequests = false
  #drained: (() => void) | undefined
  /** After abort(), requests still in flight end without a record: the lab cut them. */
  #aborted = false

  constructor(options: LoadOptions) {
    this.#options = options
    this.#clients = options.clients.map((weighted) => {
      const kind = clientKind(weighted.kind)
      if (kind === undefined) throw new Error(`unknown client kind '${weighted.kind}'`)
      const count = kind.pooled ? options.pools : 1
      const context = {
        host: options.host ?? '127.0.0.1',
        port: options.port,
        connections: options.connections,
        wsPath: options.wsPath,
        lost: (failure: ConnectionFailure, localPort: number | undefined) =>
          this.#lost(kind.name, failure, localPort),
        movedAway: (localPort: number | undefined) => {
          if (this.#aborted) return
          const info = localPort === undefined ? undefined : options.service.connection(localPort)
          options.recorder.moves.push({ t: options.clock.now(), pod: info?.pod })
        },
      }
      return {
        kind: kind.name,
        queues: kind.queues,
        websocket: kind.protocol === 'websocket',
        instances: Array.from({ length: count }, () => kind.create(context)),
      }
    })
    this.#pickPath = weightedPicker(options.paths)
    const slots = new Map(this.#clients.map((slot) => [slot.kind, slot]))
    const pickKind = weightedPicker(options.clients)
    this.#pickClient = () => slots.get(pickKind().kind)!
  }

  /** Resolves when every client can send at once (helper processes of other languages). */
  async ready(): Promise<void> {
    await Promise.all(this.#clients.flatMap((slot) => slot.instances.map((client) => client.ready)))
  }

  start(): void {
    const { clock, rate, maxRequests } = this.#options
    this.#startedAt = clock.now()
    this.#options.recorder.event('load-started', undefined, describeLoad(this.#options))
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
    // Recorded when the last request is sent (the summary's stoppedAt, the report's "load
    // stopped"), not once the requests then in flight have their outcome.
    const inFlight = this.inFlight > 0 ? `; waiting for the ${this.inFlight} in flight` : ''
    this.#options.recorder.event('load-stopped', undefined, `${this.sent} requests${inFlight}`)
    if (this.inFlight > 0) await new Promise<void>((resolve) => (this.#drained = resolve))
    this.#closeClients()
    return this.summary()
  }

  /** Stops issuing and destroys every connection; requests in flight end as they may. */
  abort(): void {
    this.#aborted = true
    this.#stopIssuing()
    this.#closeClients()
  }

  summary(): LoadSummary {
    const stoppedAt = this.#interval === undefined ? this.#stoppedAt : this.#options.clock.now()
    const seconds = Math.max(1e-3, (stoppedAt - this.#startedAt) / 1_000)
    const achievedRate = this.sent / seconds
    return {
      targetRate: this.#options.rate,
      achievedRate: Math.round(achievedRate * 10) / 10,
      sent: this.sent,
      startedAt: this.#startedAt,
      stoppedAt,
      maxLagMs: Math.round(this.#maxLagMs),
      hitMaxRequests: this.#hitMaxRequests,
      behind:
        achievedRate < this.#options.rate * BEHIND_RATE_SHARE || this.#maxLagMs > BEHIND_LAG_MS,
    }
  }

  #closeClients(): void {
    for (const slot of this.#clients) for (const client of slot.instances) client.close()
  }

  #stopIssuing(): void {
    if (this.#interval === undefined) return
    clearInterval(this.#interval)
    this.#interval = undefined
    this.#stoppedAt = this.#options.clock.now()
  }

  /** A long-lived connection failed by itself: one failed request of its own. */
  #lost(kind: string, failure: ConnectionFailure, localPort: number | undefined): void {
    if (this.#aborted) return
    const { clock, recorder, service, wsPath } = this.#options
    const info = localPort === undefined ? undefined : service.connection(localPort)
    const classified = classify({ ...failure, duringResponse: false }, info)
    const message = classified[1]
    let outcome = classified[0]
    if (failure.status !== undefined) outcome = failure.status >= 500 ? 'http_5xx' : 'other'
    else if (failure.how === 'closed') outcome = 'other'
    // A WebSocket cut without a close frame: the connection hung up on it.
    else if (failure.how === 'cut' && outcome === 'other') outcome = 'hang_up'
    const now = clock.now()
    const record: RequestRecord = {
      id: -1,
      method: 'WS',
      path: wsPath,
      client: kind,
      start: now,
      end: now,
      outcome,
      message,
      websocket: failure.how,
    }
    if (info?.pod !== undefined) record.pod = info.pod
    if (failure.status !== undefined) record.status = failure.status
    recorder.request(record)
  }

  #issue(id: number): void {
    const { clock, timeoutMs, recorder, service } = this.#options
    const shape = this.#pickPath()
    const slot = this.#pickClient()
    const client = slot.instances[Math.floor(Math.random() * slot.instances.length)]!
    // A WebSocket kind sends a message whatever the shape: its record says so.
    const method = shape.method ?? 'GET'
    const label = slot.websocket
      ? { method: 'WS' as const, path: this.#options.wsPath }
      : { method, path: shape.path }
    const start = clock.now()
    this.inFlight++
    let clientPort: number | undefined
    let reused: boolean | undefined
    let status: number | undefined
    let retries = 0
    let settled = false
    const finish = (outcome: Outcome, message?: string) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (this.#aborted) return
      const info = clientPort === undefined ? undefined : service.connection(clientPort)
      const record: RequestRecord = {
        id,
        method: label.method,
        path: label.path,
        client: slot.kind,
        start,
        end: clock.now(),
        outcome,
      }
      if (info?.pod !== undefined) record.pod = info.pod
      if (reused !== undefined) record.reused = reused
      if (clientPort !== undefined) record.localPort = clientPort
      if (status !== undefined) record.status = status
      if (message !== undefined) record.message = message
      if (retries > 0) record.retries = retries
      // The Service model accepts every connection at once, whatever the pods do: a request
      // whose connection it never saw was not delivered by the lab. The kernel's data path
      // has no such step in the lab's process.
      const undelivered =
        this.#options.userland !== false &&
        outcome === 'timeout' &&
        info === undefined &&
        (clientPort !== undefined || !slot.queues)
      if (undelivered) recorder.undelivered.push(record)
      else recorder.request(record)
      this.inFlight--
      if (this.inFlight === 0 && this.#interval === undefined) this.#drained?.()
    }
    const abandon = client.send(
      { id, method, path: shape.path, body: method === 'POST' ? this.#body : undefined },
      {
        retry() {
          retries++
          status = undefined
        },
        socket(localPort, wasReused) {
          clientPort = localPort
          reused = wasReused
        },
        response(code) {
          status = code
        },
        end() {
          if (status === undefined || status >= 500) finish('http_5xx', `HTTP ${status}`)
          else if (status >= 400) finish('other', `HTTP ${status}`)
          else finish('ok')
        },
        error: (failure) => {
          const info = clientPort === undefined ? undefined : service.connection(clientPort)
          const [outcome, message] = classify(failure, info)
          finish(outcome, message)
        },
      },
    )
    const timer = setTimeout(() => {
      finish('timeout', `no response within ${timeoutMs} ms`)
      abandon()
    }, timeoutMs)
  }
}

/** How a failed request ended, from the client's error and what the Service model saw. */
export function classify(
  failure: ClientFailure,
  info: ConnectionInfo | undefined,
): [Outcome, string] {
  const { message, code } = failure
  // The Service model accepted the connection, then reset it because the backend refused
  // (or there was none): in a cluster the client's connect() itself would have been refused.
  // The client's own error is the model's reset (read ECONNRESET, socket hang up), which is
  // not what a client in a cluster sees, so it is not quoted.
  if (info?.resetCause === 'refused') {
    return ['refused', 'connect ECONNREFUSED: the pod refused the connection']
  }
  if (info?.resetCause === 'no-endpoint') {
    return ['refused', 'connect ECONNREFUSED: the Service had no ready endpoint']
  }
  if (code === 'ECONNREFUSED') return ['refused', message]
  if (
    message === 'socket hang up' ||
    message === 'aborted' ||
    message === 'connection closed during the response' ||
    code === 'UND_ERR_SOCKET' ||
    code === 'ERR_HTTP2_STREAM_CANCEL'
  ) {
    return ['hang_up', message]
  }
  // An HTTP/2 stream closed with an error code (RST_STREAM): the stream's reset.
  if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'ERR_HTTP2_STREAM_ERROR') {
    return ['reset', message]
  }
  if (code === 'ETIMEDOUT') return ['timeout', message]
  return ['other', code === undefined ? message : `${code}: ${message}`]
}

function describeLoad(options: LoadOptions): string {
  const clients = options.clients.map((c) => `${c.weight}:${c.kind}`).join(' ')
  return `${options.rate} req/s; clients ${clients}; ${options.pools} pools of up to ${options.connections} keep-alive connections per pooled kind`
}

/** Returns a function picking an item at random in proportion to its weight. */
export function weightedPicker<T extends { weight: number }>(
  items: readonly T[],
  random: () => number = Math.random,
): () => T {
  const total = items.reduce((sum, item) => sum + item.weight, 0)
  return () => {
    let x = random() * total
    for (const item of items) {
      x -= item.weight
      if (x < 0) return item
    }
    return items.at(-1)!
  }
}
