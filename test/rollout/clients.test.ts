// The h2 and ws client kinds of the load generator, through the Service model, against
// backends that end streams and WebSockets in every way the counting rules distinguish.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import http2 from 'node:http2'
import type net from 'node:net'
import { after, test } from 'node:test'
import { WebSocketServer } from 'ws'
import { POST_BODY_BYTES } from '../../src/rollout/load.js'
import type { Recorder } from '../../src/rollout/recorder.js'
import { closeServices, type LoadRun, runLoad } from './load-helpers.js'

const { NGHTTP2_REFUSED_STREAM } = http2.constants

const closers: (() => Promise<void> | void)[] = []
after(async () => {
  await closeServices()
  for (const close of closers.reverse()) await close()
})

/** Runs `count` requests of `client` through a Service model routing to `backendPort`. */
async function load(run: Omit<LoadRun, 'wsPath'> & { client: 'h2' | 'ws' }) {
  const { recorder } = await runLoad({ ...run, wsPath: '/ws' })
  return recorder
}

function outcomes(recorder: Recorder): string[] {
  return recorder.requests.map((r) => `${r.method} ${r.outcome}`)
}

function messages(recorder: Recorder): string {
  return JSON.stringify(recorder.requests.map((r) => [r.outcome, r.message]))
}

// An h2c backend whose path decides how each stream ends.
const h2Sessions = new Set<http2.ServerHttp2Session>()
let refuseNext = true
let goawaySent = false
const h2Posts: number[] = []
const h2Backend = http2.createServer()
h2Backend.on('session', (session) => {
  h2Sessions.add(session)
  session.once('close', () => h2Sessions.delete(session))
})
const h2Sockets = new Map<number, net.Socket>()
h2Backend.on('connection', (socket: net.Socket) => {
  h2Sockets.set(socket.remotePort!, socket)
  socket.once('close', () => h2Sockets.delete(socket.remotePort!))
})
h2Backend.on('stream', (stream, headers) => {
  // Closing a stream with an error code makes it emit that error here too.
  stream.on('error', () => {})
  const path = String(headers[':path'])
  switch (path) {
    case '/500':
      stream.respond({ ':status': 503 })
      stream.end('unavailable')
      return
    case '/reset-after-headers':
      stream.respond({ ':status': 200 })
      stream.write('partial')
      // A reset (RST_STREAM INTERNAL_ERROR), not the end of the stream that close() sends
      // first.
      setTimeout(() => stream.destroy(new Error('the handler failed')), 5)
      return
    case '/refuse-first':
      // Every other stream is refused: requests sent one at a time are each refused once,
      // and their retry is served.
      if (refuseNext) {
        refuseNext = false
        stream.close(NGHTTP2_REFUSED_STREAM)
        return
      }
      refuseNext = true
      stream.respond({ ':status': 200 })
      stream.end('ok')
      return
    case '/refuse-always':
      stream.close(NGHTTP2_REFUSED_STREAM)
      return
    case '/goaway':
      // Answers, then tells the client to take no new stream on this session.
      stream.respond({ ':status': 200 })
      stream.end('ok', () => stream.session?.goaway(0, stream.id))
      return
    case '/goaway-after-first':
      // The first session's first stream is served; every later one is beyond the GOAWAY's
      // last stream id, unprocessed: the client must send them again on a new session.
      if (stream.id === 1 && !goawaySent) {
        goawaySent = true
        stream.session?.goaway(0, 1)
        setTimeout(() => {
          stream.respond({ ':status': 200 })
          stream.end('ok')
        }, 20)
        return
      }
      stream.respond({ ':status': 200 })
      stream.end('ok')
      return
    case '/cut':
      stream.respond({ ':status': 200 })
      stream.write('partial')
      // The connection itself, not the session: no GOAWAY, as when a process dies.
      setTimeout(() => h2Sockets.get(stream.session!.socket.remotePort!)?.destroy(), 5)
      return
    case '/echo': {
      let bytes = 0
      stream.on('data', (chunk: Buffer) => {
        bytes += chunk.length
      })
      stream.on('end', () => {
        h2Posts.push(bytes)
        stream.respond({ ':status': 200 })
        stream.end(String(bytes))
      })
      return
    }
    default:
      stream.respond({ ':status': 200 })
      stream.end('ok')
  }
})
h2Backend.listen(0, '127.0.0.1')
await once(h2Backend, 'listening')
const h2Port = (h2Backend.address() as net.AddressInfo).port
closers.push(() => {
  for (const session of h2Sessions) session.destroy()
  return new Promise<void>((resolve) => h2Backend.close(() => resolve()))
})

