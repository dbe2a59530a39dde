// probes.metrics: a Prometheus text exposition, parsed here as a scraper would, through a
// whole shutdown: ready, a request in flight, the drain, a forced connection, the hooks.
import assert from 'node:assert/strict'
import http from 'node:http'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { type Lameduck, type LameduckOptions, lameduck } from 'lameduck'
import { nextEvent, within } from './helpers.js'
import { get } from './http-client.js'
import { parse } from './prometheus.js'

const quiet: LameduckOptions = { signals: [], exit: false, logger: false, drainDelay: 0 }

const READY_ONE_CONNECTION = `# HELP lameduck_state Lifecycle state: 1 for the current one, 0 for the others.
# TYPE lameduck_state gauge
lameduck_state{state="starting"} 0
lameduck_state{state="ready"} 1
lameduck_state{state="draining"} 0
lameduck_state{state="stopping"} 0
lameduck_state{state="stopped"} 0
# HELP lameduck_in_flight_requests Requests whose response is in progress, not counting this scrape.
# TYPE lameduck_in_flight_requests gauge
lameduck_in_flight_requests 0
# HELP lameduck_open_connections Open TCP connections to the managed servers, idle ones included.
# TYPE lameduck_open_connections gauge
lameduck_open_connections 1
# HELP lameduck_shutdown_phase_seconds Duration of each shutdown phase so far (the running one until now); 0 before the shutdown.
# TYPE lameduck_shutdown_phase_seconds gauge
lameduck_shutdown_phase_seconds{phase="drain"} 0
lameduck_shutdown_phase_seconds{phase="close"} 0
lameduck_shutdown_phase_seconds{phase="hooks"} 0
# HELP lameduck_shutdown_closed_connections_total Connections that ended on their own after the shutdown began.
# TYPE lameduck_shutdown_closed_connections_total counter
lameduck_shutdown_closed_connections_total 0
# HELP lameduck_shutdown_forced_connections_total Connections destroyed at shutdownTimeout or on a second signal.
# TYPE lameduck_shutdown_forced_connections_total counter
lameduck_shutdown_forced_connections_total 0
`

async function scrape(port: number) {
  const res = await get(port, '/metrics')
  assert.equal(res.status, 200)
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/)
  const { samples } = parse(res.body)
  const value = (name: string, labels: Record<string, string> = {}) => {
    const found = samples.find(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
    )
    assert.ok(found, `${name} ${JSON.stringify(labels)} is exposed`)
    return found.value
  }
  const state = samples.filter((s) => s.name === 'lameduck_state' && s.value === 1)
  assert.equal(state.length, 1, 'exactly one state is current')
  return { value, state: state[0]?.labels.state, samples }
}

async function listen(server: http.Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await nextEvent(server, 'listening', 'the server to listen')
  return (server.address() as AddressInfo).port
}

async function whenReady(ld: Lameduck): Promise<void> {
  while (ld.state !== 'ready') await nextEvent(ld, 'state', `ready (state is ${ld.state})`)
}

