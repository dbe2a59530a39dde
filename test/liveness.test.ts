// Liveness checks: a real process whose check can fail or hang; liveness stops checking
// once the shutdown has started.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { startApp } from './app-process.js'
import { get } from './http-client.js'

const body = async (port: number, path: string) => {
  const answer = await get(port, path)
  return { status: answer.status, body: JSON.parse(answer.body) as Record<string, unknown> }
}

describe('livenessChecks', () => {
  test('liveness answers 503 naming the failing check, and 200 again once it passes; its reason is logged', async (t) => {
    const app = await startApp({ fixture: 'runtime-app', env: { FIXTURE_LIVENESS: '1' } })
    t.after(() => app.child.kill('SIGKILL'))
    assert.deepEqual(await body(app.port, '/livez'), {
      status: 200,
      body: { status: 'alive', checks: { loop: { ok: true }, slow: { ok: true } } },
    })
    await get(app.port, '/wedge')
    assert.deepEqual(await body(app.port, '/livez'), {
      status: 503,
      body: {
        status: 'failing',
        failed: ['loop'],
        checks: { loop: { ok: false, failure: 'false' }, slow: { ok: true } },
      },
    })
    await app.waitFor("liveness check 'loop' failing: returned false")
    const logged = app.logs().find((line) => line.event === 'check')
    assert.equal(logged?.probe, 'liveness')
    // Readiness does not run liveness checks.
    assert.equal((await get(app.port, '/readyz')).status, 200)
  })

  test('a check slower than checkTimeout fails the probe as a timeout', async (t) => {
    const app = await startApp({
      fixture: 'runtime-app',
      options: { checkTimeout: 100 },
      env: { FIXTURE_LIVENESS: '1' },
    })
    t.after(() => app.child.kill('SIGKILL'))
    await get(app.port, '/slow-liveness?ms=5000')
    assert.deepEqual(await body(app.port, '/livez'), {
      status: 503,
      body: {
        status: 'failing',
        failed: ['slow'],
        checks: { loop: { ok: true }, slow: { ok: false, failure: 'timeout' } },
      },
    })
  })

  test('once the shutdown has started liveness answers 200 without running the checks', async (t) => {
    const app = await startApp({
      fixture: 'runtime-app',
      options: { drainDelay: 60_000 },
      env: { FIXTURE_LIVENESS: '1' },
    })
    t.after(() => app.child.kill('SIGKILL'))
    await get(app.port, '/wedge')
    assert.equal((await get(app.port, '/livez')).status, 503)
    app.signal('SIGTERM')
    await app.state('draining')
    assert.deepEqual(await body(app.port, '/livez'), { status: 200, body: { status: 'alive' } })
  })

  test('without liveness checks the answer is unchanged', async (t) => {
    const app = await startApp({ fixture: 'runtime-app' })
    t.after(() => app.child.kill('SIGKILL'))
    assert.deepEqual(await body(app.port, '/livez'), { status: 200, body: { status: 'alive' } })
  })
})
