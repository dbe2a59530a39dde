// A reload of `lameduck serve --workers` whose replacements listen at once but become ready
// only later (an app that warms up): the pod stays ready, and no connection reaches a worker
// before it is ready. Real primary, real workers, new connections on real sockets.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { exited } from '../helpers.js'
import { app, request, startPod } from './workers-helpers.js'

test('a reload with replacements that take 1.5 s to be ready: readiness 200 throughout, and no request reaches a worker before it is ready', async () => {
  // Workers 1 and 2 are ready at once; 3 and 4 (the replacements) listen at once and are
  // ready 1.5 s later.
  const pod = await startPod(['--workers', '2', '--reload-drain', '200ms', app], {
    env: { FIXTURE_SLOW_FROM: '3', FIXTURE_READY_AFTER_MS: '1500' },
  })
  try {
    let reloading = true
    const answers: { path: string; status: number; body: string }[] = []
    const loop = async () => {
      for (let n = 0; reloading && n < 2_000; n++) {
        const path = n % 2 === 0 ? '/' : '/readyz'
        const answer = await request(pod.port, path)
        answers.push({ path, status: answer.status, body: answer.body })
      }
    }
    const from = pod.mark()
    pod.child.kill('SIGHUP')
    const loops = Promise.all([loop(), loop(), loop()])
    const done = await pod.log({ event: 'reload', phase: 'done' }, { from, ms: 20_000 })
    reloading = false
    await loops
    assert.equal(done.replaced, 2)
    const readiness = answers.filter((a) => a.path === '/readyz')
    const served = answers.filter((a) => a.path === '/').map((a) => JSON.parse(a.body))
    assert.ok(readiness.length > 20, `${readiness.length} readiness probes during the reload`)
    assert.deepEqual(
      readiness.filter((a) => a.status !== 200),
      [],
      'readiness answers 200 throughout the reload',
    )
    assert.deepEqual(
      served.filter((s) => s.state === 'starting'),
      [],
      'no request is served by a worker that is not ready yet',
    )
    // The replacements did serve once ready.
    assert.ok(served.some((s) => s.worker >= 3))
    pod.child.kill('SIGTERM')
    assert.equal((await exited(pod.child, 'the pod to exit', 10_000)).code, 0)
  } finally {
    pod.child.kill('SIGKILL')
  }
})

test('a reload whose replacement fails its readiness checks keeps the old workers, and the pod stays ready', async () => {
  const pod = await startPod(['--workers', '2', '--ready-timeout', '1s', app], {
    env: { FIXTURE_FAILING_CHECK_FROM: '3' },
  })
  try {
    const from = pod.mark()
    pod.child.kill('SIGHUP')
    const failed = await pod.log({ event: 'reload', phase: 'failed' }, { from, ms: 15_000 })
    assert.equal(failed.replaced, 0)
    assert.match(
      String(failed.reason),
      /readiness checks still failed after 1000 ms \(db: unreachable\)/,
    )
    await pod.log({ event: 'worker-exit', worker: 3 }, { from })
    for (let i = 0; i < 6; i++) {
      assert.equal((await request(pod.port, '/readyz')).status, 200)
      const served = JSON.parse((await request(pod.port, '/')).body)
      assert.ok(served.worker <= 2, `served by worker ${served.worker}, an old one`)
    }
    pod.child.kill('SIGTERM')
    assert.equal((await exited(pod.child, 'the pod to exit', 10_000)).code, 0)
  } finally {
    pod.child.kill('SIGKILL')
  }
})
