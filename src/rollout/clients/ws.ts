// WebSocket clients that stay connected and reconnect when closed, as browsers and services
// on a live feed do (the `ws` package, RFC 6455). Each pool holds up to --connections
// WebSockets to --ws-path; each request of this kind is one text message, answered by one
// message from the server (an echo, or any reply: answers are matched to messages in order).
//
// Counting, per the lab's rules:
// - a message is ok when its answer arrives before its deadline. A message still unanswered
//   when its WebSocket closes is sent again on the reconnected one, as a client that
//   resumes a session does; it fails only when it times out.
// - a WebSocket closed by the server with a close frame, code 1000 (normal) or 1001 (going
//   away), is not a failure: the client reconnects, through the Service, as it should.
// - a WebSocket cut without a close frame (code 1006), closed with any other code, or one
//   that cannot open (refused, reset, an HTTP answer instead of 101) is one failure, counted
//   as a request of its own (method WS). The client reconnects after a backoff.
import net from 'node:net'
import WebSocket from 'ws'
import {
  type Attempt,
  type ClientContext,
  type ClientKind,
  type LoadClient,
  PREFLIGHT_TIMEOUT_MS,
  type PreflightTarget,
} from './types.js'

/** Close codes a server sends when it ends a WebSocket on purpose (RFC 6455 §7.4.1). */
const CLEAN_CLOSE_CODES = new Set([1000, 1001])
/** Reconnect backoff: doubles from the first value after each failure in a row, capped. */
const RECONNECT_FIRST_MS = 50
const RECONNECT_MAX_MS = 1_000
/** A WebSocket that stays open this long resets the backoff. */
const STABLE_MS = 1_000

interface Message {
  text: string
  attempt: Attempt
  /** Answered, or abandoned at its deadline. */
  done: boolean
}

/** One WebSocket slot of a pool: a WebSocket, replaced by a new one whenever it closes. */
class Connection {
  socket: WebSocket | undefined
  open = false
  /** Messages not yet sent on the current WebSocket, in order. */
  readonly waiting: Message[] = []
  /** Messages sent on the current WebSocket and not answered, by text. */
  readonly sent = new Map<string, Message>()
  messagesOnSocket = 0
  localPort: number | undefined
  /** Closes in a row that were failures or came soon after opening. */
  closesInRow = 0
  reconnectTimer: NodeJS.Timeout | undefined

  get busy(): number {
    return this.waiting.length + this.sent.size
  }
}

