import { describeValue, LameduckError } from '../errors.js'
import { isManaged } from '../lameduck.js'
import type { Lameduck } from '../lifecycle.js'

/** A WebSocket connection as the `ws` package shapes it (structurally: no import of `ws`). */
export interface WebSocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number
  close(code?: number, reason?: string): void
  once(event: 'close', listener: () => void): unknown
}

/** A `ws` WebSocketServer (structurally). */
export interface WebSocketServerLike {
  on(event: 'connection', listener: (socket: WebSocketLike) => void): unknown
  /** The clients `ws` tracks (its `clientTracking` option, on by default). */
  readonly clients?: Set<WebSocketLike>
  readonly options?: { port?: number | null; server?: unknown; noServer?: boolean }
}

export interface WebSocketsOptions {
  /** The close code every client gets at the lame duck. 1001 is "going away" (RFC 6455
   * §7.4.1); a private 4000-4999 code works too.
   * @default 1001 */
  code?: number
  /** The close reason (at most 123 bytes of UTF-8).
   * @default 'server going away' */
  reason?: string
}

/** RFC 6455 §7.4.1: the endpoint is going away, as a server going down. */
export const GOING_AWAY = 1001
const DEFAULT_REASON = 'server going away'
/** RFC 6455 §5.5: a control frame's payload is at most 125 bytes, 2 of them the code. */
const MAX_REASON_BYTES = 123
const OPEN = 1

/**
 * Closes a `ws` WebSocketServer's connections when the lame duck starts: every open client
 * gets a close frame with code 1001 "going away" (its cue to reconnect, through the data
 * path that is being updated), and a client that connects during the lame duck is accepted
 * and gets the same close frame once open.
 *
 * The WebSocketServer must run on a server passed to `lameduck()` (its `server` option, or
 * `noServer` with upgrades from such a server): that server's tracker follows the upgraded
 * connections, so the close phase waits for the close handshakes and destroys what remains
 * at `shutdownTimeout`. When every client closed cleanly the process exits 0.
 */
export function webSockets(
  ld: Lameduck,
  wss: WebSocketServerLike,
  options: WebSocketsOptions = {},
): void {
  if (typeof wss !== 'object' || wss === null || typeof wss.on !== 'function') {
    throw new LameduckError(
      'LAMEDUCK_ERR_INVALID_OPTION',
      `Expected a WebSocketServer from the ws package, got ${describeValue(wss)}`,
    )
  }
  if (wss.options?.port != null) {
    throw new LameduckError(
      'LAMEDUCK_ERR_INVALID_OPTION',
      `Expected a WebSocketServer on a server passed to lameduck() (the \`server\` or \`noServer\` option), got one listening on its own port ${wss.options.port}, whose connections lameduck cannot wait for`,
    )
  }
  if (wss.options?.server != null && !isManaged(wss.options.server)) {
    throw new LameduckError(
      'LAMEDUCK_ERR_INVALID_OPTION',
      'Expected the WebSocketServer’s `server` to be passed to lameduck() first, got a server lameduck does not manage',
    )
  }
  const code = options.code ?? GOING_AWAY
  if (
    !Number.isInteger(code) ||
    !(code === 1000 || code === 1001 || (code >= 4000 && code <= 4999))
  ) {
    throw new LameduckError(
      'LAMEDUCK_ERR_INVALID_OPTION',
      `Expected the \`code\` option to be 1000, 1001 or an integer from 4000 to 4999, got ${describeValue(code)}`,
    )
  }
  const reason = options.reason ?? DEFAULT_REASON
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > MAX_REASON_BYTES) {
    throw new LameduckError(
      'LAMEDUCK_ERR_INVALID_OPTION',
      `Expected the \`reason\` option to be a string of at most ${MAX_REASON_BYTES} bytes, got ${describeValue(reason)}`,
    )
  }

  // Without ws's client tracking, follow the clients here.
  const own = wss.clients === undefined ? new Set<WebSocketLike>() : undefined
  let going = false
  const goAway = (socket: WebSocketLike) => {
    if (socket.readyState === OPEN) socket.close(code, reason)
  }
  wss.on('connection', (socket) => {
    if (going) {
      // After the listeners the application registered for this connection have run.
      process.nextTick(goAway, socket)
    } else if (own !== undefined) {
      own.add(socket)
      socket.once('close', () => own.delete(socket))
    }
  })
  const onState = (state: string) => {
    if (going || (state !== 'draining' && state !== 'stopping')) return
    going = true
    for (const socket of wss.clients ?? own ?? []) goAway(socket)
  }
  ld.on('state', onState)
}
