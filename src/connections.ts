import { type Server as HttpServer, type IncomingMessage, ServerResponse } from 'node:http'
import { Server as HttpsServer } from 'node:https'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { ProbeKind, Probes } from './probes.js'

/** How long a connection may take to send a request once the listener is closed: its first
 * request after being accepted, or its next one after a keep-alive response that ended in
 * the close phase. A client sends within a round trip (plus a TLS handshake); 1 s covers
 * that with room to spare, like Go's Server.Shutdown, which gives new connections 5 s. */
export const NEW_CONNECTION_GRACE_MS = 1_000

/** Before the listener closes, the event loop turns until a turn accepts no connection
 * (node accepts one connection per turn), for at most this long: connections that wait in
 * the accept queue are reset when the listener closes. */
export const SETTLE_MAX_MS = 250

/** Turns the event loop until a turn accepts no new connection (`accepted` counts them),
 * for at most SETTLE_MAX_MS, then once more so that what they sent is read. */
export async function settleAccepts(accepted: () => number): Promise<void> {
  const until = performance.now() + SETTLE_MAX_MS
  let seen: number
  do {
    seen = accepted()
    await new Promise<void>((resolve) => setImmediate(resolve))
  } while (accepted() !== seen && performance.now() < until)
  await new Promise<void>((resolve) => setImmediate(resolve))
}

/** Node's http server keeps the response being written on `socket._httpMessage`; it has
 * done so since v0.x and the http client and server rely on it internally. */
interface HttpSocket extends Socket {
  _httpMessage?: ServerResponse | null
  /** The connection's HTTP parser; `incoming` is the request it parsed last. Internal since
   * v0.x (node's own server code reads both). */
  parser?: { incoming?: IncomingMessage | null } | null
}

/** Node sets `_last` on a response once its headers say the connection closes after it
 * (internal since v0.x; node's own resOnFinish reads it). */
interface LastFlag {
  _last?: boolean
}

/** Node's list of an http server's connections (one HTTP parser each), created when the
 * server listens; `closeAllConnections()` walks it. Internal since v18.2, present on every
 * supported version; read only to adopt connections accepted before lameduck() was called. */
interface ConnectionsList {
  all(): { socket?: Socket | null }[]
  idle(): { socket?: Socket | null }[]
}

function connectionsList(server: HttpServer): ConnectionsList | undefined {
  for (const symbol of Object.getOwnPropertySymbols(server)) {
    if (symbol.description === 'http.server.connections') {
      const list = (server as unknown as Record<symbol, unknown>)[symbol] as
        | ConnectionsList
        | undefined
      return typeof list?.all === 'function' && typeof list.idle === 'function' ? list : undefined
    }
  }
  return undefined
}

/** The header arguments of `writeHead(status, [message], [headers])` with every
 * `Connection` field replaced by `close`; node lets an explicit header win over
 * `shouldKeepAlive`, so an app's `Connection: keep-alive` must be rewritten. */
function closeHeaders(headers: unknown): unknown {
  if (Array.isArray(headers)) {
    // A flat [name, value, name, value, …] list, or a list of [name, value] pairs.
    if (headers.length > 0 && Array.isArray(headers[0])) {
      return (headers as [string, unknown][]).map((pair) =>
        String(pair[0]).toLowerCase() === 'connection' ? [pair[0], 'close'] : pair,
      )
    }
    const out = headers.slice()
    for (let i = 0; i < out.length; i += 2) {
      if (String(out[i]).toLowerCase() === 'connection') out[i + 1] = 'close'
    }
    return out
  }
  if (headers !== null && typeof headers === 'object') {
    let copy: Record<string, unknown> | undefined
    for (const name of Object.keys(headers)) {
      if (name.toLowerCase() !== 'connection') continue
      copy ??= { ...(headers as Record<string, unknown>) }
      copy[name] = 'close'
    }
    return copy ?? headers
  }
  return headers
}

