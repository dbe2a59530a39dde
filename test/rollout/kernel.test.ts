// The lab over the kernel's data path (--service iptables): pods in network namespaces,
// kube-proxy-style iptables rules, conntrack. These tests need root and the ip, iptables and
// conntrack commands (CI installs them); elsewhere they skip, saying why. They run one after
// another, and hold the host's network against the kernel-path runs of other files
// (onHostNetwork): each run builds and removes its own namespaces and rules.
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { accessSync, constants, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { test } from 'node:test'
import { labObjects } from '../../src/rollout/drivers/kernel.js'
import { exited, fromRoot, until } from '../helpers.js'
import { allGone, assertNaiveRan, FAST, onHostNetwork, runLab, startLab } from './lab-helpers.js'

const RUN_MS = 60_000
const naive = [process.execPath, fromRoot('dist/examples/naive.js')]
const graceful = [process.execPath, fromRoot('dist/examples/server.js')]
/** Short runs: two replicas, one rolling update, a bounded rate. */
const SHORT = [...FAST, '--service', 'iptables', '--replicas', '2', '--rate', '40']
/** lameduck's drain outlasts the propagation delay plus its jitter (300 ms ± 100 ms). */
const DRAINED = ['--readiness-path', '/readyz', '--env', 'LAMEDUCK_DRAIN_DELAY_MS=1000']

function onPath(name: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, name), constants.X_OK)
      return dir !== ''
    } catch {
      return false
    }
  })
}

const missing = ['ip', 'iptables', 'iptables-restore', 'iptables-save', 'conntrack'].filter(
  (name) => !onPath(name),
)
const skip =
  process.getuid?.() !== 0
    ? 'needs root'
    : missing.length > 0
      ? `needs ${missing.join(', ')}`
      : false

/** The objects of the run with `pid`, if any are left. */
const leftBy = (pid: number | undefined) => labObjects().get(`ldk${pid}`) ?? []

/** `nft list tables`, when nft is there: the host's tables before and after a run. */
function tables(): string | undefined {
  if (!onPath('nft')) return undefined
  return execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' })
}

test(
  '--service iptables: a naive service fails and a lameduck one loses nothing; nothing is left after either run',
  {
    skip,
  },
  onHostNetwork(async () => {
    const othersBefore = labObjects().size
    const tablesBefore = tables()
    const failing = await runLab([...SHORT, '--max-failures', '100000'], naive, RUN_MS)
    assertNaiveRan(failing)
    const lost = failing.result!
    assert.ok(lost.failed > 0, `the naive service lost ${lost.failed} requests`)
    assert.match(
      lost.dataPath ?? '',
      /^iptables: pods in network namespaces on 198\.18\.\d+\.0\/24/,
    )
    // Its pods had their own addresses, and the failures are traced to them through conntrack.
    assert.ok(
      lost.pods.every((pod) => pod.host?.startsWith('198.18.')),
      failing.stdout,
    )
    assert.ok(
      lost.failures.some((failure) => failure.pod !== undefined),
      failing.stdout,
    )

    const passing = await runLab([...SHORT, ...DRAINED], graceful, RUN_MS)
    assert.equal(passing.exit.code, 0, `${passing.stdout}\n${passing.stderr}`)
    const result = passing.result!
    assert.equal(result.failed, 0, passing.stdout)
    assert.equal(
      result.verdict.status,
      'pass',
      `every deleted pod carried traffic across its shutdown:\n${passing.stdout}`,
    )
    const deleted = result.pods.filter((pod) => pod.deletedAt !== undefined)
    assert.equal(deleted.length, 2, passing.stdout)
    assert.ok(
      deleted.every((pod) => pod.shutdown?.exercised),
      passing.stdout,
    )
    assert.ok(
      result.pods.every((pod) => pod.connections > 0),
      `conntrack saw each pod get connections:\n${passing.stdout}`,
    )

    for (const run of [failing, passing]) {
      assert.deepEqual(leftBy(run.pid), [], 'no namespace, link or chain of the run is left')
    }
    if (othersBefore === 0 && labObjects().size === 0 && tablesBefore !== undefined) {
      assert.equal(tables(), tablesBefore, "the host's nftables tables are as they were")
    }
  }),
)

