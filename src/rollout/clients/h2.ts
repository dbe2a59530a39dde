// HTTP/2 over cleartext TCP (h2c, prior knowledge), as one service calls another through a
// service mesh or as a gRPC client does: each pool holds one session at a time and sends
// every request on it as a stream, concurrently.
//
// A session that received a GOAWAY takes no new stream; the next request opens a new
// session (routed afresh by the Service). A stream the server did not process (refused with
// REFUSED_STREAM, or beyond the last stream id of a GOAWAY, which node:http2 reports as
// REFUSED_STREAM too) is sent again on a new session, at most twice (MAX_RETRIES), as RFC
// 9113 §8.7 allows and gRPC clients do: when a retry succeeds, the request succeeded. A stream reset after the
// server accepted it, or cut with its connection, is a failure.
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2'
import net from 'node:net'
import {
  type ClientContext,
  type ClientKind,
  type LoadClient,
  PREFLIGHT_TIMEOUT_MS,
  type PreflightTarget,
  type RequestSpec,
} from './types.js'

const { NGHTTP2_REFUSED_STREAM } = http2.constants

/**
 * Times one request is sent again after the server refused it unprocessed. Envoy's
 * `refused-stream` retry and gRPC's transparent retry default to one; the lab allows two,
 * because on a starved machine a client session can stall for a second, its PING acks late
 * and the next pod's GOAWAY refuses the retry too (seen about once in 18 runs of three labs
 * at once on 2 cores). The `retries` of each record show how often it happened.
 */
const MAX_RETRIES = 2

interface SessionEntry {
  session: ClientHttp2Session
  socket: net.Socket
  /** Streams sent on it so far. */
  streams: number
  /** False once it received a GOAWAY, failed or closed: new streams go elsewhere. */
  usable: boolean
}

/** node:http2's errors carry a code; a stream's reset code is on the stream. */
interface Http2Error extends Error {
  code?: string
}

function h2Client(context: ClientContext): LoadClient {
  let current: SessionEntry | undefined
  const sessions = new Set<ClientHttp2Session>()

  const open = (): SessionEntry => {
    const socket = net.connect({ host: context.host, port: context.port, noDelay: true })
    const session = http2.connect(`http://${context.host}:${context.port}`, {
      createConnection: () => socket,
    })
    const entry: SessionEntry = { session, socket, streams: 0, usable: true }
    // Every stream reports its own failure; the session's error only retires it.
    session.on('error', () => {
      entry.usable = false
    })
    session.on('goaway', (code: number) => {
      entry.usable = false
      // The server asked this session to move, cleanly: its shutdown at work.
      if (code === http2.constants.NGHTTP2_NO_ERROR) context.movedAway(socket.localPort)
    })
    session.on('close', () => {
      entry.usable = false
      sessions.delete(session)
    })
    sessions.add(session)
    return entry
  }

  const sessionForNewStream = (): SessionEntry => {
    if (current === undefined || !current.usable || current.session.closed) current = open()
    return current
  }

  return {
    send(spec, attempt) {
      let stream: ClientHttp2Stream | undefined
      let abandoned = false
      let retries = 0

      const start = (): void => {
        let entry = sessionForNewStream()
        try {
          stream = request(entry.session, spec)
        } catch {
          // The session took a GOAWAY or closed between the check and the request: nothing
          // was sent. A new session takes it.
          entry.usable = false
          entry = sessionForNewStream()
          try {
            stream = request(entry.session, spec)
          } catch (error) {
            const { message, code } = error as Http2Error
            attempt.error({ message, code, duringResponse: false })
            return
          }
        }
        const reused = entry.streams++ > 0
        const { socket } = entry
        if (socket.localPort !== undefined) attempt.socket(socket.localPort, reused)
        else socket.once('connect', () => attempt.socket(socket.localPort!, reused))

        const sent = stream
        let responded = false
        let failed = false
        const fail = (message: string, code: string | undefined): void => {
          if (failed || abandoned) return
          failed = true
          // Unprocessed by the server (RFC 9113 §8.1.4): safe to send again.
          if (!responded && sent.rstCode === NGHTTP2_REFUSED_STREAM && retries < MAX_RETRIES) {
            retries++
            attempt.retry('the server refused the stream unprocessed (REFUSED_STREAM)')
            entry.usable = false
            start()
            return
          }
          attempt.error({ message, code, duringResponse: responded })
        }
        sent.on('response', (headers) => {
          responded = true
          attempt.response(Number(headers[':status'] ?? 0))
        })
        sent.resume()
        sent.on('end', () => {
          // node:http2 ends a stream whose connection closed mid-response as if it were
          // complete, with the stream's close code CANCEL: only NO_ERROR is a real end.
          const code = sent.rstCode ?? http2.constants.NGHTTP2_NO_ERROR
          if (code !== http2.constants.NGHTTP2_NO_ERROR) {
            fail(describe(undefined, sent), 'ERR_HTTP2_STREAM_CANCEL')
          } else if (responded) attempt.end()
          else fail('the stream ended without a response', undefined)
        })
        sent.on('error', (error: Http2Error) => fail(describe(error, sent), error.code))
        sent.on('close', () => {
          // A stream closed with neither an end nor an error: its session went away.
          if (!sent.readableEnded) fail(describe(undefined, sent), 'ERR_HTTP2_STREAM_CLOSED')
        })
      }

      start()
      return () => {
        abandoned = true
        stream?.close(http2.constants.NGHTTP2_CANCEL)
      }
    },
    close() {
      for (const session of sessions) session.destroy()
      sessions.clear()
      current = undefined
    },
  }
}

