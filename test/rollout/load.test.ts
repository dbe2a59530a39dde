import assert from 'node:assert/strict'
import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import { after, test } from 'node:test'
import { CLIENT_KINDS } from '../../src/rollout/clients/index.js'
import { Clock } from '../../src/rollout/clock.js'
import { ServiceModel } from '../../src/rollout/drivers/model.js'
import { LoadGenerator, POST_BODY_BYTES } from '../../src/rollout/load.js'
import { type Outcome, Recorder } from '../../src/rollout/recorder.js'
import { within } from '../helpers.js'
import { closeServices, runLoad } from './load-helpers.js'

// One backend whose path decides how each request ends.
const posts: number[] = []
const sockets = new Set<net.Socket>()
const backend = http.createServer((req, res) => {
  switch (req.url) {
    case '/500':
      res.statusCode = 503
      res.end('unavailable')
      return
    case '/404':
      res.statusCode = 404
      res.end('not found')
      return
    case '/hang-up':
      req.socket.destroy()
      return
    case '/reset':
      req.socket.resetAndDestroy()
      return
    case '/never':
      return
    case '/slow':
      setTimeout(() => res.end('ok'), 30)
      return
    case '/echo': {
      let bytes = 0
      req.on('data', (chunk: Buffer) => {
        bytes += chunk.length
      })
      req.on('end', () => {
        posts.push(bytes)
        res.end(String(bytes))
      })
      return
    }
    default:
      res.end('ok')
  }
})
backend.on('connection', (socket) => {
  sockets.add(socket)
  socket.once('close', () => sockets.delete(socket))
})
backend.listen(0, '127.0.0.1')
await once(backend, 'listening')
const backendPort = (backend.address() as net.AddressInfo).port

after(async () => {
  await closeServices()
  for (const socket of sockets) socket.destroy()
  await new Promise((resolve) => backend.close(resolve))
})

async function load(
  path: string,
  endpointPort = backendPort,
  client = 'agent-lifo',
  method: 'GET' | 'POST' = 'GET',
) {
  const { recorder, summary } = await runLoad({
    backendPort: endpointPort,
    client,
    path,
    method,
    pools: 2,
    // Long enough for a busy machine (the Service model must have connected the request to
    // its pod, or a helper process in another language have connected, before the deadline),
    // short enough for the request that never gets an answer.
    timeoutMs: path === '/never' ? 1_500 : 3_000,
  })
  assert.equal(summary.sent, 4)
  assert.equal(recorder.requests.length, 4, 'one outcome per request')
  assert.equal(summary.hitMaxRequests, true)
  return recorder
}

const cases: [string, Outcome][] = [
  ['/', 'ok'],
  ['/500', 'http_5xx'],
  ['/404', 'other'],
  ['/hang-up', 'hang_up'],
  ['/reset', 'reset'],
  ['/never', 'timeout'],
]

// The HTTP/1.1 kinds against the HTTP/1.1 backend; h2 and ws have their own backends in
// clients.test.ts.
const HTTP1_KINDS = CLIENT_KINDS.filter((kind) => kind.protocol === 'http' && kind.name !== 'h2')

for (const kind of HTTP1_KINDS) {
  for (const [path, outcome] of cases) {
    test(`${kind.name}: GET ${path} is classified ${outcome}`, async () => {
      const recorder = await load(path, backendPort, kind.name)
      assert.deepEqual(
        recorder.requests.map((r) => r.outcome),
        [outcome, outcome, outcome, outcome],
        JSON.stringify(recorder.requests.map((r) => r.message)),
      )
      for (const request of recorder.requests) {
        // curl names the connection it used only when it ends: a request abandoned at its
        // deadline is not traced (docs/lab.md).
        if (kind.name !== 'curl' || outcome !== 'timeout') {
          assert.equal(request.pod, 'pod', 'the connection is traced to its pod')
        }
        assert.equal(request.client, kind.name)
      }
    })
  }

  test(`${kind.name}: a POST carries its body once`, async () => {
    const before = posts.length
    const recorder = await load('/echo', backendPort, kind.name, 'POST')
    assert.deepEqual(
      recorder.requests.map((r) => [r.method, r.outcome]),
      Array(4).fill(['POST', 'ok']),
    )
    assert.deepEqual(posts.slice(before), Array(4).fill(POST_BODY_BYTES))
  })
}

