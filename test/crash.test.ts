// shutdownOnCrash: a real process that throws or leaves a rejection unhandled while a
// request is in flight.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { lameduck } from 'lameduck'
import { startApp } from './app-process.js'
import { within } from './helpers.js'
import { get, RawConnection } from './http-client.js'

describe('shutdownOnCrash', () => {
  for (const how of ['throw', 'reject'] as const) {
    const origin = how === 'throw' ? 'uncaughtException' : 'unhandledRejection'
    test(`an ${origin} drains, lets the request in flight finish, runs the hooks and exits 1`, async (t) => {
      const app = await startApp({
        fixture: 'runtime-app',
        options: { shutdownOnCrash: true, drainDelay: 300 },
        env: { FIXTURE_HOOK: 'flush' },
      })
      t.after(() => app.child.kill('SIGKILL'))
      await app.state('ready')
      const inFlight = new RawConnection(app.port)
      inFlight.request('/?delay=700')
      await app.waitFor('request /?delay=700')
      assert.equal((await get(app.port, `/crash?how=${how}`)).body, 'crashing')
      await app.state('draining')
      const ready = await get(app.port, '/readyz')
      assert.equal(ready.status, 503, 'readiness answers 503 in the lame duck a crash starts')
      await inFlight.waitFor('GET / 700')
      assert.match(inFlight.data, /^HTTP\/1.1 200 OK/)
      assert.match(inFlight.data, /Connection: close/i)
      await app.waitFor('hook flush')
      assert.deepEqual(await app.exit(), { code: 1, signal: null })
      const crash = app.logs().find((line) => line.event === 'crash')
      assert.equal(crash?.origin, origin)
      assert.equal(crash?.error, how === 'throw' ? 'thrown on purpose' : 'rejected on purpose')
      assert.equal(crash?.level, 'error')
      const stopped = app.logs().find((line) => line.state === 'stopped')
      assert.equal(stopped?.reason, origin)
      assert.equal(stopped?.exitCode, 1)
      assert.equal(stopped?.forced, undefined, 'nothing was forced: the request completed')
    })
  }

  test('a crash during the shutdown is logged and the shutdown goes on', async (t) => {
    const app = await startApp({
      fixture: 'runtime-app',
      options: { shutdownOnCrash: true, drainDelay: 60_000 },
    })
    t.after(() => app.child.kill('SIGKILL'))
    await app.state('ready')
    const inFlight = new RawConnection(app.port)
    inFlight.request('/?delay=500')
    await app.waitFor('request /?delay=500')
    await get(app.port, '/crash?how=throw')
    await app.state('draining')
    await get(app.port, '/crash?how=reject&times=15')
    await app.waitFor('(further ones are not logged)')
    // A signal still forces what a crash started.
    app.signal('SIGTERM')
    assert.deepEqual(await app.exit(), { code: 1, signal: null })
    const crashes = app.logs().filter((line) => line.event === 'crash')
    assert.deepEqual(
      crashes.map((line) => [line.origin, line.during]),
      [
        ['uncaughtException', undefined],
        ...Array.from({ length: 10 }, () => ['unhandledRejection', 'draining']),
      ],
      'the first crash and the first 10 during the shutdown',
    )
  })

  test('a crash during a shutdown a signal started makes the exit code 1', async (t) => {
    const app = await startApp({
      fixture: 'runtime-app',
      options: { shutdownOnCrash: true, drainDelay: 300 },
      env: { FIXTURE_DRAIN_THROWS: '1' },
    })
    t.after(() => app.child.kill('SIGKILL'))
    await app.state('ready')
    const inFlight = new RawConnection(app.port)
    inFlight.request('/?delay=1000')
    await app.waitFor('request /?delay=1000')
    app.signal('SIGTERM')
    await app.waitFor('during the shutdown (draining): thrown during the drain')
    await inFlight.waitFor('GET / 1000')
    assert.match(inFlight.data, /^HTTP\/1.1 200 OK/)
    assert.deepEqual(await app.exit(), { code: 1, signal: null })
    const stopped = app.logs().find((line) => line.state === 'stopped')
    assert.equal(stopped?.reason, 'SIGTERM')
    assert.equal(stopped?.exitCode, 1)
  })

  test('its listeners are removed when the shutdown ends', async () => {
    const before = process.listenerCount('uncaughtException')
    const ld = lameduck([], {
      probes: false,
      signals: [],
      exit: false,
      logger: false,
      shutdownOnCrash: true,
    })
    assert.equal(process.listenerCount('uncaughtException'), before + 1)
    assert.equal(process.listenerCount('unhandledRejection') > 0, true)
    await within('the shutdown', ld.shutdown())
    assert.equal(process.listenerCount('uncaughtException'), before)
  })

  test('without it, an uncaught exception ends the process at once and the request in flight is cut', async (t) => {
    const app = await startApp({ fixture: 'runtime-app', options: { drainDelay: 300 } })
    t.after(() => app.child.kill('SIGKILL'))
    await app.state('ready')
    const inFlight = new RawConnection(app.port)
    inFlight.request('/?delay=2000')
    await app.waitFor('request /?delay=2000')
    await get(app.port, '/crash?how=throw')
    assert.deepEqual(await app.exit(), { code: 1, signal: null })
    await inFlight.closed
    assert.equal(inFlight.data, '', 'the request in flight got no answer')
  })
})