function request(session: ClientHttp2Session, spec: RequestSpec): ClientHttp2Stream {
  const headers: http2.OutgoingHttpHeaders = { ':method': spec.method, ':path': spec.path }
  if (spec.body !== undefined) {
    headers['content-type'] = 'application/octet-stream'
    headers['content-length'] = spec.body.length
  }
  const stream = session.request(headers, { endStream: spec.body === undefined })
  if (spec.body !== undefined) stream.end(spec.body)
  return stream
}

/** A stream's failure in words, with its reset code (RST_STREAM) when it has one. */
function describe(error: Http2Error | undefined, stream: ClientHttp2Stream): string {
  const code = stream.rstCode
  if (error?.code === 'ERR_HTTP2_STREAM_ERROR' && code !== undefined) {
    return `the server reset the stream (RST_STREAM ${rstName(code)})`
  }
  const reset = code === undefined ? '' : ` (stream closed with ${rstName(code)})`
  return `${error?.message ?? 'the connection closed before the response ended'}${reset}`
}

/** RFC 9113 §7's error codes, by value. */
const RST_NAMES = [
  'NO_ERROR',
  'PROTOCOL_ERROR',
  'INTERNAL_ERROR',
  'FLOW_CONTROL_ERROR',
  'SETTINGS_TIMEOUT',
  'STREAM_CLOSED',
  'FRAME_SIZE_ERROR',
  'REFUSED_STREAM',
  'CANCEL',
  'COMPRESSION_ERROR',
  'CONNECT_ERROR',
  'ENHANCE_YOUR_CALM',
  'INADEQUATE_SECURITY',
  'HTTP_1_1_REQUIRED',
]

function rstName(code: number): string {
  return RST_NAMES[code] ?? `error code ${code}`
}

/** One stream answered on an h2c session, with any status. */
function preflight({ host, port }: PreflightTarget): Promise<void> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${host}:${port}`)
    const done = (error?: string) => {
      clearTimeout(timer)
      session.destroy()
      if (error === undefined) resolve()
      else reject(new Error(error))
    }
    const fail = (error: Error) =>
      done(
        `the service does not answer HTTP/2 without TLS (h2c) on its port (${error.message}); serve it with http2.createServer(), or use the HTTP/1.1 client kinds`,
      )
    const timer = setTimeout(
      () => done(`no HTTP/2 answer within ${PREFLIGHT_TIMEOUT_MS} ms: does the service speak h2c?`),
      PREFLIGHT_TIMEOUT_MS,
    )
    session.on('error', fail)
    const stream = session.request({ ':path': '/' })
    stream.on('error', fail)
    stream.on('response', () => done())
    stream.resume()
  })
}

export const H2: ClientKind = {
  name: 'h2',
  description: 'HTTP/2 over cleartext TCP (h2c), one session per pool, REFUSED_STREAM retried',
  protocol: 'http',
  pooled: true,
  // Streams are sent at once on the session, however many are open.
  queues: false,
  create: h2Client,
  preflight,
}
