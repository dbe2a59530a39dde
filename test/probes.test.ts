// Probe answers on real sockets, in process (manual shutdown, no signals, no exit).
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { test } from 'node:test'
import { type Lameduck, type LameduckOptions, lameduck } from 'lameduck'
import { nextEvent, within } from './helpers.js'
import { get } from './http-client.js'

const quiet: LameduckOptions = { signals: [], exit: false, logger: false, drainDelay: 0 }

function appServer() {
  const seen: string[] = []
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? '')
    res.end(`app ${req.url}`)
  })
  return { server, seen }
}

/** Resolves once `ld` is ready (at once if it already is). */
async function whenReady(ld: Lameduck): Promise<void> {
  while (ld.state !== 'ready') await nextEvent(ld, 'state', `ready (state is ${ld.state})`)
}

async function listen(server: http.Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await nextEvent(server, 'listening', 'the server to listen')
  return (server.address() as AddressInfo).port
}

test('readiness is 503 until every managed server listens, then 200; liveness is 200 from the start', async (t) => {
  const a = appServer()
  const b = appServer()
  const ld = lameduck([a.server, b.server], quiet)
  t.after(() => ld.shutdown())
  const port = await listen(a.server)
  const notYet = await get(port, '/readyz')
  assert.equal(notYet.status, 503)
  assert.deepEqual(JSON.parse(notYet.body), { status: 'starting' })
  assert.equal(notYet.headers['content-type'], 'application/json')
  assert.equal((await get(port, '/livez')).status, 200)
  assert.equal((await get(port, '/startupz')).status, 503)
  const ready = nextEvent<[string, string]>(ld, 'state', 'the ready state')
  await listen(b.server)
  assert.deepEqual(await ready, ['ready', 'starting'])
  const answer = await get(port, '/readyz')
  assert.equal(answer.status, 200)
  assert.deepEqual(JSON.parse(answer.body), { status: 'ready' })
  assert.deepEqual(JSON.parse((await get(port, '/startupz')).body), { status: 'started' })
  assert.deepEqual(JSON.parse((await get(port, '/livez')).body), { status: 'alive' })
})

test('probe paths never reach the app; every other path does, unchanged', async (t) => {
  const { server, seen } = appServer()
  const ld = lameduck(server, quiet)
  t.after(() => ld.shutdown())
  const port = await listen(server)
  for (const path of ['/readyz', '/livez', '/startupz', '/readyz?verbose=1']) {
    assert.notEqual((await get(port, path)).body.startsWith('app'), true, path)
  }
  const passed = ['/', '/readyzx', '/api/readyz', '/livez/', '/x?y=/readyz']
  for (const path of passed) assert.equal((await get(port, path)).body, `app ${path}`)
  assert.deepEqual(seen, passed)
})

test('GET and HEAD are answered; other methods get 405 with Allow', async (t) => {
  const { server } = appServer()
  const ld = lameduck(server, quiet)
  t.after(() => ld.shutdown())
  const port = await listen(server)
  await whenReady(ld)
  const head = await get(port, '/readyz', { method: 'HEAD' })
  assert.equal(head.status, 200)
  assert.equal(head.body, '')
  const post = await get(port, '/livez', { method: 'POST' })
  assert.equal(post.status, 405)
  assert.equal(post.headers.allow, 'GET, HEAD')
})

test('probe paths are configurable, and probes: false leaves every path to the app', async (t) => {
  const custom = appServer()
  const ld = lameduck(custom.server, {
    ...quiet,
    probes: { readiness: '/health', liveness: false },
  })
  t.after(() => ld.shutdown())
  const port = await listen(custom.server)
  await whenReady(ld)
  assert.deepEqual(JSON.parse((await get(port, '/health')).body), { status: 'ready' })
  assert.equal((await get(port, '/livez')).body, 'app /livez')
  assert.equal((await get(port, '/readyz')).body, 'app /readyz')

  const none = appServer()
  const off = lameduck(none.server, { ...quiet, probes: false })
  t.after(() => off.shutdown())
  const offPort = await listen(none.server)
  assert.equal((await get(offPort, '/readyz')).body, 'app /readyz')
})

test('with probes.port, probes are answered on a separate server and the app sees its own /readyz', async (t) => {
  const { server, seen } = appServer()
  const ld = lameduck(server, { ...quiet, probes: { port: 0, host: '127.0.0.1' } })
  t.after(() => ld.shutdown())
  const port = await listen(server)
  await whenReady(ld)
  assert.equal((await get(port, '/readyz')).body, 'app /readyz')
  assert.deepEqual(seen, ['/readyz'])
  const probePort = ld.probeAddress?.port as number
  assert.equal(typeof probePort, 'number')
  assert.deepEqual(JSON.parse((await get(probePort, '/readyz')).body), { status: 'ready' })
  assert.equal((await get(probePort, '/other')).status, 404)
  const stopped = ld.shutdown()
  await within('shutdown', stopped)
  // The probe server closes with the process.
  await assert.rejects(get(probePort, '/livez'), /ECONNREFUSED/)
})