test('connection reuse is recorded: a keep-alive agent reuses, a new connection per request does not', async () => {
  const agent = await load('/', backendPort, 'agent-lifo')
  assert.ok(
    agent.requests.some((r) => r.reused === true),
    'some request reused a connection',
  )
  const fresh = await load('/', backendPort, 'new-connection')
  assert.ok(fresh.requests.every((r) => r.reused === false))
})

test('a request the Agent queued until a pooled connection was free is recorded as reused', async () => {
  // Two connections, twelve requests at once, each answered after 30 ms: most wait in the
  // Agent's queue and go out on a connection that has just carried a request. Node's Agent
  // marks only a request handed an idle socket as `reusedSocket`, not a queued one.
  const { recorder } = await runLoad({
    backendPort,
    client: 'agent-fifo',
    path: '/slow',
    count: 12,
    rate: 1_000,
    pools: 1,
  })
  const requests = [...recorder.requests].sort((a, b) => a.start - b.start)
  assert.ok(requests.every((r) => r.outcome === 'ok' && r.localPort !== undefined))
  const ports = new Set(requests.map((r) => r.localPort))
  const fresh = requests.filter((r) => r.reused === false)
  assert.equal(
    fresh.length,
    ports.size,
    JSON.stringify(requests.map((r) => [r.localPort, r.reused])),
  )
})

test('a connection the Service model reset because the backend refused counts as refused', async () => {
  const closed = http.createServer()
  closed.listen(0, '127.0.0.1')
  await once(closed, 'listening')
  const deadPort = (closed.address() as net.AddressInfo).port
  await new Promise((resolve) => closed.close(resolve))
  const recorder = await load('/', deadPort)
  assert.deepEqual(
    recorder.requests.map((r) => r.outcome),
    ['refused', 'refused', 'refused', 'refused'],
    JSON.stringify(recorder.requests.map((r) => r.message)),
  )
  // What a client in a cluster sees, not the model's reset: no "read ECONNRESET" under a
  // "connection refused" label.
  for (const request of recorder.requests) {
    assert.equal(request.message, 'connect ECONNREFUSED: the pod refused the connection')
  }
})

test('"load stopped" is recorded when the last request is sent, not once those in flight end', async () => {
  const { recorder, summary } = await runLoad({
    backendPort,
    client: 'agent-lifo',
    path: '/never',
    timeoutMs: 500,
  })
  const stopped = recorder.events.find((e) => e.type === 'load-stopped')!
  assert.equal(stopped.detail, '4 requests; waiting for the 4 in flight')
  assert.ok(
    stopped.t - summary.stoppedAt < 50,
    `${stopped.t} ms, stopped at ${summary.stoppedAt} ms`,
  )
  const firstEnd = Math.min(...recorder.requests.map((r) => r.end))
  assert.ok(stopped.t < firstEnd, `recorded at ${stopped.t} ms, a request ended at ${firstEnd} ms`)
})

test('a request whose connection never reached the Service model is undelivered, not a failure', async () => {
  // A listener that accepts and never answers stands for the lab's own listener; the Service
  // model (another one) never sees the connections, as when the lab is too busy to accept.
  const silent = net.createServer(() => {})
  silent.listen(0, '127.0.0.1')
  await once(silent, 'listening')
  const clock = new Clock()
  const recorder = new Recorder(clock)
  const service = new ServiceModel({
    clock,
    recorder,
    propagationDelayMs: 0,
    propagationJitterMs: 0,
  })
  const generator = new LoadGenerator({
    port: (silent.address() as net.AddressInfo).port,
    rate: 100,
    connections: 2,
    pools: 1,
    paths: [{ path: '/', weight: 1 }],
    wsPath: '/',
    clients: [
      { kind: 'new-connection', weight: 1 },
      { kind: 'fetch', weight: 1 },
    ],
    timeoutMs: 200,
    maxRequests: 4,
    clock,
    recorder,
    service,
  })
  generator.start()
  await within(
    '4 requests issued',
    new Promise<void>((resolve) => {
      const check = () => (generator.sent >= 4 ? resolve() : setTimeout(check, 5))
      check()
    }),
  )
  await within('every request has an outcome', generator.stop())
  silent.close()
  assert.equal(recorder.requests.length, 0, 'none counted against the service')
  assert.equal(recorder.undelivered.length, 4)
})