function wsClient(context: ClientContext): LoadClient {
  const connections: Connection[] = []
  const url = `ws://${context.host}:${context.port}${context.wsPath}`
  let closed = false

  const connect = (connection: Connection): void => {
    connection.reconnectTimer = undefined
    if (closed) return
    connection.open = false
    connection.messagesOnSocket = 0
    connection.localPort = undefined
    const socket = new WebSocket(url, {
      perMessageDeflate: false,
      // The connection's local port names the pod the Service chose, also for a WebSocket
      // that fails to open.
      createConnection: () => {
        const tcp = net.connect({ host: context.host, port: context.port, noDelay: true })
        tcp.once('connect', () => {
          connection.localPort = tcp.localPort
        })
        return tcp
      },
    })
    connection.socket = socket
    let openedAt = 0
    let failure: string | undefined
    let errorCode: string | undefined
    let status: number | undefined
    socket.on('unexpected-response', (_request, response) => {
      status = response.statusCode
      failure = `the server answered HTTP ${response.statusCode} instead of opening the WebSocket`
      response.resume()
      socket.terminate()
    })
    socket.on('error', (error: NodeJS.ErrnoException) => {
      failure ??= error.message
      errorCode ??= error.code
    })
    socket.on('open', () => {
      connection.open = true
      openedAt = Date.now()
      flush(connection)
    })
    socket.on('message', (data) => {
      // Answers are matched by content (an echo); anything else the server pushes is not an
      // answer.
      const text = String(data)
      const message = connection.sent.get(text)
      if (message === undefined) return
      connection.sent.delete(text)
      if (message.done) return
      message.done = true
      message.attempt.response(101)
      message.attempt.end()
    })
    socket.on('close', (code: number, reason: Buffer) => {
      connection.open = false
      if (connection.socket === socket) connection.socket = undefined
      const wasOpen = openedAt > 0
      // Messages sent and not answered go out again, first, on the next WebSocket.
      const unanswered = [...connection.sent.values()].filter((message) => !message.done)
      connection.sent.clear()
      for (const message of unanswered) {
        message.attempt.retry(`its WebSocket closed with ${code} before the answer came`)
      }
      connection.waiting.unshift(...unanswered)
      if (closed) return
      const clean = wasOpen && CLEAN_CLOSE_CODES.has(code)
      if (clean) context.movedAway(connection.localPort)
      else {
        const text = reason.length > 0 ? ` (${reason.toString('utf8')})` : ''
        const message = !wasOpen
          ? `the WebSocket did not open: ${failure ?? `closed with ${code}`}`
          : code === 1006
            ? `the WebSocket was cut without a close frame${failure === undefined ? '' : ` (${failure})`}`
            : `the WebSocket was closed with code ${code}${text}`
        const how = !wasOpen ? 'not-opened' : code === 1006 ? 'cut' : 'closed'
        context.lost({ how, message, code: errorCode, status }, connection.localPort)
      }
      // A long-lived WebSocket closed cleanly reconnects at once. After a failure, or a
      // close soon after opening (a pod in its lame duck may still be routed to for a moment,
      // and closes again), it backs off.
      const stable = clean && Date.now() - openedAt >= STABLE_MS
      connection.closesInRow = stable ? 0 : connection.closesInRow + 1
      const delay =
        connection.closesInRow === 0
          ? 0
          : Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** (connection.closesInRow - 1))
      connection.reconnectTimer = setTimeout(() => connect(connection), delay)
    })
  }

  const flush = (connection: Connection): void => {
    const socket = connection.socket
    if (!connection.open || socket === undefined) return
    for (const message of connection.waiting.splice(0)) {
      if (message.done) continue
      connection.sent.set(message.text, message)
      message.attempt.socket(connection.localPort ?? 0, connection.messagesOnSocket++ > 0)
      socket.send(message.text)
    }
  }

  /** An open WebSocket with nothing outstanding, else a new one, else the least busy. */
  const pick = (): Connection => {
    let best: Connection | undefined
    for (const connection of connections) {
      if (connection.open && connection.busy === 0) return connection
      if (best === undefined || connection.busy < best.busy) best = connection
    }
    if (best === undefined || connections.length < context.connections) {
      const connection = new Connection()
      connections.push(connection)
      connect(connection)
      return connection
    }
    return best
  }

  return {
    send(spec, attempt) {
      const connection = pick()
      const message: Message = { text: `lameduck lab message ${spec.id}`, attempt, done: false }
      connection.waiting.push(message)
      flush(connection)
      return () => {
        // Past its deadline: an answer that comes later is dropped.
        message.done = true
        connection.sent.delete(message.text)
        const index = connection.waiting.indexOf(message)
        if (index >= 0) connection.waiting.splice(index, 1)
      }
    },
    close() {
      closed = true
      for (const connection of connections) {
        clearTimeout(connection.reconnectTimer)
        const socket = connection.socket
        if (socket === undefined) continue
        socket.close(1000, 'the lab is done')
        // A WebSocket whose close handshake does not complete is not left behind.
        setTimeout(() => socket.terminate(), 1_000).unref()
      }
    },
  }
}

/** A WebSocket opened on --ws-path and one message echoed on it. */
function preflight({ host, port, wsPath }: PreflightTarget): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://${host}:${port}${wsPath}`, { perMessageDeflate: false })
    const text = 'lameduck lab preflight'
    let opened = false
    const done = (error?: string) => {
      clearTimeout(timer)
      if (error === undefined) socket.close(1000)
      else socket.terminate()
      if (error === undefined) resolve()
      else reject(new Error(error))
    }
    const timer = setTimeout(
      () =>
        done(
          opened
            ? `a message sent on a WebSocket at ${wsPath} was not echoed within ${PREFLIGHT_TIMEOUT_MS} ms; the ws client kind needs the service to echo each text message`
            : `no WebSocket opened at ${wsPath} within ${PREFLIGHT_TIMEOUT_MS} ms`,
        ),
      PREFLIGHT_TIMEOUT_MS,
    )
    socket.on('unexpected-response', (_request, response) => {
      response.resume()
      done(
        `the service answered HTTP ${response.statusCode} at ${wsPath} instead of opening a WebSocket; serve WebSockets there or set --ws-path`,
      )
    })
    socket.on('error', (error) => done(`could not open a WebSocket at ${wsPath}: ${error.message}`))
    socket.on('open', () => {
      opened = true
      socket.send(text)
    })
    socket.on('message', (data) => {
      if (String(data) === text) done()
    })
  })
}

export const WS: ClientKind = {
  name: 'ws',
  description:
    'WebSockets to --ws-path that reconnect when closed; a request is one echoed message',
  protocol: 'websocket',
  pooled: true,
  queues: true,
  create: wsClient,
  preflight,
}
