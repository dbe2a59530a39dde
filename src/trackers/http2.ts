import { Server as HttpServer, type IncomingMessage, ServerResponse } from 'node:http'
import type {
  Http2SecureServer,
  Http2Server,
  IncomingHttpHeaders,
  ServerHttp2Session,
  ServerHttp2Stream,
} from 'node:http2'
import { Server as NetServer, type Socket } from 'node:net'
import { type TLSSocket, Server as TlsServer } from 'node:tls'
import type { Tracker } from '../lifecycle.js'
import type { ProbeKind, Probes } from '../probes.js'
import { Http1Rules } from './http1-rules.js'
import { NEW_CONNECTION_GRACE_MS, SocketLedger } from './ledger.js'

/** An HTTP/2 server from `http2.createServer` or `http2.createSecureServer`. */
export type Http2ServerLike = Http2Server | Http2SecureServer

/** The largest stream identifier HTTP/2 allows (RFC 9113 §5.1.1). A GOAWAY carrying it
 * refuses nothing: it only tells the client to stop opening streams (RFC 9113 §6.8). */
export const MAX_STREAM_ID = 2 ** 31 - 1

/** How long the first GOAWAY's PING may go unanswered before the final GOAWAY is sent
 * anyway. The PING's ack proves every stream the client sent before it saw the first GOAWAY
 * has arrived; one round trip suffices, this covers a slow or congested peer. */
export const GOAWAY_PING_TIMEOUT_MS = 1_000

/** RFC 9113 §7: the GOAWAY error code of a graceful shutdown. */
const NGHTTP2_NO_ERROR = 0

/**
 * node:http2, loaded only for a server that may be an HTTP/2 one. Loading it runs code
 * that creates EventEmitters of kinds a plain node:http application never creates (an
 * https Agent, a stream for process.stderr); V8 then sees too many kinds of object in
 * EventEmitter's constructor and node's request and response constructors run with
 * generic property access: ~1 300 instructions more per request on Node 20 (bench/RESULTS.md
 * §10). An application with an HTTP/2 server has loaded it already.
 */
function http2Module(): typeof import('node:http2') {
  return process.getBuiltinModule('node:http2')
}

let http2Classes: readonly (abstract new (...args: never[]) => unknown)[] | undefined

/** True for the servers `http2.createServer` and `http2.createSecureServer` return. node:http2
 * does not export their classes, so they are read off one instance of each, once; a
 * node:http server, or anything that is not a net.Server, is told apart without them. */
export function isHttp2Server(server: unknown): server is Http2ServerLike {
  if (server instanceof HttpServer || !(server instanceof NetServer)) return false
  if (http2Classes === undefined) {
    const http2 = http2Module()
    http2Classes = [http2.createServer(), http2.createSecureServer()].map(
      (s) => Object.getPrototypeOf(s).constructor,
    )
  }
  return http2Classes.some((Class) => server instanceof Class)
}

interface SessionState {
  /** When the session was created (performance.now()). */
  opened: number
  /** The first GOAWAY has been sent. */
  goaway: boolean
  /** Set while a session waits for its first stream or the end of its grace period. */
  timer: NodeJS.Timeout | undefined
}

/**
 * Tracks one HTTP/2 server's connections and sessions and moves its clients off them with
 * the graceful two-step GOAWAY of RFC 9113 §6.8. With `allowHTTP1`, the HTTP/1.1
 * connections such a server also serves follow the same rule set as a node:https server's
 * (Http1Rules).
 *
 * Per connection: one Map entry and a 'close' listener; per session: one Map entry. Per
 * stream, one probe-path lookup; nothing else runs before the signal.
 */
export class Http2Tracker implements Tracker {
  readonly server: Http2ServerLike
  readonly #ledger: SocketLedger
  readonly #rules: Http1Rules
  readonly #sessions = new Map<ServerHttp2Session, SessionState>()
  /** For TLS servers: the TLS socket running on each TCP socket, once its handshake is done. */
  readonly #tlsOf = new WeakMap<Socket, TLSSocket>()
  readonly #tls: boolean
  /** Streams answered as probes: not requests of the application. */
  readonly #probeStreams = new WeakSet<ServerHttp2Stream>()
  #draining = false

