// The tracker for node:http and node:https servers.
import { type Server as HttpServer, type IncomingMessage, ServerResponse } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import { Server as NetServer, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { Server as TlsServer } from 'node:tls'
import type { Tracker } from '../lifecycle.js'
import type { ProbeKind, Probes } from '../probes.js'
import { connectionsList, Http1Rules, type HttpSocket } from './http1-rules.js'
import { SocketLedger } from './ledger.js'

/**
 * Tracks one node:http or node:https server's connections and moves its clients off them
 * during the shutdown, by the HTTP/1.1 rule set (Http1Rules).
 *
 * Per connection it costs one Map entry and one shared 'close' listener. Per request, in
 * steady state: with probes served on this server, a wrapper around `server.emit` that
 * pre-checks the probe path; with probes elsewhere, nothing (the wrapper is installed when
 * the drain starts). Everything else happens only after the signal.
 */
export class Http1Tracker implements Tracker {
  readonly server: HttpServer
  readonly #ledger: SocketLedger
  readonly #rules: Http1Rules
  /** The sockets HTTP runs on for https: the TLS sockets. Undefined for http. */
  readonly #httpSockets: Set<Socket> | undefined
  /** For https: the TLS socket running on each TCP socket, once its handshake is done. */
  readonly #tlsOf = new WeakMap<Socket, Socket>()
  readonly #probes: Probes | undefined
  #intercepting = false

  constructor(server: HttpServer, probes: Probes | undefined) {
    this.server = server
    const tls = server instanceof TlsServer
    // The listener is closed with net's close: node:http's own close also stops the timer
    // that enforces headersTimeout and requestTimeout, which must keep applying.
    this.#ledger = new SocketLedger(server, NetServer.prototype.close)
    // node's own close() (an application's SIGTERM handler may call it) also closes every
    // idle keep-alive connection at once, where a client that picks one at that instant
    // sees its request fail, and stops the headersTimeout check. Once the drain has begun,
    // the application's close() closes the listener alone: its connections are then closed
    // exactly as when lameduck closes the listener, in the close phase.
    this.#ledger.appClose = (close, target, args) =>
      Reflect.apply(this.#rules.draining ? NetServer.prototype.close : close, target, args)
    const httpSockets = tls ? new Set<Socket>() : undefined
    this.#httpSockets = httpSockets
    this.#rules = new Http1Rules(server, {
      http1Sockets: () => httpSockets ?? this.#ledger.sockets(),
    })
    function onHttpSocketClose(this: Socket) {
      httpSockets?.delete(this)
    }
    const addHttpSocket = (tlsSocket: Socket) => {
      this.#tlsOf.set(tcpOf(tlsSocket), tlsSocket)
      httpSockets?.add(tlsSocket)
      tlsSocket.once('close', onHttpSocketClose)
    }
    if (httpSockets !== undefined) server.on('secureConnection', addHttpSocket)

    // Connections accepted before lameduck() was called: adopt them from node's own list.
    // Upgraded connections have left that list and stay unknown (documented).
    for (const parser of connectionsList(server)?.all() ?? []) {
      const socket = parser.socket
      if (socket == null || socket.destroyed) continue
      const tcp = tls ? tcpOf(socket) : socket
      if (this.#ledger.has(tcp)) continue
      this.#ledger.add(tcp, Number.NEGATIVE_INFINITY)
      if (tls) addHttpSocket(socket)
    }

    this.#probes = probes
    // With probes on this server, requests are intercepted from the start; otherwise only
    // from the drain on, so that the request path costs nothing until then.
    if (probes !== undefined) this.#intercept()
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

  /**
   * Lame duck: from now on every response whose headers are not out yet carries
   * `Connection: close`. A connection whose current response already went out with
   * keep-alive stays open; its next request gets the close.
   */
  drain(): void {
    if (this.#rules.draining) return
    this.#ledger.startCounting()
    this.#intercept()
    this.#rules.drain()
  }

  /**
   * Resolves once the event loop has turned without accepting a new connection, and then
   * once more, so that what waits in the kernel is accepted and read before close():
   * after a blocked event loop, connections wait in the accept queue (reset when the
   * listener closes) and requests wait unread in socket buffers (their connections would
   * look idle). At most SETTLE_MAX_MS.
   */
  settle(): Promise<void> {
    return this.#ledger.settle()
  }

  /**
   * Closes the listener and every connection that has no request in progress: idle
   * keep-alive connections and connections that never sent a request. Connections with a
   * request in progress close after its response. Resolves when no connection is left.
   * Call settle() first.
   */
  close(deadlineMs: number): Promise<void> {
    this.drain()
    const empty = this.#ledger.closeListener()
    this.#rules.close(deadlineMs)
    this.#ledger.closeUnused((socket) => {
      const http = this.#httpSocketOf(socket)
      return http === undefined || this.#rules.unused(http)
    })
    return empty.finally(() => this.#rules.stop())
  }

  destroyAll(): number {
    this.#rules.stop()
    return this.#ledger.destroyAll()
  }

  inFlight(except?: ServerResponse | ReadonlySet<ServerResponse>): number {
    return this.#rules.inFlight(except)
  }

  /**
   * Intercepts requests before any listener sees them, so that probe paths never reach the
   * application and responses are marked before the application writes their headers.
   *
   * The wrapper is on the path of every request, and V8 inlines it into node's own
   * parserOnIncoming, whose optimised code has a budget for what it inlines (about 920
   * bytes of bytecode on Node 20): a large wrapper there leaves no room for node's
   * ServerResponse constructor, which then runs out of line with generic property stores
   * and costs ~1 300 instructions more per request (bench/RESULTS.md §10). So the wrapper
   * only tells 'request' from the rest: its checks are one small function, every other
   * event goes to `other`, forwarded with Reflect.apply (no arguments object is made), and
   * the 'request' path passes its two arguments on directly.
   */
  #intercept(): void {
    if (this.#intercepting) return
    this.#intercepting = true
    const rules = this.#rules
    const probes = this.#probes
    const server = this.server
    const emit = server.emit as (
      this: HttpServer,
      event: string | symbol,
      ...args: unknown[]
    ) => boolean
    /** True when lameduck answered the request itself (a probe) or must not pass it on. */
    const taken =
      probes === undefined
        ? (req: IncomingMessage, res: ServerResponse): boolean => rules.swallow(req, res)
        : (req: IncomingMessage, res: ServerResponse): boolean => {
            if (rules.swallow(req, res)) return true
            const kind = probes.match(req.url)
            if (kind === undefined) return false
            probes.handle(kind, req, res)
            return true
          }
    /** Every event but 'request'. */
    const other = function (
      this: HttpServer,
      event: string | symbol,
      req?: unknown,
      res?: unknown,
    ): boolean {
      if (event === 'checkContinue' || event === 'checkExpectation') {
        // Requests with `Expect:` go to these listeners instead of 'request', when there are any.
        if (rules.draining && rules.swallow(req as IncomingMessage, res as ServerResponse))
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
    }
    server.emit = function (
      this: HttpServer,
      event: string | symbol,
      req?: unknown,
      res?: unknown,
    ): boolean {
      // biome-ignore lint/complexity/noArguments: forwards every argument of other events as they came
      if (event !== 'request') return Reflect.apply(other, this, arguments) as boolean
      if (taken(req as IncomingMessage, res as ServerResponse)) return true
      return emit.call(this, event, req, res)
    } as typeof server.emit
  }

  #httpSocketOf(socket: Socket): HttpSocket | undefined {
    if (this.#httpSockets === undefined) return socket as HttpSocket
    return this.#tlsOf.get(socket) as HttpSocket | undefined
  }
}

/**
 * True for a node:https server. node:https is loaded only for a TLS server: loading it
 * creates its global Agent, an EventEmitter of a kind a plain node:http application never
 * creates, which costs every request of such an application (see http2Module in
 * http2.ts). An application with an https server has loaded it already.
 */
export function isHttpsServer(server: unknown): server is HttpsServer {
  return (
    server instanceof TlsServer && server instanceof process.getBuiltinModule('node:https').Server
  )
}

/** The TCP socket under a server-side TLS socket: `_parent` is not public API but has been
 * set by node:tls since v0.x. */
export function tcpOf(tlsSocket: Socket): Socket {
  return (tlsSocket as unknown as { _parent?: Socket })._parent ?? tlsSocket
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
