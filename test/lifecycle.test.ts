// The shutdown contract end to end: a real process, real signals, real sockets.
import assert from 'node:assert/strict'
import http from 'node:http'
import { describe, test } from 'node:test'
import { type AppProcess, startApp } from './app-process.js'
import { within } from './helpers.js'
import { get, RawConnection, refused } from './http-client.js'

function stateLogs(app: AppProcess, state: string) {
  return app.logs().filter((line) => line.event === 'state' && line.state === state)
}

describe('on SIGTERM', () => {
  test('readiness answers 503 at once while liveness stays 200, and the listener keeps serving', async (t) => {
    const app = await startApp({ options: { drainDelay: 60_000 } })
    t.after(() => app.child.kill('SIGKILL'))
    assert.equal((await get(app.port, '/readyz')).status, 200)
    app.signal('SIGTERM')
    await app.state('draining')
    const ready = await get(app.port, '/readyz')
    assert.equal(ready.status, 503)
    assert.deepEqual(JSON.parse(ready.body), { status: 'draining' })
    assert.equal((await get(app.port, '/livez')).status, 200)
    // New connections are accepted and served during the lame-duck phase.
    const served = await get(app.port, '/?delay=1')
    assert.equal(served.status, 200)
    assert.equal(served.body, 'GET / 1')
  })

  test('every response carries Connection: close, and its socket closes after it', async (t) => {
    const app = await startApp({ options: { drainDelay: 60_000 } })
    t.after(() => app.child.kill('SIGKILL'))
    // A keep-alive connection used before the signal, and a request in progress across it.
    const before = new RawConnection(app.port)
    before.request('/?delay=0')
    await before.waitFor('GET / 0')
    assert.match(before.data, /Connection: keep-alive/i)
    const inFlight = new RawConnection(app.port)
    inFlight.request('/?delay=150')
    await app.waitFor('request /?delay=150')

    app.signal('SIGTERM')
    await app.state('draining')

    before.data = ''
    before.request('/?delay=0')
    await before.waitFor('GET / 0')
    assert.match(before.data, /Connection: close/i)
    await within('the used connection to close', before.closed)

    await inFlight.waitFor('GET / 150')
    assert.match(
      inFlight.data,
      /Connection: close/i,
      'the request in progress at the signal is told to close',
    )
    await within('the in-flight connection to close', inFlight.closed)
  })

  test('at the end of the drain the listener closes, idle connections close, in-flight requests finish, exit 0', async (t) => {
    const app = await startApp({ options: { drainDelay: 200 } })
    t.after(() => app.child.kill('SIGKILL'))
    const idle = new RawConnection(app.port)
    idle.request('/')
    await idle.waitFor('GET / 0')
    const silent = new RawConnection(app.port)
    await silent.connected
    const agent = new http.Agent({ keepAlive: true })
    t.after(() => agent.destroy())
    const slow = get(app.port, '/?delay=600', { agent })
    const stream = new RawConnection(app.port)
    stream.request('/stream?chunks=20&interval=25')
    await stream.waitFor('chunk 0')

    app.signal('SIGTERM')
    await app.state('stopping')
    assert.equal(await refused(app.port), true, 'new connections are refused once the drain ends')
    // Idle at the close: held until node's keep-alive timeout ends it (5 s after its answer).
    await within('the idle keep-alive connection to close', idle.closed, 10_000)
    await within('the connection that never sent a request to close', silent.closed)
    const response = await slow
    assert.equal(response.body, 'GET / 600')
    assert.equal(response.headers.connection, 'close')
    await stream.waitFor('done\n', 'the streamed response to complete')
    await within('the streaming connection to close after its response', stream.closed)
    const exit = await app.exit()
    assert.deepEqual(exit, { code: 0, signal: null })
    const stopped = stateLogs(app, 'stopped')[0]
    assert.equal(stopped?.exitCode, 0)
    assert.equal((stopped?.connections as { forced: number } | undefined)?.forced, 0)
  })

  test('a request slower than shutdownTimeout is cut: exit 1 and one log line with the forced count', async (t) => {
    const app = await startApp({
      options: { shutdownTimeout: 100 },
      hooks: [{ name: 'flush', does: 'ok' }],
    })
    t.after(() => app.child.kill('SIGKILL'))
    const slow = get(app.port, '/?delay=60000')
    const outcome = slow.then(
      () => 'answered',
      (error: NodeJS.ErrnoException) => error.code ?? error.message,
    )
    await app.waitFor('request /?delay=60000')
    app.signal('SIGTERM')
    assert.equal((await app.exit()).code, 1)
    assert.match(await outcome, /ECONNRESET|socket hang up/)
    assert.match(app.stdout(), /hook flush/, 'hooks still run after connections are forced')
    const forced = app.logs().filter((line) => line.event === 'forced')
    assert.equal(forced.length, 1)
    assert.equal(forced[0]?.connections, 1)
    assert.match(
      String(forced[0]?.msg),
      /forced 1 connection\(s\) still open after shutdownTimeout 100 ms/,
    )
    assert.equal(
      (stateLogs(app, 'stopped')[0]?.connections as { forced: number } | undefined)?.forced,
      1,
    )
  })

  test('a second signal forces: sockets destroyed, exit 1 without waiting for the drain', async (t) => {
    const app = await startApp({ options: { drainDelay: 60_000, shutdownTimeout: 60_000 } })
    t.after(() => app.child.kill('SIGKILL'))
    const slow = get(app.port, '/?delay=60000').then(
      () => 'answered',
      (error: NodeJS.ErrnoException) => error.code ?? error.message,
    )
    await app.waitFor('request /?delay=60000')
    app.signal('SIGTERM')
    await app.state('draining')
    app.signal('SIGINT')
    assert.equal((await app.exit()).code, 1)
    assert.match(await slow, /ECONNRESET|socket hang up/)
    assert.ok(app.logs().some((line) => line.event === 'force' && line.signal === 'SIGINT'))
  })

  test('a signal before the process was ever ready skips the lame-duck phase', async (t) => {
    const app = await startApp({ options: { autoReady: false, drainDelay: 60_000 } })
    t.after(() => app.child.kill('SIGKILL'))
    assert.equal((await get(app.port, '/readyz')).status, 503)
    app.signal('SIGTERM')
    assert.equal((await app.exit()).code, 0)
    assert.equal(stateLogs(app, 'draining').length, 0)
    assert.equal(stateLogs(app, 'stopping').length, 1)
  })

  test('each phase change is logged once, with durations and connection counts', async (t) => {
    const app = await startApp({ options: { drainDelay: 20 } })
    t.after(() => app.child.kill('SIGKILL'))
    app.signal('SIGTERM')
    await app.exit()
    const states = app
      .logs()
      .filter((line) => line.event === 'state')
      .map((line) => line.state)
    assert.deepEqual(states, ['ready', 'draining', 'stopping', 'stopped'])
    const [draining] = stateLogs(app, 'draining')
    assert.equal(draining?.reason, 'SIGTERM')
    assert.equal(draining?.drainDelayMs, 20)
    assert.equal(typeof draining?.connections, 'number')
    const [stopping] = stateLogs(app, 'stopping')
    assert.equal(typeof stopping?.drainMs, 'number')
    const [stopped] = stateLogs(app, 'stopped')
    assert.deepEqual(Object.keys(stopped?.durations as object), [
      'drainMs',
      'closeMs',
      'hooksMs',
      'totalMs',
    ])
    assert.deepEqual(stopped?.connections, { closed: 0, forced: 0 })
  })
})