test('h2: streams answered 2xx are ok, 5xx are http_5xx, and each is traced to its pod', async () => {
  const ok = await load({ backendPort: h2Port, client: 'h2' })
  assert.deepEqual(outcomes(ok), Array(4).fill('GET ok'), messages(ok))
  for (const request of ok.requests) assert.equal(request.pod, 'pod')
  assert.ok(
    ok.requests.some((r) => r.reused === true),
    'later streams reuse the session',
  )
  const unavailable = await load({ backendPort: h2Port, client: 'h2', path: '/500' })
  assert.deepEqual(outcomes(unavailable), Array(4).fill('GET http_5xx'), messages(unavailable))
})

test('h2: a POST carries its body once', async () => {
  const before = h2Posts.length
  const recorder = await load({ backendPort: h2Port, client: 'h2', path: '/echo', method: 'POST' })
  assert.deepEqual(outcomes(recorder), Array(4).fill('POST ok'), messages(recorder))
  assert.deepEqual(h2Posts.slice(before), Array(4).fill(POST_BODY_BYTES))
})

test('h2: a stream reset after the server accepted it is a failure', async () => {
  const recorder = await load({ backendPort: h2Port, client: 'h2', path: '/reset-after-headers' })
  assert.deepEqual(outcomes(recorder), Array(4).fill('GET reset'), messages(recorder))
  assert.match(recorder.requests[0]!.message!, /INTERNAL_ERROR/)
})

test('h2: a stream cut with its connection is a failure', async () => {
  const recorder = await load({ backendPort: h2Port, client: 'h2', path: '/cut', rate: 20 })
  assert.deepEqual(outcomes(recorder), Array(4).fill('GET hang_up'), messages(recorder))
  assert.match(recorder.requests[0]!.message!, /connection closed before the response ended/)
})

test('h2: REFUSED_STREAM is sent again on a new session: ok when a retry succeeds, failed when refused three times', async () => {
  refuseNext = true
  const recorder = await load({
    backendPort: h2Port,
    client: 'h2',
    path: '/refuse-first',
    rate: 20,
  })
  assert.deepEqual(outcomes(recorder), Array(4).fill('GET ok'), messages(recorder))
  assert.ok(
    recorder.requests.every((r) => r.retries === 1),
    'each request was refused once and sent again',
  )
  const always = await load({ backendPort: h2Port, client: 'h2', path: '/refuse-always' })
  assert.deepEqual(outcomes(always), Array(4).fill('GET reset'), messages(always))
  assert.ok(
    always.requests.every((r) => r.retries === 2),
    'sent again twice, then failed',
  )
  assert.match(always.requests[0]!.message!, /REFUSED_STREAM/)
})

test('h2: after a GOAWAY the next request opens a new session, and nothing fails', async () => {
  const recorder = await load({ backendPort: h2Port, client: 'h2', path: '/goaway', rate: 20 })
  assert.deepEqual(outcomes(recorder), Array(4).fill('GET ok'), messages(recorder))
  assert.ok(
    recorder.requests.every((r) => r.reused === false),
    'each request went out on a session of its own',
  )
})

test("h2: streams beyond a GOAWAY's last stream id are sent again on a new session, and succeed", async () => {
  // 8 requests issued in one tick go out together on one session; the server processes the
  // first only. The others are refused by the GOAWAY (or, once the client has read it, not
  // sent on that session at all).
  const recorder = await load({
    backendPort: h2Port,
    client: 'h2',
    path: '/goaway-after-first',
    count: 8,
    rate: 10_000,
  })
  assert.deepEqual(outcomes(recorder), Array(8).fill('GET ok'), messages(recorder))
})

