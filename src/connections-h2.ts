import { type IncomingMessage, ServerResponse } from 'node:http'
import http2, {
  type Http2SecureServer,
  type Http2Server,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2'
import { Server as NetServer, type Socket } from 'node:net'
import { type TLSSocket, Server as TlsServer } from 'node:tls'
import { NEW_CONNECTION_GRACE_MS, settleAccepts } from './connections.js'
import type { ProbeKind, Probes } from './probes.js'

/** An HTTP/2 server from `http2.createServer` or `http2.createSecureServer`. */
export type Http2ServerLike = Http2Server | Http2SecureServer

/** The largest stream identifier HTTP/2 allows (RFC 9113 §5.1.1). A GOAWAY carrying it
 * refuses nothing: it only tells the client to stop opening streams (RFC 9113 §6.8). */
export const MAX_STREAM_ID = 2 ** 31 - 1

/** How long the first GOAWAY's PING may go unanswered before the final GOAWAY is sent
 * anyway. The PING's ack proves every stream the client sent before it saw the first GOAWAY
 * has arrived; one round trip suffices, this covers a slow or congested peer. */
export const GOAWAY_PING_TIMEOUT_MS = 1_000

const { NGHTTP2_NO_ERROR } = http2.constants

let http2Classes: readonly (abstract new (...args: never[]) => unknown)[] | undefined

/** True for the servers `http2.createServer` and `http2.createSecureServer` return. node:http2
 * does not export their classes, so they are read off one instance of each, once. */
export function isHttp2Server(server: unknown): server is Http2ServerLike {
  http2Classes ??= [http2.createServer(), http2.createSecureServer()].map(
    (s) => Object.getPrototypeOf(s).constructor,
  )
  return http2Classes.some((Class) => server instanceof Class)
}

/** Node's http server keeps the response being written on `socket._httpMessage`. */
interface HttpSocket extends Socket {
  _httpMessage?: ServerResponse | null
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
 * connections such a server also serves get `Connection: close`, as in ConnectionTracker.
 *
 * Per connection: one Map entry and a 'close' listener; per session: one Map entry. Per
 * stream, one probe-path lookup; nothing else runs before the signal.
 */
export class Http2Tracker {
  readonly server: Http2ServerLike
  /** Every TCP connection, with the time it was accepted. */
  readonly #sockets = new Map<Socket, number>()
  readonly #sessions = new Map<ServerHttp2Session, SessionState>()
  /** For TLS servers: the TLS socket running on each TCP socket, once its handshake is done. */
  readonly #tlsOf = new WeakMap<Socket, TLSSocket>()
  readonly #tls: boolean
  readonly #watched = new WeakSet<ServerResponse>()
  readonly #destroyed = new WeakSet<Socket>()
  readonly #close: (this: NetServer, callback?: () => void) => unknown
  #accepted = 0
  #draining = false
  #closing = false
  #listenerClosed = false
  #onIdle: (() => void) | undefined
  /** Connections that ended on their own after the drain began. */
  closedCount = 0
  /** Connections destroyed because they outlived the deadline or the shutdown was forced. */
  forcedCount = 0
  /** When the application closed the listener itself (performance.now()), if it did. */
  closedByAppAt: number | undefined
  /** Called once when the application closes the listener itself. */
  onClosedByApp: (() => void) | undefined

  constructor(server: Http2ServerLike, probes: Probes | undefined) {
    this.server = server
    this.#tls = server instanceof TlsServer
    const sockets = this.#sockets
    const tracker = this
    function onSocketClose(this: Socket) {
      sockets.delete(this)
      if (tracker.#draining && !tracker.#destroyed.has(this)) tracker.closedCount++
      tracker.#checkIdle()
    }
    server.on('connection', (socket: Socket) => {
      this.#accepted++
      sockets.set(socket, performance.now())
      socket.once('close', onSocketClose)
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
    // allowHTTP1 server serves, which get `Connection: close` during the drain.
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
          answerProbe(probes, kind, a as ServerHttp2Stream, headers)
          return true
        }
      } else if (event === 'request' && b instanceof ServerResponse) {
        if (tracker.#draining) tracker.#closeAfter(b)
        const kind = probes?.match((a as IncomingMessage).url)
        if (kind !== undefined) {
          probes?.handle(kind, a as IncomingMessage, b)
          return true
        }
      }
      // biome-ignore lint/complexity/noArguments: forwards every argument without copying them on each event
      return Reflect.apply(emit, this, arguments) as boolean
    } as typeof server.emit

    // The listener is closed with the base class's close, not the server's own: from Node 24
    // on, Http2Server.prototype.close also closes every session at once with a one-step
    // GOAWAY, which would cut the two-step GOAWAY short and refuse a fresh session's first
    // request. An application that closes the server itself is recorded, as in
    // ConnectionTracker.
    this.#close = this.#tls ? TlsServer.prototype.close : NetServer.prototype.close
    const close = server.close
    server.close = function (this: Http2ServerLike) {
      if (!tracker.#closing && tracker.closedByAppAt === undefined && this.listening) {
        tracker.closedByAppAt = performance.now()
        tracker.onClosedByApp?.()
      }
      // biome-ignore lint/complexity/noArguments: passes the callback on as given
      return Reflect.apply(close, this, arguments)
    } as typeof server.close
  }

  /** Requests in flight now, for the metrics: the HTTP/1.1 responses of an `allowHTTP1`
   * server that are not finished. HTTP/2 streams are not counted (nothing is kept per
   * stream before the signal). */
  inFlight(except?: ServerResponse | ReadonlySet<ServerResponse>): number {
    const skip = except instanceof Set ? except : undefined
    let count = 0
    for (const socket of this.#sockets.keys()) {
      const res = ((this.#tlsOf.get(socket) ?? socket) as HttpSocket)._httpMessage
      if (res != null && res !== except && !res.writableFinished && skip?.has(res) !== true) count++
    }
    return count
  }

  get size(): number {
    return this.#sockets.size
  }

  /**
   * Lame duck: every session that has carried a stream gets the graceful GOAWAY; a session
   * that has not (including every session opened from now on) gets it once its first stream
   * ends, so it is served first. HTTP/1.1 responses (allowHTTP1) carry `Connection: close`.
   */
  drain(): void {
    if (this.#draining) return
    this.#draining = true
    for (const [session, state] of this.#sessions) this.#goawayOnceUsed(session, state)
    for (const socket of this.#sockets.keys()) {
      const res = this.#http1Socket(socket)?._httpMessage
      if (res != null && !res.writableFinished) this.#closeAfter(res)
    }
  }

  /**
   * Resolves once the event loop has turned without accepting a connection, and then once
   * more, so that connections waiting in the accept queue are accepted before the listener
   * closes (as ConnectionTracker.settle). At most SETTLE_MAX_MS.
   */
  settle(): Promise<void> {
    return settleAccepts(() => this.#accepted)
  }

  /**
   * Closes the listener. Sessions that have not been sent a GOAWAY get it now (a session
   * younger than NEW_CONNECTION_GRACE_MS that has not sent a stream gets until that age);
   * each session ends when its last stream ends. Idle HTTP/1.1 connections and connections
   * that never completed a handshake close. Resolves when no connection is left.
   */
  close(): Promise<void> {
    this.drain()
    this.#closing = true
    const done = new Promise<void>((resolve) => {
      this.#onIdle = resolve
    })
    if (this.server.listening) {
      this.#close.call(this.server, () => {
        this.#listenerClosed = true
        this.#checkIdle()
      })
    } else {
      // Never listened, or listen() is still pending: close it as soon as it listens.
      this.#listenerClosed = true
      this.server.prependOnceListener('listening', () => this.#close.call(this.server))
    }
    // Idle HTTP/1.1 keep-alive connections of an allowHTTP1 server (a no-op otherwise).
    ;(this.server as { closeIdleConnections?: () => void }).closeIdleConnections?.()
    this.#closeUnused()
    this.#checkIdle()
    return done
  }

  /** Destroys every remaining connection; returns how many there were. */
  destroyAll(): number {
    let destroyed = 0
    for (const socket of this.#sockets.keys()) {
      if (socket.destroyed) continue
      this.#destroyed.add(socket)
      socket.destroy()
      destroyed++
    }
    this.forcedCount += destroyed
    return destroyed
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
    if (this.#closing) this.#graceTimer(session, state, onStream)
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

  /**
   * Closes TCP connections that have neither an HTTP/2 session nor an HTTP/1.1 request:
   * TLS handshakes that never finished, HTTP/1.1 connections that never sent a byte. One
   * younger than NEW_CONNECTION_GRACE_MS gets until that age, as in ConnectionTracker.
   * For sessions that have not been sent a GOAWAY, starts their grace timers.
   */
  #closeUnused(): void {
    const now = performance.now()
    let nextCheck = Number.POSITIVE_INFINITY
    for (const [socket, accepted] of this.#sockets) {
      if (!this.#tls) continue // h2c: every connection carries a session from its first byte
      const secure = this.#tlsOf.get(socket)
      if (secure?.alpnProtocol === 'h2') continue
      const h1 = secure as HttpSocket | undefined
      if (h1 !== undefined && (h1.bytesRead > 0 || h1._httpMessage != null)) continue
      const age = now - accepted
      if (age >= NEW_CONNECTION_GRACE_MS) socket.destroy()
      else nextCheck = Math.min(nextCheck, NEW_CONNECTION_GRACE_MS - age)
    }
    if (nextCheck !== Number.POSITIVE_INFINITY) {
      setTimeout(() => this.#closeUnused(), Math.ceil(nextCheck)).unref()
    }
    for (const [session, state] of this.#sessions) {
      if (state.goaway || state.timer !== undefined) continue
      this.#graceTimer(session, state, () => {})
    }
  }

  /** The socket HTTP/1.1 runs on for a TCP connection of an allowHTTP1 server, if any. */
  #http1Socket(socket: Socket): HttpSocket | undefined {
    if (!this.#tls) return undefined
    const secure = this.#tlsOf.get(socket)
    return secure === undefined || secure.alpnProtocol === 'h2'
      ? undefined
      : (secure as unknown as HttpSocket)
  }

  #checkIdle(): void {
    if (this.#closing && this.#listenerClosed && this.#sockets.size === 0) {
      const resolve = this.#onIdle
      this.#onIdle = undefined
      resolve?.()
    }
  }

  /**
   * An HTTP/1.1 response of an allowHTTP1 server, during the drain: `Connection: close` if
   * its headers are not out yet, and its socket closed after it. A response that already
   * went out with keep-alive leaves its connection open: closing it could race the
   * client's next request, which gets the close instead (or the close phase's idle close).
   */
  #closeAfter(res: ServerResponse): void {
    if (this.#watched.has(res)) return
    this.#watched.add(res)
    if (res.headersSent) return
    res.shouldKeepAlive = false
    if (res.hasHeader('connection')) res.setHeader('connection', 'close')
    const socket = res.socket as HttpSocket | null
    res.once('finish', () => {
      if (socket === null || socket.destroyed) return
      const next = socket._httpMessage
      if (next != null && next !== res && !next.writableFinished) this.#closeAfter(next)
      else socket.end()
    })
  }
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
