// The lab end to end, as a user runs it: real pods, real signals, the CLI's exit codes.
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { exited } from '../helpers.js'
import { allGone, FAST, fixture, runLab, scratch, startLab } from './lab-helpers.js'

const RUN_MS = 30_000

/** Every pid the ignore-sigterm fixture wrote: each pod and its helper process. */
function pidsIn(dir: string): number[] {
  return readdirSync(dir).flatMap((file) =>
    readFileSync(join(dir, file), 'utf8').trim().split(/\s+/).map(Number),
  )
}

test('a service that ignores SIGTERM is SIGKILLed at the grace period, and nothing of it is left', async () => {
  const pids = scratch()
  const out = scratch()
  const html = join(out.dir, 'report.html')
  try {
    const run = await runLab(
      [
        ...FAST,
        '--replicas',
        '1',
        '--rate',
        '50',
        '--termination-grace-period',
        '2s',
        '--max-failures',
        '100000',
        '--html',
        html,
      ],
      [process.execPath, fixture('ignore-sigterm.mjs')],
      RUN_MS,
      { ...process.env, PID_DIR: pids.dir },
    )
    assert.equal(run.exit.code, 0, run.stderr)
    const old = run.result!.pods.find((p) => p.revision === 0)!
    assert.deepEqual(old.exit, { code: null, signal: 'SIGKILL' })
    assert.ok(old.sigkillAt !== undefined && old.sigtermAt !== undefined)
    assert.ok(
      old.sigkillAt - old.sigtermAt >= 1_990,
      `SIGKILL ${old.sigkillAt - old.sigtermAt} ms after SIGTERM`,
    )
    assert.match(run.stdout, /SIGKILL at grace period/)
    const page = readFileSync(html, 'utf8')
    assert.match(page, /<svg/)
    assert.match(page, /SIGKILL/)
    assert.doesNotMatch(page, /<script|https?:\/\/(?!www\.w3\.org)/, 'self-contained')
    // The pods and the helper each started are gone: the lab kills whole process groups.
    const started = pidsIn(pids.dir)
    assert.equal(started.length, 4, 'two pods, each with a helper')
    await allGone(started)
  } finally {
    pids.dispose()
    out.dispose()
  }
})

test('a Python service runs in the lab unchanged', async () => {
  const run = await runLab(
    [...FAST, '--replicas', '2', '--rate', '50', '--max-failures', '100000'],
    ['python3', fixture('server.py')],
    RUN_MS,
  )
  assert.equal(run.exit.code, 0, run.stderr)
  const result = run.result!
  assert.ok(result.outcomes.ok > 0)
  assert.equal(result.rollouts[0]?.completedAt !== undefined, true)
  const deleted = result.pods.filter((p) => p.deletedAt !== undefined)
  assert.equal(deleted.length, 2)
  // Python's default reaction to SIGTERM: the process ends at once, by the signal.
  for (const pod of deleted) assert.equal(pod.exit?.signal, 'SIGTERM', pod.name)
})

test('a service that drains correctly loses nothing in the model, slow requests included', async () => {
  const run = await runLab(
    [
      ...FAST,
      '--rollouts',
      '2',
      '--rate',
      '300',
      '--path',
      '19:/',
      '--path',
      '1:/?delay=500',
      '--readiness-path',
      '/readyz',
      '--env',
      'DRAIN_MS=1000',
    ],
    [process.execPath, fixture('graceful.mjs')],
    RUN_MS,
  )
  const result = run.result!
  assert.equal(result.failed, 0, JSON.stringify(result.failures.slice(0, 5)))
  assert.equal(run.exit.code, 0)
  assert.ok(result.pods.filter((p) => p.deletedAt !== undefined).every((p) => p.exit?.code === 0))
})

const usage: [string, string[], RegExp][] = [
  ['no command', ['--replicas', '2'], /missing the command to run; usage: lameduck rollout/],
  [
    'an option out of range',
    ['--replicas', '0', '--', 'node'],
    /--replicas must be from 1 to 50, got '0'/,
  ],
  [
    'a command that exits at start, with its stderr',
    ['--', process.execPath, fixture('exit-at-start.mjs')],
    /exited with code 3 before it was ready.*\n {2}\| fixture: cannot read \/etc\/app\/config\.yaml: no such file/,
  ],
  [
    'a port that never opens, after the progress deadline',
    [...FAST, '--progress-deadline', '1s', '--', process.execPath, fixture('never-listens.mjs')],
    /the initial pods made no progress within 1s \(--progress-deadline\): pod app-\S+ is not ready; nothing ever listened on its port \d+ \(PORT=\d+\)/,
  ],
  [
    'a command that does not exist',
    ['--', 'no-such-command-here'],
    /cannot run 'no-such-command-here' \(pod \S+\): command not found/,
  ],
]

for (const [what, args, message] of usage) {
  test(`bad input gets a clear error: ${what}`, async () => {
    const run = startLab(['--quiet', ...args])
    const exit = await exited(run.child, what, 10_000)
    assert.equal(exit.code, 2)
    assert.match(run.stderr(), /^lameduck rollout: /)
    assert.match(run.stderr(), message)
    assert.doesNotMatch(run.stderr(), /\n\s+at /, 'no stack trace')
  })
}

test('Ctrl-C stops the lab and every pod, including one ignoring SIGTERM and its helpers', async () => {
  const pids = scratch()
  try {
    const run = startLab(
      [
        ...FAST,
        '--replicas',
        '2',
        '--rate',
        '50',
        '--',
        process.execPath,
        fixture('ignore-sigterm.mjs'),
      ],
      { ...process.env, PID_DIR: pids.dir },
    )
    // A pod is terminating (it ignores SIGTERM, 30 s grace period) when the lab gets SIGINT.
    await run.waitFor('<- SIGTERM', 'a pod being terminated', 15_000)
    run.child.kill('SIGINT')
    const exit = await exited(run.child, 'the lab after SIGINT')
    assert.equal(exit.code, 130)
    assert.match(run.stderr(), /interrupted; every pod was stopped/)
    const started = pidsIn(pids.dir)
    assert.ok(started.length >= 6, `three pods and their helpers started (${started.length} pids)`)
    await allGone(started)
  } finally {
    pids.dispose()
  }
})