// A WebSocket backend: an echo, plus behaviours chosen by the message's request number.
let wsMode: 'echo' | 'close-1001' | 'close-1011' | 'cut' | 'refuse' = 'echo'
let wsSeen = 0
const wsHttp = http.createServer((_req, res) => {
  res.statusCode = 404
  res.end()
})
const wss = new WebSocketServer({ noServer: true })
wsHttp.on('upgrade', (req, socket, head) => {
  if (wsMode === 'refuse') {
    socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n')
    return
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req))
})
wss.on('connection', (ws) => {
  ws.send('welcome')
  ws.on('message', (data) => {
    wsSeen++
    // The first message of a run is not answered: the server ends the WebSocket instead,
    // and the client must send it again on a new one.
    if (wsSeen === 1 && wsMode !== 'echo') {
      if (wsMode === 'close-1001') ws.close(1001, 'going away')
      else if (wsMode === 'close-1011') ws.close(1011, 'internal error')
      else ws.terminate()
      return
    }
    ws.send(String(data))
  })
})
wsHttp.listen(0, '127.0.0.1')
await once(wsHttp, 'listening')
const wsPort = (wsHttp.address() as net.AddressInfo).port
closers.push(() => {
  for (const client of wss.clients) client.terminate()
  wss.close()
  return new Promise<void>((resolve) => wsHttp.close(() => resolve()))
})

test('ws: each message is answered on a WebSocket to --ws-path; a pushed message is not an answer', async () => {
  wsMode = 'echo'
  wsSeen = 0
  const recorder = await load({ backendPort: wsPort, client: 'ws' })
  assert.deepEqual(outcomes(recorder), Array(4).fill('WS ok'), messages(recorder))
  for (const request of recorder.requests) {
    assert.equal(request.path, '/ws')
    assert.equal(request.pod, 'pod')
  }
})

test('ws: a WebSocket closed with 1001 is not a failure: the client reconnects and sends again', async () => {
  wsMode = 'close-1001'
  wsSeen = 0
  const recorder = await load({ backendPort: wsPort, client: 'ws', rate: 20 })
  assert.deepEqual(outcomes(recorder), Array(4).fill('WS ok'), messages(recorder))
  assert.deepEqual(
    recorder.requests.map((r) => r.retries ?? 0).sort(),
    [0, 0, 0, 1],
    'the unanswered message was sent again',
  )
})

test('ws: a WebSocket cut without a close frame is one failure; its message still gets through', async () => {
  wsMode = 'cut'
  wsSeen = 0
  const recorder = await load({ backendPort: wsPort, client: 'ws', rate: 20 })
  const failures = recorder.requests.filter((r) => r.outcome !== 'ok')
  assert.equal(failures.length, 1, messages(recorder))
  assert.match(failures[0]!.message!, /cut without a close frame/)
  assert.equal(failures[0]!.pod, 'pod')
  assert.equal(recorder.counts.ok, 4, 'every message answered, the first after reconnecting')
})

test('ws: a WebSocket closed with another code (1011) is a failure', async () => {
  wsMode = 'close-1011'
  wsSeen = 0
  const recorder = await load({ backendPort: wsPort, client: 'ws', rate: 20 })
  const failures = recorder.requests.filter((r) => r.outcome !== 'ok')
  assert.equal(failures.length, 1, messages(recorder))
  assert.match(failures[0]!.message!, /closed with code 1011 \(internal error\)/)
})

test('ws: a WebSocket that cannot open is a failure of its own; its messages time out', async () => {
  wsMode = 'refuse'
  const recorder = await load({ backendPort: wsPort, client: 'ws', count: 2, timeoutMs: 300 })
  const refused = recorder.requests.filter((r) => r.message?.includes('did not open'))
  assert.ok(refused.length >= 1, messages(recorder))
  assert.equal(refused[0]!.outcome, 'http_5xx')
  assert.match(refused[0]!.message!, /HTTP 503/)
  assert.deepEqual(
    recorder.requests.filter((r) => r.outcome === 'timeout').length,
    2,
    'both messages waited for a WebSocket until their deadline',
  )
})
