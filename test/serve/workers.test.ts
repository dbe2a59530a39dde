// lameduck serve --workers end to end: the real CLI, real cluster workers, real signals,
// real keep-alive clients.
import assert from 'node:assert/strict'
import { rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { exited, fromRoot, spawnNode } from '../helpers.js'
import { app, cleanEnv, load, type Pod, request, startPod } from './workers-helpers.js'

const workerPids = (pod: Pod) =>
  pod
    .logs()
    .filter((l) => l.event === 'worker-start')
    .map((l) => l.pid as number)

test('readiness is the pod’s: 503 from every worker until the last one is ready', async () => {
  const pod = await startPod(['--workers', '2', app], {
    env: { FIXTURE_LATE_WORKER: '2' },
    ready: false,
  })
  try {
    await pod.log({ event: 'worker-ready', worker: 1 })
    const late = (await pod.log({ event: 'worker-start', worker: 2 })).pid as number
    // Fresh connections are spread over both workers; every answer is the pod's.
    for (let i = 0; i < 6; i++) {
      const answer = await request(pod.port, '/readyz')
      assert.equal(answer.status, 503, answer.body)
      assert.match(answer.body, /"status":"(starting|not ready)"/)
    }
    process.kill(late, 'SIGUSR2')
    await pod.log({ event: 'pod', state: 'ready' })
    for (let i = 0; i < 6; i++) assert.equal((await request(pod.port, '/readyz')).status, 200)
    pod.child.kill('SIGTERM')
    assert.equal((await exited(pod.child, 'the pod to exit')).code, 0)
  } finally {
    pod.child.kill('SIGKILL')
  }
})

test('SIGTERM: every worker answers 503 at once, in-flight requests finish, the primary exits last with 0', async () => {
  const pod = await startPod(['--workers', '2', '--drain-delay', '600ms', app])
  try {
    const inFlight = [request(pod.port, '/?delay=900'), request(pod.port, '/?delay=900')]
    await new Promise((resolve) => setTimeout(resolve, 50))
    pod.child.kill('SIGTERM')
    await pod.log({ event: 'pod', state: 'draining' })
    // Both workers still listen and serve during the drain; readiness is 503 in each.
    const seen = new Set<number>()
    for (let i = 0; i < 6; i++) {
      const ready = await request(pod.port, '/readyz')
      assert.equal(ready.status, 503, ready.body)
      assert.match(ready.body, /draining/)
      // Two in a row: with two workers taking turns, one of each pair lands on each.
      for (const served of [await request(pod.port, '/'), await request(pod.port, '/')]) {
        assert.equal(served.status, 200)
        assert.equal(served.connection, 'close')
        seen.add(JSON.parse(served.body).pid)
      }
    }
    assert.equal(seen.size, 2, 'both workers served during the drain')
    for (const answer of await Promise.all(inFlight)) assert.equal(answer.status, 200)
    const exit = await exited(pod.child, 'the pod to exit', 10_000)
    assert.equal(exit.code, 0, pod.stderr())
    const logs = pod.logs()
    const drains = logs.filter((l) => l.event === 'state' && l.state === 'draining')
    assert.deepEqual(
      drains.map((l) => l.drainDelayMs),
      [600, 600],
    )
    const last = logs.at(-1) as Record<string, unknown>
    assert.equal(last.event, 'stopped')
    assert.equal(last.exitCode, 0)
  } finally {
    pod.child.kill('SIGKILL')
  }
})

test('the exit code is the aggregate: one worker with a hanging hook makes it 1', async () => {
  const pod = await startPod(['--workers', '2', '--hook-timeout', '200ms', app], {
    env: { FIXTURE_HANG_HOOK: '2' },
  })
  pod.child.kill('SIGTERM')
  const exit = await exited(pod.child, 'the pod to exit', 10_000)
  assert.equal(exit.code, 1)
  const exits = pod.logs().filter((l) => l.event === 'worker-exit')
  assert.deepEqual(exits.map((l) => [l.worker, l.code]).sort(), [
    [1, 0],
    [2, 1],
  ])
  assert.equal(pod.logs().at(-1)?.exitCode, 1)
})

test('a second signal forces every worker: the pod exits 1 long before the drain ends', async () => {
  const pod = await startPod(['--workers', '2', '--drain-delay', '20s', app])
  const slow = request(pod.port, '/?delay=20000').catch((error: Error) => error)
  await new Promise((resolve) => setTimeout(resolve, 50))
  pod.child.kill('SIGTERM')
  await pod.log({ event: 'pod', state: 'draining' })
  pod.child.kill('SIGTERM')
  const exit = await exited(pod.child, 'the forced pod to exit', 8_000)
  assert.equal(exit.code, 1)
  await pod.log({ event: 'force', signal: 'SIGTERM' })
  assert.ok((await slow) instanceof Error, 'the in-flight request was cut')
})

test('SIGHUP reloads every worker one at a time with zero failed requests under keep-alive load', async () => {
  const pod = await startPod(['--workers', '2', app])
  try {
    const before = workerPids(pod)
    let finish: () => void = () => {}
    const stop = new Promise<void>((resolve) => {
      finish = resolve
    })
    const traffic = load(pod.port, stop, {
      paths: ['/', '/?delay=150', '/', '/readyz', '/', '/?delay=20'],
      maxMs: 20_000,
    })
    await new Promise((resolve) => setTimeout(resolve, 200))
    pod.child.kill('SIGHUP')
    const done = await pod.log({ event: 'reload', phase: 'done' }, { ms: 15_000 })
    assert.equal(done.replaced, 2)
    // A little more traffic on the new workers only.
    const after = new Set(workerPids(pod).filter((pid) => !before.includes(pid)))
    await new Promise((resolve) => setTimeout(resolve, 200))
    finish()
    const result = await traffic
    assert.deepEqual(result.failures, [], `${result.failures.length} of ${result.sent} failed`)
    assert.ok(result.ok > 100, `${result.ok} requests answered`)
    assert.equal(after.size, 2)
    for (const pid of [...before, ...after]) assert.ok(result.pids.has(pid), `pid ${pid} served`)
    // Order: each replacement was ready before its predecessor started to drain.
    const logs = pod.logs()
    for (const retire of logs.filter((l) => l.event === 'worker-retire')) {
      const ready = logs.findIndex(
        (l) => l.event === 'worker-ready' && l.worker === retire.replacedBy,
      )
      const draining = logs.findIndex(
        (l) => l.event === 'state' && l.state === 'draining' && l.worker === retire.worker,
      )
      assert.ok(ready !== -1 && ready < draining, `worker ${retire.replacedBy} ready first`)
    }
    pod.child.kill('SIGTERM')
    assert.equal((await exited(pod.child, 'the pod to exit')).code, 0)
  } finally {
    pod.child.kill('SIGKILL')
  }
})

test('no new connection is lost while workers close their listeners, over 3 quick reloads', async () => {
  // A retiring worker that closes at once and exits: connections the primary handed it just
  // before it learnt of the close must reach another worker, not vanish with the process.
  const pod = await startPod(['--workers', '2', '--reload-drain', '0', app])
  try {
    let finish: () => void = () => {}
    const stop = new Promise<void>((resolve) => {
      finish = resolve
    })
    const traffic = load(pod.port, stop, { concurrency: 8, fresh: 1, maxMs: 30_000 })
    for (let i = 1; i <= 3; i++) {
      const from = pod.mark()
      pod.child.kill('SIGHUP')
      await pod.log({ event: 'reload', phase: 'done' }, { from, ms: 15_000 })
    }
    finish()
    const result = await traffic
    assert.deepEqual(result.failures, [], `${result.failures.length} of ${result.sent} failed`)
    assert.ok(result.ok > 200, `${result.ok} requests answered`)
    pod.child.kill('SIGTERM')
    assert.equal((await exited(pod.child, 'the pod to exit')).code, 0)
  } finally {
    pod.child.kill('SIGKILL')
  }
})

test('SIGTERM in the middle of a reload: the retiring worker finishes its drain, the rest drain, exit 0', async () => {
  const pod = await startPod([
    '--workers',
    '2',
    '--reload-drain',
    '500ms',
    '--drain-delay',
    '300ms',
    app,
  ])
  try {
    const from = pod.mark()
    pod.child.kill('SIGHUP')
    await pod.log({ event: 'worker-retire' }, { from })
    const slow = request(pod.port, '/?delay=300')
    pod.child.kill('SIGTERM')
    assert.equal((await slow).status, 200)
    const exit = await exited(pod.child, 'the pod to exit', 10_000)
    assert.equal(exit.code, 0, pod.stderr())
    // No worker was told twice (which would have forced it).
    assert.equal(pod.logs().filter((l) => l.event === 'force').length, 0)
  } finally {
    pod.child.kill('SIGKILL')
  }
})

test('a reload whose new workers fail at start stops, and the old workers keep serving', async () => {
  const flag = join(tmpdir(), `lameduck-workers-${process.pid}-${Date.now()}`)
  const pod = await startPod(['--workers', '2', app], { env: { FIXTURE_CRASH_IF: flag } })
  try {
    const before = workerPids(pod)
    writeFileSync(flag, 'broken')
    pod.child.kill('SIGHUP')
    const failed = await pod.log({ event: 'reload', phase: 'failed' })
    assert.equal(failed.replaced, 0)
    assert.match(String(failed.reason), /exited before it was ready/)
    for (let i = 0; i < 4; i++) {
      const answer = await request(pod.port, '/')
      assert.equal(answer.status, 200)
      assert.ok(before.includes(JSON.parse(answer.body).pid))
    }
    assert.equal((await request(pod.port, '/readyz')).status, 200)
    pod.child.kill('SIGTERM')
    assert.equal((await exited(pod.child, 'the pod to exit')).code, 0)
  } finally {
    rmSync(flag, { force: true })
    pod.child.kill('SIGKILL')
  }
})

test('a crashed worker is restarted with exponential backoff; the pod is not ready meanwhile', async () => {
  const pod = await startPod(['--workers', '2', '--restart-delay', '200ms', app])
  try {
    let from = pod.mark()
    await request(pod.port, '/crash').catch(() => undefined)
    const first = await pod.log({ event: 'worker-crash', crashes: 1 }, { from })
    assert.equal(first.restartInMs, 200)
    assert.equal(first.code, 3)
    await pod.log({ event: 'pod', state: 'not ready' }, { from })
    assert.equal((await request(pod.port, '/readyz')).status, 503)
    await pod.log({ event: 'pod', state: 'ready' }, { from })
    from = pod.mark()
    await request(pod.port, '/crash').catch(() => undefined)
    const second = await pod.log({ event: 'worker-crash', crashes: 2 }, { from })
    assert.equal(second.restartInMs, 400, 'doubled: two crashes within the window')
    await pod.log({ event: 'pod', state: 'ready' }, { from })
    assert.equal((await request(pod.port, '/readyz')).status, 200)
    pod.child.kill('SIGTERM')
    assert.equal((await exited(pod.child, 'the pod to exit', 10_000)).code, 0)
  } finally {
    pod.child.kill('SIGKILL')
  }
})

test('a crash loop (workers failing at start) makes the primary exit 1', async () => {
  const flag = join(tmpdir(), `lameduck-workers-loop-${process.pid}-${Date.now()}`)
  writeFileSync(flag, 'broken')
  try {
    const pod = await startPod(
      ['--workers', '2', '--restart-delay', '20ms', '--crash-limit', '4', app],
      { env: { FIXTURE_CRASH_IF: flag }, listen: false },
    )
    const exit = await exited(pod.child, 'the primary to give up', 10_000)
    assert.equal(exit.code, 1)
    const loop = await pod.log({ event: 'crash-loop' })
    assert.equal(loop.crashes, 4)
    assert.equal(pod.logs().filter((l) => l.event === 'worker-crash').length, 3)
    assert.equal(pod.logs().at(-1)?.event, 'stopped')
  } finally {
    rmSync(flag, { force: true })
  }
})

test('a worker of some other cluster primary is left alone: lameduck() handles its own signals', async () => {
  const run = spawnNode(fromRoot('dist/test/fixtures/plain-cluster.js'), [], { env: cleanEnv() })
  try {
    await run.waitFor(/listening \d+/, 'the worker to listen')
    const pid = Number(/worker (\d+)/.exec(run.stdout())?.[1])
    process.kill(pid, 'SIGTERM')
    await run.waitFor('worker exited 0', 'the worker to drain and exit on its own SIGTERM')
    assert.doesNotMatch(run.stderr(), /"worker":/, 'its log lines are not tagged as a serve worker')
    assert.match(run.stderr(), /"state":"stopped"/)
  } finally {
    run.child.kill('SIGKILL')
  }
})