test('metrics follow a shutdown: state, in-flight requests, connections, phases, forced count', async (t) => {
  let received: () => void = () => {}
  const requestArrived = new Promise<void>((resolve) => {
    received = resolve
  })
  // The app never answers '/hang': it is in flight until the deadline destroys it.
  const server = http.createServer((req, res) => {
    if (req.url === '/hang') received()
    else res.end('ok')
  })
  const ld = lameduck(server, {
    ...quiet,
    drainDelay: 50,
    shutdownTimeout: 100,
    probes: { port: 0, host: '127.0.0.1', metrics: '/metrics' },
  })
  let releaseHook: () => void = () => {}
  const hookGate = new Promise<void>((resolve) => {
    releaseHook = resolve
  })
  let hookStarted: () => void = () => {}
  const inHook = new Promise<void>((resolve) => {
    hookStarted = resolve
  })
  ld.onShutdown('gate', async () => {
    hookStarted()
    await hookGate
  })
  t.after(() => {
    releaseHook()
    return ld.shutdown()
  })
  const port = await listen(server)
  await whenReady(ld)
  const probePort = ld.probeAddress?.port as number

  const ready = await scrape(probePort)
  assert.equal(ready.state, 'ready')
  assert.equal(ready.value('lameduck_in_flight_requests'), 0)
  assert.equal(ready.value('lameduck_open_connections'), 0)
  for (const phase of ['drain', 'close', 'hooks']) {
    assert.equal(ready.value('lameduck_shutdown_phase_seconds', { phase }), 0)
  }
  assert.equal(ready.value('lameduck_shutdown_forced_connections_total'), 0)

  // One request in flight, one idle keep-alive connection.
  const hanging = get(port, '/hang').catch((error: Error) => error)
  await within('the hanging request to reach the app', requestArrived)
  // An idle keep-alive connection: it closes on its own when the listener closes.
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.after(() => agent.destroy())
  assert.equal((await get(port, '/', { agent })).body, 'ok')
  await within(
    'the server to count both connections',
    (async () => {
      while ((await scrape(probePort)).value('lameduck_open_connections') < 2) {
        await new Promise((r) => setTimeout(r, 2))
      }
    })(),
  )
  const busy = await scrape(probePort)
  assert.equal(busy.value('lameduck_in_flight_requests'), 1)
  assert.equal(busy.value('lameduck_open_connections'), 2)

  const draining = nextEvent(ld, 'state', 'draining')
  const outcome = ld.shutdown('test')
  await draining
  const drain = await scrape(probePort)
  assert.equal(drain.state, 'draining')
  assert.equal(drain.value('lameduck_shutdown_phase_seconds', { phase: 'close' }), 0)

  await within('the onShutdown hook to start', inHook)
  const hooks = await scrape(probePort)
  assert.equal(hooks.state, 'stopping')
  assert.equal(hooks.value('lameduck_in_flight_requests'), 0)
  assert.equal(hooks.value('lameduck_open_connections'), 0)
  assert.equal(hooks.value('lameduck_shutdown_forced_connections_total'), 1)
  assert.ok(hooks.value('lameduck_shutdown_closed_connections_total') >= 1, 'the idle one')
  assert.ok(hooks.value('lameduck_shutdown_phase_seconds', { phase: 'drain' }) >= 0.05)
  assert.ok(hooks.value('lameduck_shutdown_phase_seconds', { phase: 'close' }) >= 0.1)
  releaseHook()
  const result = await within('the shutdown', outcome)
  assert.equal(result.connections.forced, 1)
  assert.ok(
    result.durations.hooksMs >=
      hooks.value('lameduck_shutdown_phase_seconds', { phase: 'hooks' }) * 1000 - 1,
  )
  assert.ok((await hanging) instanceof Error, 'the hanging request was cut')
})

test('metrics on the application port: off by default, and a scrape does not count itself', async (t) => {
  const plain = http.createServer((req, res) => res.end(`app ${req.url}`))
  const off = lameduck(plain, quiet)
  t.after(() => off.shutdown())
  const plainPort = await listen(plain)
  assert.equal((await get(plainPort, '/metrics')).body, 'app /metrics')

  const server = http.createServer((_req, res) => res.end('ok'))
  const ld = lameduck(server, { ...quiet, probes: { metrics: '/metrics' } })
  t.after(() => ld.shutdown())
  const port = await listen(server)
  await whenReady(ld)
  const own = await scrape(port)
  assert.equal(own.value('lameduck_in_flight_requests'), 0)
  assert.equal(own.value('lameduck_open_connections'), 1, 'the scrape connection itself')
  // The whole exposition of one process, to the byte: a worker of `lameduck serve --workers`
  // adds pod-wide families, a single process never does.
  assert.equal((await get(port, '/metrics')).body, READY_ONE_CONNECTION)
  const head = await get(port, '/metrics', { method: 'HEAD' })
  assert.equal(head.status, 200)
  assert.equal(head.body, '')
})

test('on HTTP/2, in-flight requests count streams: two streams in flight on one session, and a scrape over HTTP/2 does not count itself', async (t) => {
  const server = http2.createServer()
  const release: (() => void)[] = []
  let bothArrived: () => void = () => {}
  const arrived = new Promise<void>((resolve) => {
    bothArrived = resolve
  })
  server.on('stream', (stream) => {
    release.push(() => stream.respond({ ':status': 200 }, { endStream: true }))
    if (release.length === 2) bothArrived()
  })
  const ld = lameduck(server, { ...quiet, probes: { metrics: '/metrics' } })
  t.after(() => ld.shutdown())
  server.listen(0, '127.0.0.1')
  await nextEvent(server, 'listening')
  await whenReady(ld)
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  t.after(() => client.close())
  const ended: Promise<void>[] = []
  for (const path of ['/a', '/b']) {
    const req = client.request({ ':path': path })
    req.resume()
    ended.push(new Promise((resolve) => req.once('close', () => resolve())))
  }
  await within('both streams to reach the app', arrived)
  const inFlight = async () => {
    const body = await within(
      'a scrape over HTTP/2',
      new Promise<string>((resolve, reject) => {
        const req = client.request({ ':path': '/metrics' })
        let text = ''
        req.setEncoding('utf8').on('data', (chunk: string) => {
          text += chunk
        })
        req.on('end', () => resolve(text)).on('error', reject)
      }),
    )
    return parse(body).samples.find((s) => s.name === 'lameduck_in_flight_requests')?.value
  }
  assert.equal(await inFlight(), 2)
  for (const respond of release) respond()
  await within('both streams to end', Promise.all(ended))
  assert.equal(await inFlight(), 0)
})
