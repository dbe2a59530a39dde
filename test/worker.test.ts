// A worker with no HTTP server (lameduck([])): probes on a server of its own, and the same
// shutdown contract for the jobs in hand. Real processes, real signals.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { lameduck } from 'lameduck'
import { startApp } from './app-process.js'
import { within } from './helpers.js'
import { get } from './http-client.js'

describe('lameduck([]) for a worker without an HTTP server', () => {
  test('probes answer on probes.port; on SIGTERM onDrain stops consuming, the job in hand finishes, exit 0', async (t) => {
    const app = await startApp({
      fixture: 'queue-worker',
      options: { drainDelay: 300 },
      // Long enough that the job is still in hand when the hooks run, after the drain.
      env: { JOB_MS: '3000' },
    })
    t.after(() => app.child.kill('SIGKILL'))
    await app.state('ready')
    assert.deepEqual(JSON.parse((await get(app.port, '/readyz')).body), { status: 'ready' })
    const live = await get(app.port, '/livez')
    assert.equal(live.status, 200)
    assert.deepEqual(JSON.parse(live.body).checks, { poller: { ok: true } })
    await app.waitFor('job 1 start')
    app.signal('SIGTERM')
    await app.state('draining')
    const draining = await get(app.port, '/readyz')
    assert.equal(draining.status, 503)
    assert.notEqual(JSON.parse(draining.body).status, 'ready')
    assert.equal((await get(app.port, '/livez')).status, 200)
    assert.deepEqual(await app.exit(15_000), { code: 0, signal: null })
    const out = app.stdout()
    assert.match(out, /job 1 done/, 'the job in hand finished')
    assert.ok(
      out.indexOf('job 1 done') > out.indexOf('hook jobs'),
      'the hook waited for the job in hand',
    )
    assert.doesNotMatch(out.slice(out.indexOf('drain stop-consuming')), /job \d+ start/)
    const stopped = app.logs().find((line) => line.state === 'stopped')
    assert.equal(stopped?.exitCode, 0)
    assert.deepEqual(stopped?.connections, { closed: 0, forced: 0 })
  })

  test('a job that outlives its hook timeout makes the exit code 1', async (t) => {
    const app = await startApp({
      fixture: 'queue-worker',
      env: { JOB_MS: '60000', FIXTURE_HOOK_TIMEOUT: '200' },
    })
    t.after(() => app.child.kill('SIGKILL'))
    await app.waitFor('job 1 start')
    app.signal('SIGTERM')
    assert.deepEqual(await app.exit(), { code: 1, signal: null })
    const hook = app.logs().find((line) => line.event === 'hook')
    assert.equal(hook?.hook, 'jobs')
    assert.equal(hook?.status, 'timeout')
  })

  test('with probes: false, the shutdown contract alone', async () => {
    const ld = lameduck([], { probes: false, signals: [], exit: false, logger: false })
    await within('ready', ld.whenFirstReady())
    let drained = false
    ld.onDrain(() => {
      drained = true
    })
    const outcome = await within('the shutdown', ld.shutdown('test'))
    assert.equal(drained, true)
    assert.equal(outcome.exitCode, 0)
    assert.equal(outcome.drained, true)
  })
})
