import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http'
import { Server as HttpsServer } from 'node:https'
import type { Socket } from 'node:net'
import type { ProbeKind, Probes } from './probes.js'

/** How long a connection that has sent nothing yet may wait for its first request once the
 * listener is closed. On a real network a client sends its request within a round trip of
 * connecting (plus a TLS handshake); 1 s covers that with room to spare. */
export const NEW_CONNECTION_GRACE_MS = 1_000

/** Node's http server keeps the response being written on `socket._httpMessage`; it has
 * done so since v0.x and the http client and server rely on it internally. */
interface HttpSocket extends Socket {
  _httpMessage?: ServerResponse | null
}

/**
 * Tracks one server's connections and moves its clients off them during shutdown.
 *
 * Per connection it costs one Map entry and one shared 'close' listener; per request, in
 * steady state, one probe-path lookup. All other work happens only after the signal.
 */
export class ConnectionTracker {
  readonly server: HttpServer
  /** Every TCP connection, including upgraded and TLS-handshaking ones, with the time it
   * was accepted. */
  readonly #sockets = new Map<Socket, number>()
  /** The sockets HTTP runs on: the TCP sockets for http, the TLS sockets for https. */
  readonly #httpSockets: Set<Socket> | undefined
  /** For https: the TLS socket running on each TCP socket, once its handshake is done. */
  readonly #tlsOf = new WeakMap<Socket, Socket>()
  readonly #watched = new WeakSet<ServerResponse>()
  readonly #destroyed = new WeakSet<Socket>()
  #draining = false
  #closing = false
  #listenerClosed = false
  #onIdle: (() => void) | undefined
  /** Connections that ended on their own after the drain began. */
  closedCount = 0
  /** Connections destroyed because they outlived the deadline or the shutdown was forced. */
  forcedCount = 0

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
    server.on('connection', (socket: Socket) => {
      sockets.set(socket, performance.now())
      socket.once('close', onSocketClose)
    })
    if (httpSockets !== undefined) {
      server.on('secureConnection', (socket: Socket) => {
        // `_parent` (the TCP socket under a server-side TLS socket) is not public API but
        // has been set by node:tls since v0.x.
        const parent = (socket as unknown as { _parent?: Socket })._parent
        if (parent !== undefined) this.#tlsOf.set(parent, socket)
        httpSockets.add(socket)
        socket.once('close', onHttpSocketClose)
      })
    }

    // Intercept 'request' before any listener sees it, so probe paths never reach the app
    // and responses can be marked `Connection: close` before the app writes headers.
    const emit = server.emit
    server.emit = function (
      this: HttpServer,
      event: string | symbol,
      req?: unknown,
      res?: unknown,
    ): boolean {
      if (event === 'request') {
        const kind: ProbeKind | undefined = probes?.match((req as IncomingMessage).url)
        if (tracker.#draining) tracker.#closeAfter(res as ServerResponse)
        if (kind !== undefined) {
          probes?.handle(kind, req as IncomingMessage, res as ServerResponse)
          return true
        }
      }
      // biome-ignore lint/complexity/noArguments: forwards every argument without copying them on each event
      return Reflect.apply(emit, this, arguments) as boolean
    } as typeof server.emit
  }

  get size(): number {
    return this.#sockets.size
  }

  /**
   * Lame duck: from now on every response carries `Connection: close` and its socket closes
   * once it is sent, including responses already in progress whose headers are not out yet.
   * A response whose headers already went out with keep-alive gets its socket closed after
   * it finishes.
   */
  drain(): void {
    if (this.#draining) return
    this.#draining = true
    for (const socket of this.#httpSockets ?? this.#sockets.keys()) {
      const res = (socket as HttpSocket)._httpMessage
      if (res != null && !res.writableFinished) this.#closeAfter(res)
    }
  }

  /**
   * Closes the listener and every connection that has no request in progress: idle
   * keep-alive connections and connections that never sent a request. Connections with a
   * request in progress close after its response. Resolves when no connection is left.
   */
  close(): Promise<void> {
    this.drain()
    this.#closing = true
    const done = new Promise<void>((resolve) => {
      this.#onIdle = resolve
    })
    if (this.server.listening) {
      this.server.close(() => {
        this.#listenerClosed = true
        this.#checkIdle()
      })
    } else {
      this.#listenerClosed = true
    }
    // Idle keep-alive connections: node's parser knows which have no request in progress.
    this.server.closeIdleConnections()
    this.#closeUnused()
    this.#checkIdle()
    return done
  }

  /**
   * Closes connections that never sent a byte; node's idle list (Node 20 and 24) leaves them
   * open. A connection accepted less than NEW_CONNECTION_GRACE_MS ago may have its request
   * still in flight (or in the kernel's buffer, unread), so it gets until that age: like Go's
   * Server.Shutdown, which counts a new connection as idle only after 5 s.
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
  inFlight(except?: ServerResponse): number {
    let count = 0
    for (const socket of this.#httpSockets ?? this.#sockets.keys()) {
      const res = (socket as HttpSocket)._httpMessage
      if (res != null && res !== except && !res.writableFinished) count++
    }
    return count
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

  #httpSocketOf(socket: Socket): HttpSocket | undefined {
    if (this.#httpSockets === undefined) return socket as HttpSocket
    return this.#tlsOf.get(socket) as HttpSocket | undefined
  }

  #checkIdle(): void {
    if (this.#closing && this.#listenerClosed && this.#sockets.size === 0) {
      const resolve = this.#onIdle
      this.#onIdle = undefined
      resolve?.()
    }
  }

  #closeAfter(res: ServerResponse): void {
    if (this.#watched.has(res)) return
    this.#watched.add(res)
    if (!res.headersSent) {
      res.shouldKeepAlive = false
      if (res.hasHeader('connection')) res.setHeader('connection', 'close')
    }
    const socket = res.socket as HttpSocket | null
    res.once('finish', () => {
      if (socket === null || socket.destroyed) return
      // With pipelining, node has already assigned the next response to the socket.
      const next = socket._httpMessage
      if (next != null && next !== res && !next.writableFinished) this.#closeAfter(next)
      else socket.end()
    })
  }
}
