// The HTTP/1.1 rule set during a shutdown, one copy for every server that speaks HTTP/1.1:
// node:http, node:https, and node:http2 with allowHTTP1.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Server as NetServer, Socket } from 'node:net'
import { NEW_CONNECTION_GRACE_MS, nextTurn } from './ledger.js'

/** Node's http server keeps the response being written on `socket._httpMessage`; it has
 * done so since v0.x and the http client and server rely on it internally. */
export interface HttpSocket extends Socket {
  _httpMessage?: ServerResponse | null
  /** The connection's HTTP parser; `incoming` is the request it parsed last. Internal since
   * v0.x (node's own server code reads both). */
  parser?: { incoming?: IncomingMessage | null } | null
}

/** How long a connection whose response said `Connection: close` before its request's body
 * was read keeps reading (and discarding) after the response, its write side closed: a
 * socket closed with unread data is reset, and the reset reaches the client before the
 * answer it has not read yet (RFC 9112 §9.6). Go waits 500 ms (closeWriteAndWait), nginx
 * up to 30 s (lingering_close); the connection closes as soon as the client closes its
 * side, which it does once it has read the answer. */
export const LINGER_MS = 2_000

/** The longest keep-alive timeout an idle connection is held open for in the close phase:
 * node's default keepAliveTimeout, the `Keep-Alive: timeout=5` clients are told by default,
 * which clients that honour it act on first. A server whose keep-alive timeout is longer
 * (65 s behind a load balancer) tells its clients to keep connections longer than any hold:
 * waiting would not make them leave, so its idle connections get NEW_CONNECTION_GRACE_MS,
 * time for a request already sent to arrive. */
export const IDLE_HOLD_MAX_MS = 5_000

/** Node sets `_last` on a response once its headers say the connection closes after it
 * (internal since v0.x; node's own resOnFinish reads it). */
interface LastFlag {
  _last?: boolean
}

/** Node's list of an http server's connections (one HTTP parser each), created when the
 * server listens; `closeAllConnections()` walks it. Internal since v18.2, present on every
 * supported version, on http, https and allowHTTP1 http2 servers. */
interface ConnectionsList {
  all(): { socket?: Socket | null }[]
  idle(): { socket?: Socket | null }[]
}

function ownSymbol(server: object, description: string): unknown {
  for (const symbol of Object.getOwnPropertySymbols(server)) {
    if (symbol.description === description)
      return (server as unknown as Record<symbol, unknown>)[symbol]
  }
  return undefined
}

