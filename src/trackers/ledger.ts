// The socket bookkeeping every protocol's tracker shares: which TCP connections a server
// has, when each was accepted, how they ended, and the listener's own close.
import type { Server as NetServer, Socket } from 'node:net'

/** How long a connection may take to send a request once the listener is closed: its first
 * request after being accepted, or its next one after a keep-alive response that ended in
 * the close phase. A client sends within a round trip (plus a TLS handshake); 1 s covers
 * that with room to spare, like Go's Server.Shutdown, which gives new connections 5 s. */
export const NEW_CONNECTION_GRACE_MS = 1_000

/** Before the listener closes, the event loop turns until a turn accepts no connection
 * (node accepts one connection per turn), for at most this long: connections that wait in
 * the accept queue are reset when the listener closes. */
export const SETTLE_MAX_MS = 250

/** Resolves on the next turn of the event loop, after its poll phase has read what the
 * kernel holds for every socket. */
export function nextTurn(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve))
}

/** Turns the event loop until a turn accepts no new connection (`accepted` counts them),
 * for at most SETTLE_MAX_MS, then once more so that what they sent is read. */
export async function settleAccepts(accepted: () => number): Promise<void> {
  const until = performance.now() + SETTLE_MAX_MS
  let seen: number
  do {
    seen = accepted()
    await nextTurn()
  } while (accepted() !== seen && performance.now() < until)
  await nextTurn()
}

/** The listener's own close, without what a subclass adds to it (node:http's close also
 * closes idle connections and stops its header/request timeout checks; node:http2's, from
 * Node 24 on, closes every session with a one-step GOAWAY). */
export type ListenerClose = (this: NetServer, callback?: () => void) => unknown

/**
 * One server's TCP connections, with the time each was accepted (-Infinity for connections
 * adopted from before lameduck() was called), how many ended on their own or were forced,
 * and the listener's close. Per connection: one Map entry and one shared 'close' listener.
 */
export class SocketLedger {
  readonly #server: NetServer
  readonly #sockets = new Map<Socket, number>()
  readonly #destroyed = new WeakSet<Socket>()
  readonly #closeListener: ListenerClose
  #accepted = 0
  #counting = false
  #closing = false
  #listenerClosed = false
  #onEmpty: (() => void) | undefined
  readonly #onSocketClose: (this: Socket) => void
  /** Connections that ended on their own after the drain began. */
  closedCount = 0
  /** Connections destroyed because they outlived the deadline or the shutdown was forced. */
  forcedCount = 0
  /** When the application closed the listener itself (performance.now()), if it did. */
  closedByAppAt: number | undefined
  /** Called once when the application closes the listener itself. */
  onClosedByApp: (() => void) | undefined
  /** Runs instead of the server's own close when the application calls `server.close()`
   * (`close` is that own close), if set: see Http1Tracker. */
  appClose: ((close: ListenerClose, server: NetServer, args: unknown[]) => unknown) | undefined

  constructor(server: NetServer, closeListener: ListenerClose) {
    this.#server = server
    this.#closeListener = closeListener
    const ledger = this
    this.#onSocketClose = function (this: Socket) {
      ledger.#sockets.delete(this)
      if (ledger.#counting && !ledger.#destroyed.has(this)) ledger.closedCount++
      ledger.#checkEmpty()
    }
    server.on('connection', (socket: Socket) => {
      this.#accepted++
      this.add(socket, performance.now())
    })
    // An application that closes the server itself (its own SIGTERM handler, fastify.close())
    // refuses new connections while the Service may still route to the pod: record it.
    const close = server.close
    server.close = function (this: NetServer) {
      if (!ledger.#closing && ledger.closedByAppAt === undefined && this.listening) {
        ledger.closedByAppAt = performance.now()
        ledger.onClosedByApp?.()
      }
      // biome-ignore lint/complexity/noArguments: passes the callback on as given
      const args = Array.prototype.slice.call(arguments) as unknown[]
      const appClose = ledger.appClose
      return appClose === undefined ? Reflect.apply(close, this, args) : appClose(close, this, args)
    } as typeof server.close
  }

  /** Follows `socket` from now on (accepted at `acceptedAt`). */
  add(socket: Socket, acceptedAt: number): void {
    if (this.#sockets.has(socket)) return
    this.#sockets.set(socket, acceptedAt)
    socket.once('close', this.#onSocketClose)
  }

  has(socket: Socket): boolean {
    return this.#sockets.has(socket)
  }

  /** When `socket` was accepted; -Infinity when it is unknown or older than lameduck(). */
  acceptedAt(socket: Socket): number {
    return this.#sockets.get(socket) ?? Number.NEGATIVE_INFINITY
  }

  get size(): number {
    return this.#sockets.size
  }

  get closing(): boolean {
    return this.#closing
  }

  sockets(): IterableIterator<Socket> {
    return this.#sockets.keys()
  }

  /** From now on, connections that end on their own are counted in closedCount. */
  startCounting(): void {
    this.#counting = true
  }

  /** See settleAccepts. */
  settle(): Promise<void> {
    return settleAccepts(() => this.#accepted)
  }

  /**
   * Closes the listener with the base close (whatever the server's own close adds is the
   * tracker's business). A listener that never listened, or whose listen() is still pending
   * (a DNS lookup, a cluster worker asking its primary), is closed as soon as it listens: no
   * connection can be accepted before 'listening'. A listener the application already
   * closed stays closed. Resolves when the listener is closed and no connection is left.
   */
  closeListener(): Promise<void> {
    this.#closing = true
    this.#counting = true
    const empty = new Promise<void>((resolve) => {
      this.#onEmpty = resolve
    })
    const server = this.#server
    if (server.listening) {
      this.#closeListener.call(server, () => {
        this.#listenerClosed = true
        this.#checkEmpty()
      })
    } else {
      this.#listenerClosed = true
      server.prependOnceListener('listening', () => this.#closeListener.call(server))
    }
    this.#checkEmpty()
    return empty
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

  /**
   * Closes the connections `unused` says never carried a request; one accepted less than
   * NEW_CONNECTION_GRACE_MS ago may have its first request still in flight, so it is looked
   * at again when it reaches that age.
   */
  closeUnused(unused: (socket: Socket) => boolean): void {
    const now = performance.now()
    let nextCheck = Number.POSITIVE_INFINITY
    for (const [socket, accepted] of this.#sockets) {
      if (!unused(socket)) continue
      const age = now - accepted
      if (age >= NEW_CONNECTION_GRACE_MS) socket.destroy()
      else nextCheck = Math.min(nextCheck, NEW_CONNECTION_GRACE_MS - age)
    }
    if (nextCheck !== Number.POSITIVE_INFINITY) {
      setTimeout(() => this.closeUnused(unused), Math.ceil(nextCheck)).unref()
    }
  }

  #checkEmpty(): void {
    if (this.#closing && this.#listenerClosed && this.#sockets.size === 0) {
      const resolve = this.#onEmpty
      this.#onEmpty = undefined
      resolve?.()
    }
  }
}
