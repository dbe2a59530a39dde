// The command line of `lameduck serve --workers`: help, bad input, and the pure parts
// (crash backoff, the CPU count behind --workers auto).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseWorkersArgs } from '../../src/cli/serve-workers.js'
import { cgroupCpuLimit } from '../../src/serve/workers/count.js'
import { CrashTracker } from '../../src/serve/workers/crashes.js'
import { exited, spawnNode } from '../helpers.js'
import { app, bin, cleanEnv } from './workers-helpers.js'

test('--help explains the command with examples and exits 0', async () => {
  const run = spawnNode(bin, ['serve', '--workers', '2', '--help'])
  assert.equal((await exited(run.child, 'lameduck serve --help')).code, 0)
  assert.match(run.stdout(), /Usage: lameduck serve --workers N\|auto/)
  assert.match(run.stdout(), /Examples\n {2}lameduck serve --workers auto/)
})

const bad: [string, string[], RegExp][] = [
  ['no --workers', [app], /the command goes after --.*lameduck serve --workers N /],
  ['zero workers', ['--workers', '0', app], /--workers must be from 1 to 1024, got '0'/],
  ['no app', ['--workers', '2'], /missing the app to run/],
  ['a missing script', ['--workers', '2', 'nope.js'], /cannot find the app script 'nope.js'/],
  [
    'a command that is not node',
    ['--workers', '2', '--', 'python3', 'app.py'],
    /must be `node \[node flags\] app.js`, got 'python3'/,
  ],
  ['node -e', ['--workers', '2', '--', 'node', '-e', '1'], /node's -e is not supported/],
  [
    'a bad duration',
    ['--workers', '2', '--drain-delay', 'soon', app],
    /--drain-delay expects a duration/,
  ],
  [
    'SIGHUP as a shutdown signal',
    ['--workers', '2', '--signals', 'SIGTERM,SIGHUP', app],
    /SIGHUP reloads the workers, so it cannot also be a shutdown signal/,
  ],
  ['an unknown option', ['--workers', '2', '--frobnicate', app], /unknown option '--frobnicate'/],
]

for (const [what, args, message] of bad) {
  test(`bad input gets one clear line and exit 2: ${what}`, async () => {
    const run = spawnNode(bin, ['serve', ...args], { env: cleanEnv() })
    assert.equal((await exited(run.child, what)).code, 2)
    assert.match(run.stderr(), /^lameduck serve: /)
    assert.match(run.stderr(), message)
    assert.equal(run.stderr().trim().split('\n').length, 1, run.stderr())
  })
}

test('a bad LAMEDUCK_* variable is reported like the library reports it', async () => {
  const run = spawnNode(bin, ['serve', '--workers', '1', app], {
    env: cleanEnv({ LAMEDUCK_DRAIN_DELAY_MS: 'ten' }),
  })
  assert.equal((await exited(run.child, 'bad env')).code, 2)
  assert.match(run.stderr(), /LAMEDUCK_DRAIN_DELAY_MS to be a non-negative integer/)
})

test('flags win over LAMEDUCK_* variables, and every worker gets the resolved settings', () => {
  const parsed = parseWorkersArgs(
    [
      '--workers',
      '3',
      '--drain-delay',
      '2s',
      '--',
      'node',
      '--enable-source-maps',
      '-r',
      'x',
      app,
      '--port',
      '1',
    ],
    { LAMEDUCK_DRAIN_DELAY_MS: '5000', KUBERNETES_SERVICE_HOST: '10.0.0.1' },
  )
  assert.equal(parsed.help, false)
  if (parsed.help) return
  const o = parsed.options
  assert.equal(o.workers, 3)
  assert.equal(o.drainDelay, 2_000)
  assert.equal(o.env.LAMEDUCK_DRAIN_DELAY_MS, '2000')
  assert.equal(o.env.LAMEDUCK_SHUTDOWN_TIMEOUT_MS, '20000')
  assert.deepEqual(o.execArgv, ['--enable-source-maps', '-r', 'x'])
  assert.equal(o.exec, app)
  assert.deepEqual(o.args, ['--port', '1'])
  // The app's own flags after the script are the app's, not lameduck's.
  const plain = parseWorkersArgs(['--workers', '1', app, '--workers', '9'], {})
  assert.ok(!plain.help && plain.options.workers === 1 && plain.options.args.length === 2)
  // On Kubernetes the drain delay defaults to 10 s, as in the library.
  const k8s = parseWorkersArgs(['--workers', '1', app], { KUBERNETES_SERVICE_HOST: 'x' })
  assert.ok(!k8s.help && k8s.options.drainDelay === 10_000)
})

test('crash backoff doubles per crash in the window, is capped, and a crash loop is reported', () => {
  const tracker = new CrashTracker({
    restartDelayMs: 100,
    restartDelayMaxMs: 300,
    limit: 4,
    windowMs: 1_000,
  })
  assert.deepEqual(tracker.crash(0), { kind: 'restart', delayMs: 100, recent: 1 })
  assert.deepEqual(tracker.crash(10), { kind: 'restart', delayMs: 200, recent: 2 })
  assert.deepEqual(tracker.crash(20), { kind: 'restart', delayMs: 300, recent: 3 })
  // The first three age out of the window: the count, and the delay, fall back.
  assert.deepEqual(tracker.crash(1_025), { kind: 'restart', delayMs: 100, recent: 1 })
  const loop = new CrashTracker({ restartDelayMs: 1, restartDelayMaxMs: 1, limit: 2, windowMs: 50 })
  assert.equal(loop.crash(0).kind, 'restart')
  assert.deepEqual(loop.crash(49), { kind: 'loop', recent: 2 })
})

test('--workers auto follows the cgroup CPU limit (v2, then v1), rounded up', () => {
  const files = (map: Record<string, string>) => (path: string) => {
    const text = map[path]
    if (text === undefined) throw new Error(`ENOENT ${path}`)
    return text
  }
  assert.equal(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu.max': '150000 100000\n' })), 2)
  assert.equal(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu.max': 'max 100000\n' })), undefined)
  assert.equal(
    cgroupCpuLimit(
      files({
        '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '400000',
        '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000',
      }),
    ),
    4,
  )
  assert.equal(cgroupCpuLimit(files({ '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1' })), undefined)
  assert.equal(cgroupCpuLimit(files({})), undefined)
})