test('after shutdown starts readiness answers draining, then stopping; startup and liveness stay 200', async (t) => {
  const { server } = appServer()
  const ld = lameduck(server, { ...quiet, drainDelay: 300, probes: { port: 0, host: '127.0.0.1' } })
  t.after(() => ld.shutdown())
  await listen(server)
  await whenReady(ld)
  const probePort = ld.probeAddress?.port as number
  const draining = nextEvent(ld, 'state', 'draining')
  void ld.shutdown('test')
  await draining
  assert.deepEqual(JSON.parse((await get(probePort, '/readyz')).body), { status: 'draining' })
  assert.equal((await get(probePort, '/livez')).status, 200)
  assert.equal((await get(probePort, '/startupz')).status, 200)
})

test('notReady(reason) answers 503 with the reason until ready()', async (t) => {
  const { server } = appServer()
  const ld = lameduck(server, quiet)
  t.after(() => ld.shutdown())
  const port = await listen(server)
  await whenReady(ld)
  ld.notReady('warming cache')
  const answer = await get(port, '/readyz')
  assert.equal(answer.status, 503)
  assert.deepEqual(JSON.parse(answer.body), { status: 'not ready', reason: 'warming cache' })
  assert.equal((await get(port, '/startupz')).status, 200, 'startup stays passed once started')
  ld.ready()
  assert.equal((await get(port, '/readyz')).status, 200)
})

test('autoReady: false waits for ready()', async (t) => {
  const { server } = appServer()
  const ld = lameduck(server, { ...quiet, autoReady: false })
  t.after(() => ld.shutdown())
  const port = await listen(server)
  assert.equal((await get(port, '/readyz')).status, 503)
  assert.equal(ld.state, 'starting')
  ld.ready()
  assert.equal(ld.state, 'ready')
  assert.equal((await get(port, '/readyz')).status, 200)
})

test('a failing readiness check answers 503 with its name; the reason is logged, not sent', async (t) => {
  const { server } = appServer()
  const warnings: string[] = []
  const logger = {
    info() {},
    warn: (_: unknown, message: string) => warnings.push(message),
    error() {},
  }
  let healthy = true
  const ld = lameduck(server, {
    ...quiet,
    logger,
    checks: {
      db: () => {
        if (!healthy) throw new Error('password=hunter2 rejected')
      },
      cache: () => true,
    },
  })
  t.after(() => ld.shutdown())
  const port = await listen(server)
  await whenReady(ld)
  assert.equal((await get(port, '/readyz')).status, 200)
  healthy = false
  const failing = await get(port, '/readyz')
  assert.equal(failing.status, 503)
  assert.deepEqual(JSON.parse(failing.body), {
    status: 'failing',
    failed: ['db'],
    checks: { db: { ok: false, failure: 'error' }, cache: { ok: true } },
  })
  assert.doesNotMatch(failing.body, /hunter2/)
  assert.equal(warnings.length, 1)
  assert.match(warnings[0] as string, /'db' failing: password=hunter2 rejected/)
  await get(port, '/readyz')
  assert.equal(warnings.length, 1, 'a check that keeps failing is logged once')
})

test('a hanging check fails at checkTimeout, and a probe storm runs each check once', async (t) => {
  const { server } = appServer()
  let runs = 0
  let release: () => void = () => {}
  const ld = lameduck(server, {
    ...quiet,
    checkTimeout: 40,
    checks: {
      slow: () => {
        runs++
        return new Promise<void>((resolve) => {
          release = resolve
        })
      },
    },
  })
  t.after(() => ld.shutdown())
  const port = await listen(server)
  await whenReady(ld)
  const storm = await Promise.all(Array.from({ length: 50 }, () => get(port, '/readyz')))
  assert.ok(storm.every((answer) => answer.status === 503))
  assert.deepEqual(JSON.parse(storm[0]?.body ?? ''), {
    status: 'failing',
    failed: ['slow'],
    checks: { slow: { ok: false, failure: 'timeout' } },
  })
  assert.equal(runs, 1, '50 concurrent probes share one run')
  // Still pending after its timeout: new probes fail at once instead of piling up runs.
  assert.equal((await get(port, '/readyz')).status, 503)
  assert.equal(runs, 1)
  release()
})