/**
 * Tracks one server's connections and moves its clients off them during shutdown.
 *
 * Per connection it costs one Map entry and one shared 'close' listener. Per request, in
 * steady state: with probes served on this server, a wrapper around `server.emit` that
 * pre-checks the probe path; with probes elsewhere, nothing (the wrapper is installed when
 * the drain starts). Everything else happens only after the signal.
 *
 * The rules it follows while draining, for HTTP/1.1:
 * - A response whose headers are not out yet gets `Connection: close`, decided when its
 *   headers are written, whatever the application set; unless more pipelined requests wait
 *   behind it on the same connection: then the last of them carries the close. (With
 *   probes on a separate port, requests pipelined before the signal are not seen: they keep
 *   keep-alive, and their connection is closed as idle in the close phase.)
 * - A request that arrives on a connection after a response that said `close` is not
 *   passed to the application (RFC 9112 §9.6: it is not processed; the client retries it).
 * - A connection is never closed right after a response that told the client keep-alive:
 *   its next request is answered with `Connection: close`. It is closed as idle only in the
 *   close phase, and only once it has had NEW_CONNECTION_GRACE_MS to send that request.
 */
export class ConnectionTracker {
  readonly server: HttpServer
  /** Every TCP connection, including upgraded and TLS-handshaking ones, with the time it
   * was accepted (-Infinity for connections accepted before lameduck() was called). */
  readonly #sockets = new Map<Socket, number>()
  /** The sockets HTTP runs on: the TCP sockets for http, the TLS sockets for https. */
  readonly #httpSockets: Set<Socket> | undefined
  /** For https: the TLS socket running on each TCP socket, once its handshake is done. */
  readonly #tlsOf = new WeakMap<Socket, Socket>()
  /** Responses whose headers decide `Connection: close` when they are written. */
  readonly #marked = new WeakSet<ServerResponse>()
  /** Connections that have been answered with `Connection: close`. */
  readonly #closeSent = new WeakSet<Socket>()
  readonly #destroyed = new WeakSet<Socket>()
  readonly #close: HttpServer['close']
  readonly #probes: Probes | undefined
  #intercepting = false
  #accepted = 0
  #draining = false
  #closing = false
  #listenerClosed = false
  #idleSweep: NodeJS.Timeout | undefined
  #onIdle: (() => void) | undefined
  /** Connections that ended on their own after the drain began. */
  closedCount = 0
  /** Connections destroyed because they outlived the deadline or the shutdown was forced. */
  forcedCount = 0
  /** When the application closed the listener itself (performance.now()), if it did. */
  closedByAppAt: number | undefined
  /** Called once when the application closes the listener itself. */
  onClosedByApp: (() => void) | undefined

