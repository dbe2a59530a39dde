// `lameduck serve` as a supervisor: real child processes, real signals, exit codes.
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import http from 'node:http'
import { test } from 'node:test'
import { exited, spawnNode, within } from '../helpers.js'
import { bin, ready, request, startServe } from './serve-helpers.js'

/** The child's pid, from lameduck serve's start-up log line. */
function childPid(output: string): number {
  return Number(/child pid (\d+)/.exec(output)?.[1])
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return false
  }
}

test('SIGTERM: readiness 503 and Connection: close during the drain, the in-flight request completes, and only then the child is stopped', async () => {
  const serve = await startServe(['--drain-delay', '400ms'])
  await ready(serve)
  const agent = new http.Agent({ keepAlive: true })
  const slow = request(serve.port, '/slow?ms=700', { agent })
  await serve.waitFor('upstream: request /slow', 'the slow request to reach the upstream')
  serve.child.kill('SIGTERM')
  await serve.waitFor('"state":"draining"', 'the drain to start')

  const readiness = await request(serve.port, '/readyz')
  assert.equal(readiness.status, 503)
  assert.equal(JSON.parse(readiness.body).status, 'draining')
  const during = await request(serve.port, '/echo', { agent })
  assert.equal(during.status, 200, 'served normally during the lame duck')
  assert.equal(during.headers.connection, 'close')
  assert.ok(!serve.stdout().includes('upstream: SIGTERM'), 'the child is not told during the drain')

  const reply = await slow
  assert.equal(reply.status, 200)
  assert.equal(reply.headers.connection, 'close')
  assert.ok(
    !serve.stdout().includes('upstream: SIGTERM'),
    'the child is stopped after its last in-flight request completed',
  )
  const exit = await exited(serve.child, 'lameduck serve to exit')
  assert.equal(exit.code, 0, serve.stderr())
  assert.match(serve.stdout(), /upstream: SIGTERM[\s\S]*upstream: closed/)
  assert.match(serve.stderr(), /"event":"child-exit"/)
  agent.destroy()
})

test('while the upstream starts, requests get 503 at once and probes say starting; ready once it listens', async () => {
  const serve = await startServe([], undefined, { ...process.env, LISTEN_DELAY_MS: '600' })
  const early = await request(serve.port, '/echo')
  assert.equal(early.status, 503)
  assert.equal(early.headers['retry-after'], '1')
  assert.equal((await request(serve.port, '/startupz')).status, 503)
  assert.equal((await request(serve.port, '/readyz')).status, 503)
  await ready(serve)
  assert.equal((await request(serve.port, '/startupz')).status, 200)
  assert.equal((await request(serve.port, '/readyz')).status, 200)
  assert.equal((await request(serve.port, '/echo')).status, 200)
  serve.child.kill('SIGTERM')
  assert.equal((await exited(serve.child, 'lameduck serve to exit')).code, 0)
})

test('--upstream-health: readiness follows the upstream health path', async () => {
  const serve = await startServe(['--upstream-health', '/health'])
  await ready(serve)
  assert.equal((await request(serve.port, '/readyz')).status, 200)
  await request(serve.port, '/__health?status=503')
  const failing = await request(serve.port, '/readyz')
  assert.equal(failing.status, 503)
  assert.deepEqual(JSON.parse(failing.body), {
    status: 'failing',
    failed: ['upstream'],
    checks: { upstream: { ok: false, failure: 'error' } },
  })
  assert.equal((await request(serve.port, '/livez')).status, 200, 'liveness does not follow it')
  await request(serve.port, '/__health?status=200')
  assert.equal((await request(serve.port, '/readyz')).status, 200)
  serve.child.kill('SIGTERM')
  await exited(serve.child, 'lameduck serve to exit')
})

test('a child that exits on its own ends lameduck serve at once with its exit code', async () => {
  const serve = await startServe(['--drain-delay', '10s'])
  await ready(serve)
  await request(serve.port, '/crash?code=7')
  const exit = await exited(serve.child, 'lameduck serve to exit after the child')
  assert.equal(exit.code, 7)
  assert.match(serve.stderr(), /the child exited on its own \(exit code 7\); exiting 7/)
  // serve ending is not the application closing its listener early.
  assert.doesNotMatch(serve.stderr(), /listener-closed-early/)
})

test('a child that ignores the stop signal is SIGKILLed after --child-stop-timeout: exit 1', async () => {
  const serve = await startServe(['--child-stop-timeout', '300ms'], undefined, {
    ...process.env,
    ON_SIGTERM: 'ignore',
  })
  await ready(serve)
  const pid = childPid(serve.stderr())
  serve.child.kill('SIGTERM')
  const exit = await exited(serve.child, 'lameduck serve to exit')
  assert.equal(exit.code, 1)
  assert.match(serve.stderr(), /"event":"child-killed"/)
  assert.equal(alive(pid), false, 'the child is gone')
})

test("a child that fails when stopped: lameduck serve exits with the child's code", async () => {
  const serve = await startServe([], undefined, { ...process.env, ON_SIGTERM: 'exit3' })
  await ready(serve)
  serve.child.kill('SIGTERM')
  const exit = await exited(serve.child, 'lameduck serve to exit')
  assert.equal(exit.code, 3)
  assert.match(serve.stderr(), /the child ended with exit code 3; exiting 3/)
})