  constructor(server: Http2ServerLike, probes: Probes | undefined) {
    this.server = server
    this.#tls = server instanceof TlsServer
    // The listener is closed with the base class's close, not the server's own: from Node 24
    // on, Http2Server.prototype.close also closes every session at once with a one-step
    // GOAWAY, which would cut the two-step GOAWAY short and refuse a fresh session's first
    // request.
    this.#ledger = new SocketLedger(
      server,
      this.#tls ? TlsServer.prototype.close : NetServer.prototype.close,
    )
    this.#rules = new Http1Rules(server, {
      http1Sockets: () => this.#http1Sockets(),
    })
    if (this.#tls) {
      server.on('secureConnection', (socket: TLSSocket) => {
        // `_parent` (the TCP socket under a server-side TLS socket) is not public API but
        // has been set by node:tls since v0.x.
        const parent = (socket as unknown as { _parent?: Socket })._parent
        if (parent !== undefined) this.#tlsOf.set(parent, socket)
      })
    }
    server.on('session', (session: ServerHttp2Session) => {
      const state: SessionState = { opened: performance.now(), goaway: false, timer: undefined }
      this.#sessions.set(session, state)
      session.once('close', () => {
        clearTimeout(state.timer)
        this.#sessions.delete(session)
      })
      if (this.#draining) this.#goawayOnceUsed(session, state)
    })

    // Intercept 'stream' before any listener (the compatibility API's included) sees it, so
    // probe paths never reach the app; and 'request' for the HTTP/1.1 requests an
    // allowHTTP1 server serves, which follow the HTTP/1.1 rule set.
    const rules = this.#rules
    const probeStreams = this.#probeStreams
    const emit = server.emit
    server.emit = function (
      this: Http2ServerLike,
      event: string | symbol,
      a?: unknown,
      b?: unknown,
    ): boolean {
      if (probes !== undefined && event === 'stream') {
        const headers = b as IncomingHttpHeaders
        const kind: ProbeKind | undefined = probes.match(headers[':path'])
        if (kind !== undefined) {
          probeStreams.add(a as ServerHttp2Stream)
          answerProbe(probes, kind, a as ServerHttp2Stream, headers)
          return true
        }
      } else if (event === 'request' && b instanceof ServerResponse) {
        if (rules.swallow(a as IncomingMessage, b)) return true
        const kind = probes?.match((a as IncomingMessage).url)
        if (kind !== undefined) {
          probes?.handle(kind, a as IncomingMessage, b)
          return true
        }
      }
      // biome-ignore lint/complexity/noArguments: forwards every argument without copying them on each event
      return Reflect.apply(emit, this, arguments) as boolean
    } as typeof server.emit
  }

  get size(): number {
    return this.#ledger.size
  }
  get closedCount(): number {
    return this.#ledger.closedCount
  }
  get forcedCount(): number {
    return this.#ledger.forcedCount
  }
  get closedByAppAt(): number | undefined {
    return this.#ledger.closedByAppAt
  }
  get onClosedByApp(): (() => void) | undefined {
    return this.#ledger.onClosedByApp
  }
  set onClosedByApp(callback: (() => void) | undefined) {
    this.#ledger.onClosedByApp = callback
  }

  /** Requests in flight now, for the metrics: every open HTTP/2 stream that is not a probe
   * (a scrape over HTTP/2 does not count itself), and the unfinished HTTP/1.1 responses of
   * an `allowHTTP1` server. Walks every session: for a scrape, never on the request path. */
  inFlight(except?: ServerResponse | ReadonlySet<ServerResponse>): number {
    let count = this.#rules.inFlight(except)
    for (const session of this.#sessions.keys()) {
      for (const stream of openStreams(session)) {
        if (!this.#probeStreams.has(stream)) count++
      }
    }
    return count
  }

  /**
   * Lame duck: every session that has carried a stream gets the graceful GOAWAY; a session
   * that has not (including every session opened from now on) gets it once its first stream
   * ends, so it is served first. HTTP/1.1 connections (allowHTTP1) follow Http1Rules.
   */
  drain(): void {
    if (this.#draining) return
    this.#draining = true
    this.#ledger.startCounting()
    for (const [session, state] of this.#sessions) this.#goawayOnceUsed(session, state)
    this.#rules.drain()
  }

  /** As Http1Tracker.settle. At most SETTLE_MAX_MS. */
  settle(): Promise<void> {
    return this.#ledger.settle()
  }

  /**
   * Closes the listener. Sessions that have not been sent a GOAWAY get it now (a session
   * younger than NEW_CONNECTION_GRACE_MS that has not sent a stream gets until that age);
   * each session ends when its last stream ends. HTTP/1.1 connections close as a node:https
   * server's do; connections that never completed a handshake close. Resolves when no
   * connection is left.
   */
  close(deadlineMs: number): Promise<void> {
    this.drain()
    const empty = this.#ledger.closeListener()
    this.#rules.close(deadlineMs)
    if (this.#tls) {
      // h2c: every connection carries a session from its first byte.
      this.#ledger.closeUnused((socket) => {
        const secure = this.#tlsOf.get(socket)
        if (secure?.alpnProtocol === 'h2') return false
        return secure === undefined || this.#rules.unused(secure)
      })
    }
    for (const [session, state] of this.#sessions) {
      if (state.goaway || state.timer !== undefined) continue
      this.#graceTimer(session, state, () => {})
    }
    return empty.finally(() => this.#rules.stop())
  }

  destroyAll(): number {
    this.#rules.stop()
    return this.#ledger.destroyAll()
  }

  #goawayOnceUsed(session: ServerHttp2Session, state: SessionState): void {
    if (state.goaway || session.closed || session.destroyed) return
    // A GOAWAY that reaches a node:http2 client before it sent its first request makes the
    // client fail that request (ERR_HTTP2_GOAWAY_SESSION), so a session is served first:
    // its GOAWAY goes out when its first stream ends. By then the requests a client sent
    // together with the first one have arrived too, and a client that retries what a
    // GOAWAY stopped (undici retries once) is not sent away on every connection it opens.
    const used = (session.state.lastProcStreamID ?? 0) > 0
    if (used) {
      this.#goaway(session, state)
      return
    }
    if (state.timer !== undefined) return
    const onStream = (stream: ServerHttp2Stream) => {
      stream.once('close', () => {
        clearTimeout(state.timer)
        this.#goaway(session, state)
      })
    }
    session.once('stream', onStream)
    if (this.#ledger.closing) this.#graceTimer(session, state, onStream)
  }

  #graceTimer(
    session: ServerHttp2Session,
    state: SessionState,
    onStream: (stream: ServerHttp2Stream) => void,
  ): void {
    const left = NEW_CONNECTION_GRACE_MS - (performance.now() - state.opened)
    const expire = () => {
      session.removeListener('stream', onStream)
      this.#goaway(session, state)
    }
    if (left <= 0) expire()
    else {
      state.timer = setTimeout(expire, Math.ceil(left))
      state.timer.unref()
    }
  }

  /**
   * The graceful GOAWAY (RFC 9113 §6.8, as grpc-go drains): a GOAWAY with NO_ERROR and
   * last-stream-id 2^31-1 that refuses nothing, plus a PING; once the PING is acked (every
   * stream the client sent before it saw the GOAWAY has then arrived), or after
   * GOAWAY_PING_TIMEOUT_MS, `session.close()` sends the final GOAWAY with the real last
   * stream id and ends the session when its last stream ends.
   *
   * node:http2 has no API for nghttp2's shutdown notice, and once nghttp2 has sent any
   * GOAWAY it ignores new streams whatever last-stream-id it announced. A stream that
   * crossed the first GOAWAY on the wire is therefore not served: the final GOAWAY's last
   * stream id marks it refused, which clients retry safely (RFC 9113 §8.7). No stream the
   * server accepted is ever reset.
   */
  #goaway(session: ServerHttp2Session, state: SessionState): void {
    if (state.goaway || session.closed || session.destroyed) return
    state.goaway = true
    let finished = false
    const final = () => {
      if (finished) return
      finished = true
      clearTimeout(timer)
      if (!session.closed && !session.destroyed) session.close()
    }
    const timer = setTimeout(final, GOAWAY_PING_TIMEOUT_MS)
    timer.unref()
    session.goaway(NGHTTP2_NO_ERROR, MAX_STREAM_ID)
    // ping() returns false when too many PINGs are unacknowledged: no ack will come.
    if (!session.ping(final)) final()
  }

  /** The sockets HTTP/1.1 runs on (an allowHTTP1 server's TLS connections that did not
   * negotiate h2). */
  *#http1Sockets(): IterableIterator<Socket> {
    if (!this.#tls) return
    for (const socket of this.#ledger.sockets()) {
      const secure = this.#tlsOf.get(socket)
      if (secure !== undefined && secure.alpnProtocol !== 'h2') yield secure
    }
  }
}