  constructor(server: HttpServer, probes: Probes | undefined) {
    this.server = server
    const tls = server instanceof HttpsServer
    const sockets = this.#sockets
    const httpSockets = tls ? new Set<Socket>() : undefined
    this.#httpSockets = httpSockets
    const tracker = this
    function onSocketClose(this: Socket) {
      sockets.delete(this)
      if (tracker.#draining && !tracker.#destroyed.has(this)) tracker.closedCount++
      tracker.#checkIdle()
    }
    function onHttpSocketClose(this: Socket) {
      httpSockets?.delete(this)
    }
    const addHttpSocket = (tlsSocket: Socket) => {
      // `_parent` (the TCP socket under a server-side TLS socket) is not public API but
      // has been set by node:tls since v0.x.
      const parent = (tlsSocket as unknown as { _parent?: Socket })._parent
      if (parent != null) this.#tlsOf.set(parent, tlsSocket)
      httpSockets?.add(tlsSocket)
      tlsSocket.once('close', onHttpSocketClose)
    }
    const addSocket = (socket: Socket, accepted: number) => {
      sockets.set(socket, accepted)
      socket.once('close', onSocketClose)
    }
    server.on('connection', (socket: Socket) => {
      this.#accepted++
      addSocket(socket, performance.now())
    })
    if (httpSockets !== undefined) server.on('secureConnection', addHttpSocket)

    // Connections accepted before lameduck() was called: adopt them from node's own list.
    // Upgraded connections have left that list and stay unknown (documented).
    for (const parser of connectionsList(server)?.all() ?? []) {
      const socket = parser.socket
      if (socket == null || socket.destroyed) continue
      const tcp = tls ? this.#tcpOf(socket) : socket
      if (sockets.has(tcp)) continue
      addSocket(tcp, Number.NEGATIVE_INFINITY)
      if (tls) addHttpSocket(socket)
    }

    this.#probes = probes
    // With probes on this server, requests are intercepted from the start; otherwise only
    // from the drain on, so that the request path costs nothing until then.
    if (probes !== undefined) this.#intercept()

    // An application that closes the server itself (its own SIGTERM handler, fastify.close())
    // refuses new connections while the Service may still route to the pod: record it.
    const close = server.close
    this.#close = close
    server.close = function (this: HttpServer) {
      if (!tracker.#closing && tracker.closedByAppAt === undefined && this.listening) {
        tracker.closedByAppAt = performance.now()
        tracker.onClosedByApp?.()
      }
      // biome-ignore lint/complexity/noArguments: passes the callback on as given
      return Reflect.apply(close, this, arguments) as HttpServer
    } as typeof server.close
  }

  get size(): number {
    return this.#sockets.size
  }

  /**
   * Lame duck: from now on every response whose headers are not out yet carries
   * `Connection: close` (see the class comment for pipelining). A connection whose current
   * response already went out with keep-alive stays open; its next request gets the close.
   */
  drain(): void {
    if (this.#draining) return
    this.#draining = true
    this.#intercept()
    for (const socket of this.#httpSockets ?? this.#sockets.keys()) {
      const res = (socket as HttpSocket)._httpMessage
      if (res != null && !res.writableFinished) this.#follow(res)
    }
  }

  /**
   * Resolves once the event loop has turned without accepting a new connection, and then
   * once more, so that what waits in the kernel is accepted and read before close():
   * after a blocked event loop, connections wait in the accept queue (reset when the
   * listener closes) and requests wait unread in socket buffers (their connections would
   * look idle). node accepts one connection per turn of the loop. At most SETTLE_MAX_MS.
   */
  settle(): Promise<void> {
    return settleAccepts(() => this.#accepted)
  }

  /**
   * Closes the listener and every connection that has no request in progress: idle
   * keep-alive connections and connections that never sent a request. Connections with a
   * request in progress close after its response. Resolves when no connection is left.
   * Call settle() first.
   */
  close(): Promise<void> {
    this.drain()
    this.#closing = true
    const done = new Promise<void>((resolve) => {
      this.#onIdle = resolve
    })
    // node's http close() also closes the connections that are idle at this instant, through
    // this method; since Node 26 that includes connections that have not sent their first
    // request yet, which get NEW_CONNECTION_GRACE_MS here instead (#closeUnused).
    this.server.closeIdleConnections = () => this.#closeIdle()
    if (this.server.listening) {
      this.#close.call(this.server, () => {
        this.#listenerClosed = true
        this.#checkIdle()
      })
    } else {
      // Never listened, or listen() is still pending (a DNS lookup, a cluster worker asking
      // its primary): whenever it starts listening, close it at once. No connection can be
      // accepted before 'listening' is emitted.
      this.#listenerClosed = true
      this.server.prependOnceListener('listening', () => this.#close.call(this.server))
    }
    this.#closeUnused()
    this.#checkIdle()
    return done
  }

  /** Destroys every remaining connection; returns how many there were. */
  destroyAll(): number {
    clearTimeout(this.#idleSweep)
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

  /**
   * Intercepts requests before any listener sees them, so that probe paths never reach the
   * application and responses are marked before the application writes their headers.
   * The 'request' path passes its two arguments on directly: forwarding `arguments` costs
   * measurably more per request.
   */
  #intercept(): void {
    if (this.#intercepting) return
    this.#intercepting = true
    const tracker = this
    const probes = this.#probes
    const server = this.server
    const emit = server.emit as (
      this: HttpServer,
      event: string | symbol,
      ...args: unknown[]
    ) => boolean
    server.emit = function (
      this: HttpServer,
      event: string | symbol,
      req?: unknown,
      res?: unknown,
    ): boolean {
      if (event === 'request') {
        if (tracker.#draining) {
          if (tracker.#swallow(req as IncomingMessage, res as ServerResponse)) return true
        } else if ((res as ServerResponse).socket === null) {
          // A pipelined request: its response waits for the one before it, out of reach
          // once the drain starts, so it is marked now (rare: Node's Agent, browsers and
          // most proxies do not pipeline).
          tracker.#mark(res as ServerResponse)
        }
        if (probes !== undefined) {
          const kind = probes.match((req as IncomingMessage).url)
          if (kind !== undefined) {
            probes.handle(kind, req as IncomingMessage, res as ServerResponse)
            return true
          }
        }
        return emit.call(this, event, req, res)
      }
      if (event === 'checkContinue' || event === 'checkExpectation') {
        // Requests with `Expect:` go to these listeners instead of 'request', when there are any.
        if (tracker.#draining && tracker.#swallow(req as IncomingMessage, res as ServerResponse))
          return true
        const kind = probes?.match((req as IncomingMessage).url)
        if (kind !== undefined) {
          probes?.handle(kind, req as IncomingMessage, res as ServerResponse)
          return true
        }
      } else if (event === 'upgrade' && probes !== undefined) {
        const kind = probes.match((req as IncomingMessage).url)
        if (kind !== undefined) {
          answerOnSocket(probes, kind, req as IncomingMessage, res as Duplex)
          return true
        }
      }
      // biome-ignore lint/complexity/noArguments: forwards every argument of other events as they came
      return Reflect.apply(emit, this, arguments) as boolean
    } as typeof server.emit
  }

  /** A request that arrives while draining: true when it must not reach the application,
   * because it came behind a response that said `Connection: close` (RFC 9112 §9.6: not
   * processed; the client retries it; node closes the connection after that response). */
  #swallow(req: IncomingMessage, res: ServerResponse): boolean {
    if (this.#closeSent.has(req.socket)) return true
    this.#mark(res)
    return false
  }

  /** Follows a response in progress when the drain starts: marks it if its headers are not
   * out yet, else waits for it to end and follows the next one on its connection. */
  #follow(res: ServerResponse): void {
    if (!res.headersSent) this.#mark(res)
    else this.#watchKeptAlive(res)
  }

  /** Decides `Connection: close` for `res` when its headers are written. */
  #mark(res: ServerResponse): void {
    if (this.#marked.has(res) || res.headersSent) return
    this.#marked.add(res)
    const tracker = this
    const writeHead = res.writeHead
    res.writeHead = function (this: ServerResponse) {
      if (!tracker.#draining) {
        // biome-ignore lint/complexity/noArguments: the status, message and headers as given
        return Reflect.apply(writeHead, this, arguments) as ServerResponse
      }
      const socket = this.req.socket as HttpSocket
      // biome-ignore lint/complexity/noArguments: the status, message and headers as given
      const args = Array.prototype.slice.call(arguments) as unknown[]
      // Another request parsed after this one on the connection is a pipelined request
      // waiting for its turn: the close goes on the last response, not this one.
      const incoming = socket.parser?.incoming
      if (incoming == null || incoming === this.req) {
        this.shouldKeepAlive = false
        if (this.hasHeader('connection')) this.setHeader('connection', 'close')
        const at = typeof args[1] === 'string' ? 2 : 1
        if (args.length > at) args[at] = closeHeaders(args[at])
      }
      const result = Reflect.apply(writeHead, this, args) as ServerResponse
      if ((this as ServerResponse & LastFlag)._last === true) tracker.#closeSent.add(socket)
      else tracker.#watchKeptAlive(this)
      return result
    } as typeof res.writeHead
  }

  /** A response that went out with keep-alive during the drain. When it ends, node moves
   * to the next pipelined response on its connection, if any: that one is followed in turn.
   * Once the last one ends in the close phase, the connection gets NEW_CONNECTION_GRACE_MS
   * to send its next request (answered with `Connection: close`) before it is closed as
   * idle. */
  #watchKeptAlive(res: ServerResponse): void {
    const socket = res.req.socket as HttpSocket
    // node's own 'finish' listener (added when the response was created) runs first and
    // hands the connection to the next response.
    res.once('finish', () => {
      const next = socket._httpMessage
      if (next != null && next !== res && !next.writableFinished) this.#follow(next)
      else if (this.#closing) this.#sweepIdleLater()
    })
  }

  #sweepIdleLater(): void {
    if (this.#idleSweep !== undefined) return
    this.#idleSweep = setTimeout(() => {
      this.#idleSweep = undefined
      this.#closeIdle()
    }, NEW_CONNECTION_GRACE_MS)
    this.#idleSweep.unref()
  }

  /** node's closeIdleConnections(), except for connections that have not sent a byte yet
   * and are younger than NEW_CONNECTION_GRACE_MS. */
  #closeIdle(): void {
    const list = connectionsList(this.server)
    if (list === undefined) {
      Object.getPrototypeOf(this.server).closeIdleConnections.call(this.server)
      return
    }
    const now = performance.now()
    for (const parser of list.idle()) {
      const socket = parser.socket as HttpSocket | null | undefined
      if (socket == null) continue
      const res = socket._httpMessage
      if (res != null && !res.writableFinished) continue
      if (socket.bytesRead === 0) {
        const tcp = this.#httpSockets === undefined ? socket : this.#tcpOf(socket)
        const accepted = this.#sockets.get(tcp) ?? Number.NEGATIVE_INFINITY
        if (now - accepted < NEW_CONNECTION_GRACE_MS) continue
      }
      socket.destroy()
    }
  }

  #tcpOf(tlsSocket: Socket): Socket {
    return (tlsSocket as unknown as { _parent?: Socket })._parent ?? tlsSocket
  }

  /**
   * Closes connections that never sent a byte; node's idle list (Node 20 and 24) leaves them
   * open. A connection accepted less than NEW_CONNECTION_GRACE_MS ago may have its request
   * still in flight, so it gets until that age.
   */
  #closeUnused(): void {
    const now = performance.now()
    let nextCheck = Number.POSITIVE_INFINITY
    for (const [socket, accepted] of this.#sockets) {
      const httpSocket = this.#httpSocketOf(socket)
      if (httpSocket !== undefined && (httpSocket.bytesRead > 0 || httpSocket._httpMessage != null))
        continue
      const age = now - accepted
      if (age >= NEW_CONNECTION_GRACE_MS) socket.destroy()
      else nextCheck = Math.min(nextCheck, NEW_CONNECTION_GRACE_MS - age)
    }
    if (nextCheck !== Number.POSITIVE_INFINITY) {
      setTimeout(() => this.#closeUnused(), Math.ceil(nextCheck)).unref()
    }
  }

  /** Connections with a response in progress, not counting `except`'s own. Walks every
   * connection: for a metrics scrape, never on the request path. */
  inFlight(except?: ServerResponse | ReadonlySet<ServerResponse>): number {
    const skip = except instanceof Set ? except : undefined
    let count = 0
    for (const socket of this.#httpSockets ?? this.#sockets.keys()) {
      const res = (socket as HttpSocket)._httpMessage
      if (res != null && res !== except && !res.writableFinished && skip?.has(res) !== true) count++
    }
    return count
  }

  #httpSocketOf(socket: Socket): HttpSocket | undefined {
    if (this.#httpSockets === undefined) return socket as HttpSocket
    return this.#tlsOf.get(socket) as HttpSocket | undefined
  }

  #checkIdle(): void {
    if (this.#closing && this.#listenerClosed && this.#sockets.size === 0) {
      clearTimeout(this.#idleSweep)
      const resolve = this.#onIdle
      this.#onIdle = undefined
      resolve?.()
    }
  }
}

/** Answers a probe that came as an upgrade request (no response object exists for it),
 * then closes the connection. */
function answerOnSocket(
  probes: Probes,
  kind: ProbeKind,
  req: IncomingMessage,
  socket: Duplex,
): void {
  const res = new ServerResponse(req)
  res.shouldKeepAlive = false
  res.assignSocket(socket as Socket)
  res.once('finish', () => {
    res.detachSocket(socket as Socket)
    socket.end()
  })
  probes.handle(kind, req, res)
}