test('--stop-signal chooses what the child gets; the child leads its own process group', async () => {
  const serve = await startServe(['--stop-signal', 'SIGINT'])
  await ready(serve)
  const pid = childPid(serve.stderr())
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const pgid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])
  assert.equal(pgid, pid, 'the child is its own process group leader')
  serve.child.kill('SIGTERM')
  const exit = await exited(serve.child, 'lameduck serve to exit')
  assert.equal(exit.code, 0)
  assert.match(serve.stdout(), /upstream: SIGINT/)
  assert.doesNotMatch(serve.stdout(), /upstream: SIGTERM/)
})

test('a second signal forces: the in-flight request is cut, the child stopped, exit 1', async () => {
  const serve = await startServe(['--drain-delay', '5s'])
  await ready(serve)
  const slow = request(serve.port, '/slow?ms=4000').then(
    () => 'answered',
    () => 'cut',
  )
  await serve.waitFor('upstream: request /slow', 'the slow request to reach the upstream')
  serve.child.kill('SIGTERM')
  await serve.waitFor('"state":"draining"', 'the drain to start')
  serve.child.kill('SIGTERM')
  const exit = await exited(serve.child, 'lameduck serve to exit after the second signal')
  assert.equal(exit.code, 1)
  assert.equal(await slow, 'cut')
})

test('bad input: one clear line and exit 2', async () => {
  const cases: [string[], RegExp][] = [
    [['--port', '8080'], /expects the command to run after --/],
    // The command without `--`: its own flags are not taken for serve's.
    [
      ['--port', '0', 'python3', '-m', 'http.server'],
      /^lameduck serve: unexpected argument 'python3'; the command goes after --, as in: lameduck serve --port 0 -- python3 -m http\.server$/,
    ],
    [['stray', '--', 'true'], /unexpected argument 'stray' before --/],
    [['--bogus', '--', 'true'], /unknown option '--bogus'/],
    [['--drain-delay', 'soon', '--', 'true'], /--drain-delay expects a duration/],
    [['--upstream', 'localhost', '--', 'true'], /--upstream expects host:port/],
    [['--stop-signal', 'SIGKILL', '--', 'true'], /--stop-signal expects a signal name/],
    [
      ['--port', '0', '--', 'lameduck-no-such-command'],
      /cannot start 'lameduck-no-such-command': command not found/,
    ],
    [['--workers', '2', 'app.js'], /cannot find the app script 'app.js'/],
  ]
  for (const [args, message] of cases) {
    const run = spawnNode(bin, ['serve', ...args], {
      env: { ...process.env, LAMEDUCK_DRAIN_DELAY_MS: '' },
    })
    const exit = await exited(run.child, `lameduck serve ${args.join(' ')}`)
    assert.equal(exit.code, 2, `${args.join(' ')}: ${run.stderr()}`)
    // One line and nothing else: no log line of a proxy that started, then stopped.
    const lines = run.stderr().trim().split('\n')
    assert.equal(lines.length, 1, run.stderr())
    assert.equal(run.stdout(), '', `${args.join(' ')} printed on stdout`)
    assert.match(lines[0] as string, message)
    assert.doesNotMatch(run.stderr(), /listener-closed-early/)
  }
  const env = spawnNode(bin, ['serve', '--', 'true'], {
    env: { ...process.env, LAMEDUCK_CHILD_STOP_TIMEOUT_MS: 'ten' },
  })
  assert.equal((await exited(env.child, 'bad env')).code, 2)
  assert.match(env.stderr(), /LAMEDUCK_CHILD_STOP_TIMEOUT_MS expects a whole number/)
})

test('--help shows the options and examples', async () => {
  const run = spawnNode(bin, ['serve', '--help'])
  assert.equal((await exited(run.child, 'help')).code, 0)
  assert.match(run.stdout(), /--child-stop-timeout DURATION/)
  assert.match(run.stdout(), /Examples/)
})

test('a SIGKILLed lameduck serve takes its child with it (parent-death signal, where setpriv exists)', async (t) => {
  if (!['/usr/bin/setpriv', '/bin/setpriv'].some((p) => existsSync(p))) {
    t.skip('util-linux setpriv is not installed')
    return
  }
  const serve = await startServe([])
  await ready(serve)
  const pid = childPid(serve.stderr())
  assert.equal(alive(pid), true)
  serve.child.kill('SIGKILL')
  await exited(serve.child, 'lameduck serve to die')
  await within(
    'the child to die with its parent',
    (async () => {
      while (alive(pid)) await new Promise((resolve) => setTimeout(resolve, 10))
    })(),
  )
})

test('a fixed --upstream: the child gets its port in PORT; a child that dies during the drain fails the exit', async () => {
  const probe = http.createServer()
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve))
  const port = (probe.address() as { port: number }).port
  await new Promise((resolve) => probe.close(resolve))
  const serve = await startServe(['--upstream', `127.0.0.1:${port}`, '--drain-delay', '500ms'])
  await serve.waitFor(`upstream: listening on ${port}`, 'the child to listen on the given port')
  await ready(serve)
  serve.child.kill('SIGTERM')
  await serve.waitFor('"state":"draining"', 'the drain to start')
  await request(serve.port, '/crash?code=5')
  const exit = await exited(serve.child, 'lameduck serve to exit')
  assert.equal(exit.code, 5, 'the child failed on its own during the drain')
  assert.match(serve.stderr(), /the child ended with exit code 5; exiting 5/)
})