describe('hooks', () => {
  test('onShutdown hooks run last registered first; a throwing or hanging hook is reported and the next still runs; exit 1', async (t) => {
    const app = await startApp({
      drain: [{ name: 'consumers', does: 'ok' }],
      hooks: [
        { name: 'db', does: 'ok' },
        { name: 'cache', does: 'hang', timeout: 30 },
        { name: 'queue', does: 'throw' },
      ],
      options: { drainDelay: 30 },
    })
    t.after(() => app.child.kill('SIGKILL'))
    app.signal('SIGTERM')
    assert.equal((await app.exit()).code, 1)
    const order = app
      .stdout()
      .split('\n')
      .filter((line) => /^(hook|drain|state) /.test(line))
    assert.deepEqual(order, [
      'state ready',
      'state draining',
      'drain consumers',
      'state stopping',
      'hook queue',
      'hook cache',
      'hook db',
      'state stopped',
    ])
    const hookLogs = app.logs().filter((line) => line.event === 'hook')
    assert.deepEqual(
      hookLogs.map((line) => [line.hook, line.status]),
      [
        ['queue', 'error'],
        ['cache', 'timeout'],
      ],
    )
    assert.equal(hookLogs[0]?.error, 'queue broke')
  })

  test('all hooks succeeding exits 0', async (t) => {
    const app = await startApp({
      hooks: [{ name: 'db', does: 'ok' }],
      drain: [{ name: 'ws', does: 'ok' }],
    })
    t.after(() => app.child.kill('SIGKILL'))
    app.signal('SIGINT')
    assert.equal((await app.exit()).code, 0)
    assert.match(app.stdout(), /drain ws[\s\S]*hook db/)
  })
})