export function connectionsList(server: object): ConnectionsList | undefined {
  const list = ownSymbol(server, 'http.server.connections') as ConnectionsList | undefined
  return typeof list?.all === 'function' && typeof list.idle === 'function' ? list : undefined
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

/** Where the HTTP/1.1 connections of a server are, for the rule set. */
export interface Http1Sockets {
  /** The sockets HTTP/1.1 runs on now (TCP for http, TLS for https and allowHTTP1). */
  http1Sockets(): Iterable<Socket>
}

/**
 * The rules HTTP/1.1 connections follow while draining:
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
export class Http1Rules {
  readonly #server: NetServer
  readonly #where: Http1Sockets
  /** Responses whose headers decide `Connection: close` when they are written. */
  readonly #marked = new WeakSet<ServerResponse>()
  /** Connections that have been answered with `Connection: close`. */
  readonly #closeSent = new WeakSet<Socket>()
  /** Connections closing the lingering way (lingerAfter): not idle. */
  readonly #lingering = new WeakSet<Socket>()
  /** Per connection, the grace timer it got when it went idle in the close phase. */
  readonly #graces = new Map<Socket, NodeJS.Timeout>()
  /** node's own check of headersTimeout and requestTimeout (see keepTimeouts). */
  #checkTimeouts: (() => void) | undefined
  #timeoutCheck: NodeJS.Timeout | undefined
  #draining = false
  #closing = false

  constructor(server: NetServer, where: Http1Sockets) {
    this.#server = server
    this.#where = where
    // node creates its timeout check when the server starts listening.
    if (server.listening) this.#findTimeoutCheck()
    else server.on('listening', () => this.#findTimeoutCheck())
  }

  get draining(): boolean {
    return this.#draining
  }

  /** Lame duck: follow every response in progress (see the class comment). */
  drain(): void {
    if (this.#draining) return
    this.#draining = true
    for (const socket of this.#where.http1Sockets()) {
      const res = (socket as HttpSocket)._httpMessage
      if (res != null && !res.writableFinished) this.#follow(res)
    }
  }

  /**
   * A request about to reach the application ('request', 'checkContinue',
   * 'checkExpectation'). True when it must not: during the drain, it came behind a response
   * that said `Connection: close` (RFC 9112 §9.6: not processed; the client retries it;
   * node closes the connection after that response).
   */
  swallow(req: IncomingMessage, res: ServerResponse): boolean {
    if (this.#draining) {
      if (this.#closeSent.has(req.socket)) return true
      this.#mark(res)
    } else if (res.socket === null) {
      // A pipelined request: its response waits for the one before it, out of reach once
      // the drain starts, so it is marked now (rare: Node's Agent, browsers and most proxies
      // do not pipeline).
      this.#mark(res)
    }
    return false
  }

  /** The close phase: idle connections close once their clients have had the chance to
   * close them first (see holdIdle); headersTimeout and requestTimeout keep applying. */
  close(deadlineMs: number): void {
    this.drain()
    this.#closing = true
    this.#keepTimeouts()
    this.#holdIdle(deadlineMs)
  }

  /** Stops what close() started, and node's timeout check, as node's own close does. */
  stop(): void {
    for (const timer of this.#graces.values()) clearTimeout(timer)
    this.#graces.clear()
    clearInterval(this.#timeoutCheck)
    clearInterval(this.#nodeTimeoutCheck())
  }

  /** True for a connection that never carried a request. */
  unused(socket: Socket): boolean {
    const http = socket as HttpSocket
    return http.bytesRead === 0 && http._httpMessage == null
  }

  /** Connections with a response in progress, not counting `except`'s own. Walks every
   * connection: for a metrics scrape, never on the request path. */
  inFlight(except?: ServerResponse | ReadonlySet<ServerResponse>): number {
    const skip = except instanceof Set ? except : undefined
    let count = 0
    for (const socket of this.#where.http1Sockets()) {
      const res = (socket as HttpSocket)._httpMessage
      if (res != null && res !== except && !res.writableFinished && skip?.has(res) !== true) count++
    }
    return count
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
    const rules = this
    const writeHead = res.writeHead
    res.writeHead = function (this: ServerResponse) {
      if (!rules.#draining) {
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
      if ((this as ServerResponse & LastFlag)._last === true) {
        rules.#closeSent.add(socket)
        lingerAfter(this.req, socket, rules.#lingering)
      } else rules.#watchKeptAlive(this)
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
      else if (this.#closing) this.#closeWhenIdleFor(socket, NEW_CONNECTION_GRACE_MS)
    })
  }

  /**
   * Closes `socket` once it has been idle for `ms`, unless a request has started on it by
   * then (it is answered with `Connection: close`) or its client closes it first. Each
   * connection has its own timer. When the timer fires, the event loop turns once more
   * first, so that a request already in the socket's buffer (after a busy loop) is read
   * and served rather than reset.
   */
  #closeWhenIdleFor(socket: HttpSocket, ms: number): void {
    if (this.#graces.has(socket) || socket.destroyed) return
    const bytesRead = socket.bytesRead
    const timer = setTimeout(async () => {
      await nextTurn()
      this.#graces.delete(socket)
      if (socket.bytesRead !== bytesRead || socket._httpMessage != null) return
      if (this.#lingering.has(socket)) return
      socket.destroy()
    }, ms)
    timer.unref()
    this.#graces.set(socket, timer)
    socket.once('close', () => {
      clearTimeout(timer)
      this.#graces.delete(socket)
    })
  }

  /**
   * node checks headersTimeout and requestTimeout (a client that trickles its headers or
   * body, 408) from a timer that node:http's close() stops. lameduck closes the listener
   * with net's close, which leaves it running; an application that called close() itself
   * stopped it, so the same check is restarted for the close phase, as Go keeps
   * ReadHeaderTimeout during Shutdown. The check is node's own (the timer's `_onTimeout`,
   * internal since v0.x), found when the server starts listening.
   */
  #keepTimeouts(): void {
    const timer = this.#nodeTimeoutCheck()
    if (this.#checkTimeouts === undefined || (timer !== undefined && timer._destroyed !== true))
      return
    const every =
      (this.#server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval ??
      30_000
    this.#timeoutCheck = setInterval(this.#checkTimeouts, every)
    this.#timeoutCheck.unref()
  }

  #findTimeoutCheck(): void {
    const check = this.#nodeTimeoutCheck()?._onTimeout
    if (typeof check === 'function') this.#checkTimeouts = check as () => void
  }

  #nodeTimeoutCheck():
    | (NodeJS.Timeout & { _onTimeout?: unknown; _destroyed?: boolean })
    | undefined {
    return ownSymbol(this.#server, 'http.server.connectionsCheckingInterval') as
      | (NodeJS.Timeout & { _onTimeout?: unknown; _destroyed?: boolean })
      | undefined
  }

  /**
   * The connections idle when the close phase starts are not closed at that instant, where
   * a client that picks one at the same moment would see its request reset (the keep-alive
   * close race, nodejs/node#60617): each stays open, a request on it answered with
   * `Connection: close`, until it is used, its client closes it, or node's own keep-alive
   * timeout ends it (the `Keep-Alive: timeout=` a client was told, which undici and node's
   * Agent honour by closing first) when that is at most IDLE_HOLD_MAX_MS, else for
   * NEW_CONNECTION_GRACE_MS; never more than half the close phase's `deadlineMs`: an idle
   * connection is closed, never forced.
   * Connections that never sent a byte are the ledger's (closeUnused).
   */
  #holdIdle(deadlineMs: number): void {
    const list = connectionsList(this.#server)
    if (list === undefined) return
    const keepAlive = (this.#server as { keepAliveTimeout?: number }).keepAliveTimeout ?? 0
    const hold = Math.min(
      keepAlive > 0 && keepAlive <= IDLE_HOLD_MAX_MS ? keepAlive : NEW_CONNECTION_GRACE_MS,
      Math.floor(deadlineMs / 2),
    )
    for (const parser of list.idle()) {
      const socket = parser.socket as HttpSocket | null | undefined
      if (socket == null || socket.bytesRead === 0) continue
      const res = socket._httpMessage
      if (res != null && !res.writableFinished) continue
      if (this.#lingering.has(socket)) continue
      this.#closeWhenIdleFor(socket, hold)
    }
  }
}

/**
 * node ends a connection after a response that said close with `socket.destroySoon()`,
 * which destroys it once the response is written. If the request's body has not all been
 * read by then, the connection closes the lingering way instead: the write side is closed
 * (the client sees the end of the answer), the body is read and discarded, and the socket
 * closes when the client closes its side, or after LINGER_MS.
 */
export function lingerAfter(
  req: IncomingMessage,
  socket: Socket,
  lingering: WeakSet<Socket>,
): void {
  const closing = socket as Socket & { destroySoon?: () => void }
  const destroySoon = closing.destroySoon
  if (typeof destroySoon !== 'function' || Object.hasOwn(closing, 'destroySoon')) return
  closing.destroySoon = function (this: Socket) {
    closing.destroySoon = destroySoon
    if (req.complete || this.destroyed || !this.readable) {
      destroySoon.call(this)
      return
    }
    // node dumps an unread body when the response finishes; one the app started to read
    // and paused is read from here on.
    req.resume()
    lingering.add(this)
    this.end()
    const timer = setTimeout(() => this.destroy(), LINGER_MS)
    timer.unref()
    this.once('close', () => clearTimeout(timer))
    // With allowHalfOpen (node's http server sets it) the socket closes once both sides
    // have ended.
    this.once('end', () => this.destroy())
  }
}