test(
  '--service iptables: after the lab is SIGKILLed mid-run, the next run removes what it left, names it, and passes',
  {
    skip,
  },
  onHostNetwork(async () => {
    const killed = startLab(['--quiet', ...SHORT, ...DRAINED, '--', ...graceful])
    const prefix = `ldk${killed.child.pid}`
    // Once the rules route to both pods (the load starts then), kill the lab where it stands.
    await until(
      'two endpoint chains of the first run',
      () => (labObjects().get(prefix) ?? []).filter((object) => /-SEP-/.test(object)).length >= 2,
      RUN_MS,
    )
    const pods = podsIn(prefix)
    killed.child.kill('SIGKILL')
    await exited(killed.child, 'the killed lab', 5_000)
    const stale = labObjects().get(prefix) ?? []
    assert.ok(stale.length > 0, 'the killed run left its objects')

    const next = await runLab([...SHORT, ...DRAINED], graceful, RUN_MS)
    assert.equal(next.exit.code, 0, `${next.stdout}\n${next.stderr}`)
    assert.equal(next.result!.failed, 0)
    const note = next.result!.warnings.find((w) => w.startsWith('removed what an earlier run'))
    assert.ok(note !== undefined, next.stdout)
    for (const object of stale) assert.ok(note.includes(object), `${object} named in: ${note}`)
    assert.deepEqual(labObjects().get(prefix) ?? [], [], 'the killed run left nothing')
    assert.deepEqual(leftBy(next.pid), [])
    await allGone(pods)
  }),
)

test('--service iptables without root stops before any pod starts, in one sentence', {
  skip: process.getuid?.() !== 0 ? 'needs root to drop privileges' : unprivilegedSkip(),
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lameduck-noroot-'))
  const marker = join(dir, 'started')
  try {
    const result = spawnSync(
      'setpriv',
      [
        '--reuid=nobody',
        '--regid=nogroup',
        '--clear-groups',
        process.execPath,
        fromRoot('bin/lameduck.js'),
        'rollout',
        '--quiet',
        '--service',
        'iptables',
        '--',
        process.execPath,
        '-e',
        `require('fs').writeFileSync(${JSON.stringify(marker)}, '')`,
      ],
      { encoding: 'utf8', timeout: 20_000 },
    )
    assert.equal(result.status, 2, result.stderr)
    assert.equal(
      result.stderr.trim(),
      'lameduck rollout: --service iptables needs root: it creates network namespaces, a bridge and iptables rules; run the lab as root (or in CI as root), or use --service model',
    )
    assert.equal(existsSync(marker), false, 'no pod started')
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('--service iptables without the ip and iptables commands names them, before any pod starts', {
  skip: process.getuid?.() !== 0 ? 'needs root (the check for root comes first)' : false,
}, async () => {
  // Only node on the PATH.
  const bin = mkdtempSync(join(tmpdir(), 'lameduck-path-'))
  symlinkSync(process.execPath, join(bin, 'node'))
  const run = startLab(['--quiet', '--service', 'iptables', '--', 'true'], {
    ...process.env,
    PATH: bin,
  })
  const exit = await exited(run.child, 'the lab without commands', 20_000).finally(() =>
    rmSync(bin, { recursive: true, force: true }),
  )
  assert.equal(exit.code, 2)
  assert.match(
    run.stderr(),
    /^lameduck rollout: --service iptables needs the commands ip, iptables, iptables-save, iptables-restore, conntrack, not found in PATH \(Debian: apt-get install iproute2 iptables conntrack\); or use --service model\n$/,
  )
})

/** Resolves when `predicate` holds, polled; rejects after `ms` with `label`. */
/** Pids of the processes in the run's pod namespaces. */
function podsIn(prefix: string): number[] {
  const names = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name.startsWith(`${prefix}-`))
  return names.flatMap((name) =>
    execFileSync('ip', ['netns', 'pids', name], { encoding: 'utf8' })
      .split(/\s+/)
      .filter((pid) => pid !== '')
      .map(Number),
  )
}

/** The test drops to nobody: skipped where nobody cannot run this node or read this checkout. */
function unprivilegedSkip(): string | false {
  if (!onPath('setpriv')) return 'needs setpriv (util-linux)'
  const probe = spawnSync(
    'setpriv',
    [
      '--reuid=nobody',
      '--regid=nogroup',
      '--clear-groups',
      process.execPath,
      fromRoot('bin/lameduck.js'),
      '--version',
    ],
    { encoding: 'utf8', timeout: 10_000 },
  )
  return probe.status === 0 ? false : 'nobody cannot run this node or read this checkout'
}