test('the process is gone by drainDelay + shutdownTimeout + hook budget + margin, whatever the app does', async (t) => {
  // Everything that could hold the process: a request that never ends, a hook and a drain
  // callback that never settle, an interval that keeps the event loop busy.
  const app = await startApp({
    options: { drainDelay: 50, shutdownTimeout: 50, hookTimeout: 50 },
    hooks: [{ name: 'stuck', does: 'hang' }],
    drain: [{ name: 'stuck-drain', does: 'hang' }],
    stubborn: true,
  })
  t.after(() => app.child.kill('SIGKILL'))
  get(app.port, '/?delay=600000').catch(() => {})
  await app.waitFor('request /?delay=600000')
  app.signal('SIGTERM')
  // Budget: 50 + 50 + (50 + 50) + 1000 margin; the labelled wait is the assertion.
  const exit = await app.exit(5_000)
  assert.equal(exit.code, 1)
})

test('an http and an https server drain as one: one signal, one readiness answer, one outcome', async (t) => {
  const app = await startApp({ https: true, options: { drainDelay: 150 } })
  t.after(() => app.child.kill('SIGKILL'))
  const httpsPort = app.httpsPort as number
  assert.equal((await get(httpsPort, '/readyz', { tls: true })).status, 200)
  const agent = new (await import('node:https')).Agent({
    keepAlive: true,
    rejectUnauthorized: false,
  })
  t.after(() => agent.destroy())
  const slowTls = get(httpsPort, '/?delay=400', {
    tls: true,
    agent: agent as unknown as http.Agent,
  })
  const slowPlain = get(app.port, '/?delay=400')
  await app.waitFor(/request \/\?delay=400[\s\S]*request \/\?delay=400/)
  app.signal('SIGTERM')
  await app.state('draining')
  assert.equal((await get(app.port, '/readyz')).status, 503)
  assert.equal((await get(httpsPort, '/readyz', { tls: true })).status, 503)
  const [tlsResponse, plainResponse] = await Promise.all([slowTls, slowPlain])
  assert.equal(tlsResponse.body, 'GET / 400')
  assert.equal(tlsResponse.headers.connection, 'close')
  assert.equal(plainResponse.body, 'GET / 400')
  assert.equal((await app.exit()).code, 0)
  assert.equal(stateLogs(app, 'stopped').length, 1)
  assert.equal(stateLogs(app, 'draining').length, 1)
})

test('two lameduck() calls in one process (two servers set up apart): the first to finish does not end the process while the other drains; exit 0 once both are done', async (t) => {
  const app = await startApp({ https: true, separate: true, options: { drainDelay: 150 } })
  t.after(() => app.child.kill('SIGKILL'))
  const httpsPort = app.httpsPort as number
  // The https server has a request in flight; the http server, none: its lifecycle stops
  // first.
  const slow = get(httpsPort, '/?delay=1500', { tls: true })
  await app.waitFor('request /?delay=1500')
  app.signal('SIGTERM')
  const response = await slow
  assert.equal(response.status, 200)
  assert.equal(response.body, 'GET / 1500')
  const exit = await app.exit(10_000)
  assert.equal(exit.code, 0)
  assert.equal(stateLogs(app, 'stopped').length, 2)
})

for (const kind of [true, 'async'] as const) {
  test(`a 'state' listener that ${kind === 'async' ? 'is async and rejects' : 'throws'} is reported and the shutdown goes on: the in-flight request completes, exit 0`, async (t) => {
    const app = await startApp({ throwingState: kind, options: { drainDelay: 300 } })
    t.after(() => app.child.kill('SIGKILL'))
    const inFlight = new RawConnection(app.port)
    inFlight.request('/?delay=800')
    await app.waitFor('request /?delay=800')
    app.signal('SIGTERM')
    await inFlight.waitFor('GET / 800')
    assert.match(inFlight.data, /^HTTP\/1\.1 200 /)
    const exit = await app.exit(10_000)
    assert.equal(exit.code, 0)
    const reported = app.logs().filter((line) => line.event === 'state-listener')
    // The process exits right after 'stopped': an async listener's promise is left behind.
    assert.deepEqual(
      reported.map((line) => line.state),
      kind === 'async'
        ? ['ready', 'draining', 'stopping']
        : ['ready', 'draining', 'stopping', 'stopped'],
    )
    assert.equal(reported[1]?.error, 'listener broke on draining')
  })
}
