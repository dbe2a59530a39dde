// Readiness ergonomics: holding readiness on tasks, the first-ready promise, check results
// in the readiness body.
import assert from 'node:assert/strict'
import http from 'node:http'
import { describe, test } from 'node:test'
import { lameduck } from 'lameduck'
import { startApp } from './app-process.js'
import { within } from './helpers.js'
import { get } from './http-client.js'

const body = async (port: number, path: string) => {
  const answer = await get(port, path)
  return { status: answer.status, body: JSON.parse(answer.body) as Record<string, unknown> }
}

describe('holdReadiness and whenFirstReady', () => {
  test('a task held at start keeps readiness at 503 naming it; once it settles the process is first ready', async (t) => {
    const app = await startApp({ fixture: 'runtime-app', env: { FIXTURE_HOLD_MS: '60000' } })
    t.after(() => app.child.kill('SIGKILL'))
    assert.deepEqual(await body(app.port, '/readyz'), {
      status: 503,
      body: { status: 'starting', waitingFor: ['warm-cache'] },
    })
    assert.equal((await get(app.port, '/startupz')).status, 503)
    assert.doesNotMatch(app.stdout(), /first ready/)
    await get(app.port, '/release')
    await app.waitFor('first ready')
    assert.deepEqual(await body(app.port, '/readyz'), { status: 200, body: { status: 'ready' } })
    const holds = app.logs().filter((line) => line.event === 'hold')
    assert.deepEqual(
      holds.map((line) => [line.level, line.task, line.ok]),
      [
        ['info', 'warm-cache', undefined],
        ['info', 'warm-cache', true],
      ],
    )
  })

  test('a task held after the first ready makes the process not ready until it settles', async (t) => {
    const app = await startApp({ fixture: 'runtime-app' })
    t.after(() => app.child.kill('SIGKILL'))
    await app.waitFor('first ready')
    await get(app.port, '/hold?name=reload-config')
    assert.deepEqual(await body(app.port, '/readyz'), {
      status: 503,
      body: { status: 'not ready', waitingFor: ['reload-config'] },
    })
    assert.equal((await get(app.port, '/startupz')).status, 200, 'it did start')
    await get(app.port, '/release')
    assert.equal((await get(app.port, '/readyz')).status, 200)
  })

  test('whenFirstReady rejects with LAMEDUCK_ERR_SHUTTING_DOWN when the shutdown comes first', async (t) => {
    const app = await startApp({ fixture: 'runtime-app', env: { FIXTURE_HOLD_MS: '60000' } })
    t.after(() => app.child.kill('SIGKILL'))
    app.signal('SIGTERM')
    await app.waitFor('first ready failed LAMEDUCK_ERR_SHUTTING_DOWN')
    assert.deepEqual(await app.exit(), { code: 0, signal: null })
  })

  test('a rejected task releases readiness and is logged; bad arguments throw', async (t) => {
    const warnings: Record<string, unknown>[] = []
    const server = http.createServer((_req, res) => res.end('app'))
    const ld = lameduck(server, {
      signals: [],
      exit: false,
      logger: { info() {}, error() {}, warn: (fields) => warnings.push(fields) },
    })
    t.after(() => ld.shutdown())
    let fail: (error: Error) => void = () => {}
    ld.holdReadiness('migrations', [
      Promise.resolve(),
      new Promise((_, reject) => {
        fail = reject
      }),
    ])
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    assert.deepEqual(await body(port, '/readyz'), {
      status: 503,
      body: { status: 'starting', waitingFor: ['migrations'] },
    })
    fail(new Error('lock held'))
    await within('first ready', ld.whenFirstReady())
    assert.deepEqual(warnings, [
      { event: 'hold', task: 'migrations', ok: false, error: 'lock held' },
    ])
    assert.throws(
      () => ld.holdReadiness('', Promise.resolve()),
      /name passed to holdReadiness to be a non-empty string/,
    )
    assert.throws(
      () => ld.holdReadiness('x', 42 as unknown as Promise<void>),
      /task 'x' passed to holdReadiness to be a promise or a non-empty array of promises, got `42` \(number\)/,
    )
  })
})

describe('check results in the readiness body', () => {
  test('each check is listed; with probes.details a passing check shows what it returned; a failure never shows its message', async (t) => {
    const app = await startApp({
      fixture: 'runtime-app',
      options: { probes: { details: true } },
      env: { FIXTURE_CHECKS: '1' },
    })
    t.after(() => app.child.kill('SIGKILL'))
    assert.deepEqual(await body(app.port, '/readyz'), {
      status: 200,
      body: {
        status: 'ready',
        checks: { db: { ok: true, details: { pool: 3 } }, cache: { ok: true } },
      },
    })
    await get(app.port, '/break-cache')
    const failing = await get(app.port, '/readyz')
    assert.equal(failing.status, 503)
    assert.deepEqual(JSON.parse(failing.body), {
      status: 'failing',
      failed: ['cache'],
      checks: { db: { ok: true, details: { pool: 3 } }, cache: { ok: false, failure: 'error' } },
    })
    assert.doesNotMatch(failing.body, /10\.0\.0\.7/)
  })

  test('without probes.details what a check returned stays out of the body', async (t) => {
    const app = await startApp({ fixture: 'runtime-app', env: { FIXTURE_CHECKS: '1' } })
    t.after(() => app.child.kill('SIGKILL'))
    assert.deepEqual(await body(app.port, '/readyz'), {
      status: 200,
      body: { status: 'ready', checks: { db: { ok: true }, cache: { ok: true } } },
    })
  })
})