/** A session's open streams: node:http2 keeps them in a Map on the session's internal
 * `state` symbol (every supported version); nothing is kept per stream here, so the request
 * path costs nothing for the metrics. */
function openStreams(session: ServerHttp2Session): Iterable<ServerHttp2Stream> {
  for (const symbol of Object.getOwnPropertySymbols(session)) {
    if (symbol.description !== 'state') continue
    // node's internal SafeMap is not an instance of this realm's Map.
    const streams = (
      session as unknown as Record<symbol, { streams?: Map<number, ServerHttp2Stream> } | undefined>
    )[symbol]?.streams
    if (typeof streams?.values === 'function') return streams.values()
  }
  return []
}

/** The part of a response Probes.handle writes to, over an HTTP/2 stream. */
class StreamReply {
  readonly #stream: ServerHttp2Stream
  readonly #headers: Record<string, string | number> = {}
  constructor(stream: ServerHttp2Stream) {
    this.#stream = stream
  }
  get writableEnded(): boolean {
    return this.#stream.writableEnded
  }
  get destroyed(): boolean {
    return this.#stream.destroyed
  }
  setHeader(name: string, value: string | number): this {
    this.#headers[name.toLowerCase()] = value
    return this
  }
  writeHead(status: number, headers: Record<string, string | number>): this {
    if (this.#stream.headersSent || this.#stream.destroyed) return this
    this.#stream.respond({ ...this.#headers, ...headers, ':status': status })
    return this
  }
  end(body: string): this {
    if (!this.#stream.destroyed) this.#stream.end(body)
    return this
  }
}

function answerProbe(
  probes: Probes,
  kind: ProbeKind,
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
): void {
  const req = { method: headers[':method'], url: headers[':path'] }
  probes.handle(
    kind,
    req as unknown as IncomingMessage,
    new StreamReply(stream) as unknown as ServerResponse,
  )
}
