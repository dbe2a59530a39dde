// The lab behind a real ingress (--ingress nginx, --ingress haproxy): the distribution's proxy
// routes to the pods' addresses with an upstream keep-alive pool and its default retries.
// Skips where the proxy is not installed (CI installs nginx-light and haproxy).
import assert from 'node:assert/strict'
import {
  accessSync,
  constants,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { tmpdir } from 'node:os'
import { delimiter, join } from 'node:path'
import { test } from 'node:test'
import { exited, fromRoot, until } from '../helpers.js'
import { allGone, FAST, gone, onHostNetwork, runLab, startLab } from './lab-helpers.js'

const RUN_MS = 60_000
const naive = [process.execPath, fromRoot('dist/examples/naive.js')]
const graceful = [process.execPath, fromRoot('dist/examples/server.js')]
/** Requests that are in flight when a pod gets SIGTERM: half GETs, half POSTs. */
const SHORT = [
  ...FAST,
  '--replicas',
  '2',
  '--rate',
  '40',
  '--path',
  '1:/?delay=300',
  '--post',
  '1:/?delay=300',
]
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

const noNginx = onPath('nginx') ? false : 'needs nginx (apt-get install nginx-light)'

const noHaproxy = onPath('haproxy') ? false : 'needs haproxy (apt-get install haproxy)'
const noIptables =
  process.getuid?.() !== 0 ? 'needs root' : !onPath('iptables') ? 'needs iptables' : false

/** Processes whose command line holds `token`. */
function processesWith(token: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry) && Number(entry) !== process.pid)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(token)
      } catch {
        return false
      }
    })
    .map(Number)
}

/** Processes of `proxy` whose command line names this lab's directory. */
function proxyOf(proxy: 'nginx' | 'haproxy', labPid: number | undefined): number[] {
  return processesWith(`lameduck-${proxy}-${labPid}-`)
}

test('--ingress nginx: a naive service fails its POSTs through the ingress (never retried), and the report says what the ingress passed on', {
  skip: noNginx,
}, async () => {
  const run = await runLab(
    [...SHORT, '--ingress', 'nginx', '--max-failures', '100000'],
    naive,
    RUN_MS,
  )
  assert.equal(run.exit.code, 0, run.stderr)
  const result = run.result!
  assert.ok(result.failed > 0, 'the naive service loses requests behind nginx')
  const posts = result.failures.filter((f) => f.method === 'POST')
  assert.ok(posts.length > 0, 'POSTs cut at SIGTERM are not retried by nginx')
  const passedOn = posts.filter((f) => f.status === 502 && f.ingress !== undefined)
  assert.ok(passedOn.length > 0, 'POSTs answered 502 by nginx, with its log line')
  assert.ok(result.ingress !== undefined)
  assert.ok(result.ingress.passedOn >= passedOn.length)
  assert.ok(result.ingress.reloads > 0, 'endpoint changes reached nginx by reloads')
  assert.match(
    run.stdout,
    /ingress nginx: \d+ requests retried by the ingress on another pod and ok; \d+ failures answered 502\/503\/504 by the ingress/,
  )
  // Requests are traced to their pods from nginx's log.
  assert.ok(
    result.pods
      .filter((pod) => pod.deletedAt !== undefined)
      .every((pod) => pod.shutdown?.exercised),
  )
  // The diagnosis words nginx's 502s as nginx's answer, not as the pods' own HTTP 5xx.
  assert.match(run.stdout, /nginx answered 502 to \d+ requests?: /)
  assert.ok(
    result.diagnosis.every((d) => d.mechanism !== 'http-5xx'),
    run.stdout,
  )
  assert.deepEqual(proxyOf('nginx', run.pid), [], 'nginx is stopped with the lab')
})

test('--ingress haproxy: a naive service fails GETs and POSTs alike (haproxy resends neither once sent), and the report says what haproxy did', {
  skip: noHaproxy,
}, async () => {
  // Half the requests on new connections (haproxy answers 502 for the first request of a
  // client connection), half on kept-alive ones (it closes the client's connection instead).
  const clients = ['--client', 'new-connection', '--client', 'agent-lifo']
  const run = await runLab(
    [...SHORT, ...clients, '--ingress', 'haproxy', '--max-failures', '100000'],
    naive,
    RUN_MS,
  )
  assert.equal(run.exit.code, 0, run.stderr)
  const result = run.result!
  assert.ok(result.failed > 0, 'the naive service loses requests behind haproxy')
  assert.ok(result.ingress !== undefined)
  assert.equal(result.ingress.kind, 'haproxy')
  assert.equal(result.ingress.reloads, 0, 'endpoint changes by the runtime API, no reload')
  // Cut under haproxy after it was sent: a 502 (the first request of a client connection) or
  // the client's connection closed without an answer (a later one), never resent.
  const closed = result.failures.filter((f) => f.ingress?.error === 'closed')
  for (const method of ['GET', 'POST']) {
    assert.ok(
      closed.some((f) => f.method === method),
      `${method}s cut under haproxy are passed on: ${run.stdout}`,
    )
  }
  assert.ok(
    closed.some((f) => f.status === 502 && f.ingress?.upstreamStatus === 'SH'),
    'a 502 haproxy answered itself, with its termination state',
  )
  assert.ok(result.ingress.passedOn > 0)
  assert.match(
    run.stdout,
    /ingress haproxy: \d+ requests retried by the ingress on another pod and ok; \d+ failures answered 502\/503\/504 by the ingress .*; \d+ client connections closed by the ingress without an answer or a log line .*; endpoint changes by its runtime API, no reload/,
  )
  assert.match(run.stdout, /haproxy answered 50\d to \d+ requests?/)
  assert.ok(
    result.diagnosis.every((d) => d.mechanism !== 'http-5xx'),
    run.stdout,
  )
  assert.ok(
    result.pods
      .filter((pod) => pod.deletedAt !== undefined)
      .every((pod) => pod.shutdown?.exercised),
  )
  assert.deepEqual(proxyOf('haproxy', run.pid), [], 'haproxy is stopped with the lab')
})

/**
 * A reload can drop a client connection at the switch of workers (the lab's ingress's own
 * failure, counted and named as such): the service's own failures are the others.
 */
function ownFailures(run: Awaited<ReturnType<typeof runLab>>): number {
  return run.result!.failed - (run.result!.ingress?.atReload ?? 0)
}

const PROXIES = [
  { proxy: 'nginx', missing: noNginx, install: 'apt-get install nginx-light', how: 'nginx reload' },
  {
    proxy: 'haproxy',
    missing: noHaproxy,
    install: 'apt-get install haproxy',
    how: 'haproxy runtime API',
  },
] as const

for (const { proxy, missing, install, how } of PROXIES) {
  for (const service of ['model', 'iptables'] as const) {
    const body = async () => {
      const run = await runLab(
        [
          ...SHORT,
          '--ingress',
          proxy,
          ...DRAINED,
          '--service',
          service,
          '--max-failures',
          '100000',
        ],
        graceful,
        RUN_MS,
      )
      assert.equal(run.exit.code, 0, `${run.stdout}\n${run.stderr}`)
      assert.equal(ownFailures(run), 0, run.stdout)
      // Failures at a reload are the only ones, and the diagnosis says whose they are.
      assert.ok(run.result!.diagnosis.every((d) => d.mechanism === 'ingress-reload'))
      assert.deepEqual(run.result!.verdict.unexercisedPods, [])
      assert.equal(run.result!.ingress?.passedOn, 0)
      assert.ok(run.result!.events.some((e) => e.type === 'endpoint-removed' && e.detail === how))
      if (service === 'iptables') {
        assert.ok(run.result!.pods.every((pod) => pod.host?.startsWith('198.18.')))
      }
      assert.deepEqual(proxyOf(proxy, run.pid), [], `${proxy} is stopped with the lab`)
    }
    test(
      `--ingress ${proxy} over --service ${service}: a lameduck service loses nothing behind the ingress`,
      {
        skip: missing || (service === 'iptables' ? noIptables : false),
      },
      service === 'iptables' ? onHostNetwork(body) : body,
    )
  }

  test(`--ingress ${proxy} without ${proxy} says so before any pod starts`, async () => {
    const bin = mkdtempSync(join(tmpdir(), 'lameduck-path-'))
    symlinkSync(process.execPath, join(bin, 'node'))
    const run = startLab(['--quiet', '--ingress', proxy, '--', 'true'], {
      ...process.env,
      PATH: bin,
    })
    const exit = await exited(run.child, `the lab without ${proxy}`, 20_000).finally(() =>
      rmSync(bin, { recursive: true, force: true }),
    )
    assert.equal(exit.code, 2)
    assert.equal(
      run.stderr(),
      `lameduck rollout: --ingress ${proxy} needs the ${proxy} command, not found in PATH (Debian: ${install})\n`,
    )
  })
}

test('--ingress haproxy: a proxy that exits at start stops the run with its error, before any pod starts', async () => {
  const bin = mkdtempSync(join(tmpdir(), 'lameduck-path-'))
  symlinkSync(process.execPath, join(bin, 'node'))
  symlinkSync('/bin/sh', join(bin, 'sh'))
  writeFileSync(
    join(bin, 'haproxy'),
    '#!/bin/sh\necho "[ALERT] config : parsing [$3:1] : unknown keyword" >&2\nexit 1\n',
    { mode: 0o755 },
  )
  const run = startLab(['--quiet', '--ingress', 'haproxy', '--', 'node', '-e', ''], {
    ...process.env,
    PATH: bin,
  })
  const exit = await exited(run.child, 'the lab with a failing haproxy', 20_000).finally(() =>
    rmSync(bin, { recursive: true, force: true }),
  )
  assert.equal(exit.code, 2, run.stderr())
  assert.match(
    run.stderr(),
    /^lameduck rollout: --ingress haproxy: haproxy exited at start: \[ALERT\] config : parsing \[.*haproxy\.cfg:1\] : unknown keyword\n$/,
  )
  assert.deepEqual(
    readdirSync(tmpdir()).filter((name) => name.startsWith(`lameduck-haproxy-${run.child.pid}-`)),
    [],
    'the ingress directory is removed',
  )
})

test('after the lab is SIGKILLed mid-run, the next run ends its pods and its nginx and removes its directory, and says so', {
  skip: noNginx,
}, async () => {
  // An argument the pods ignore, to find them in /proc.
  const token = `leftover-${process.pid}-${Date.now()}`
  // Both runs keep their records and the ingress directory in a TMPDIR of their own: any lab
  // run ends what dead runs left in its TMPDIR, and other test files run labs meanwhile.
  const own = mkdtempSync(join(tmpdir(), 'lameduck-leftovers-'))
  const env = { ...process.env, TMPDIR: own }
  const killed = startLab(
    [
      '--quiet',
      ...SHORT,
      ...DRAINED,
      '--ingress',
      'nginx',
      '--rollouts',
      '3',
      '--',
      ...graceful,
      token,
    ],
    env,
  )
  await until(
    'two pods and nginx of the first run',
    () => processesWith(token).length >= 2 && proxyOf('nginx', killed.child.pid).length > 0,
    RUN_MS,
  )
  killed.child.kill('SIGKILL')
  await exited(killed.child, 'the killed lab')
  const left = [...processesWith(token), ...proxyOf('nginx', killed.child.pid)]
  const dirs = readdirSync(own).filter((name) =>
    name.startsWith(`lameduck-nginx-${killed.child.pid}-`),
  )
  assert.ok(
    left.every((pid) => !gone(pid)) && dirs.length === 1,
    'the killed run left its pods, its nginx and its directory',
  )

  const next = await runLab([...SHORT, ...DRAINED], graceful, RUN_MS, env)
  assert.equal(next.exit.code, 0, `${next.stdout}\n${next.stderr}`)
  const note = next.result!.warnings.find((w) =>
    w.startsWith('an earlier run of the lab was killed before it could clean up'),
  )
  assert.ok(note !== undefined, next.result!.warnings.join('\n'))
  assert.ok(note.includes(`${own}/${dirs[0]}`), note)
  await allGone(left)
  assert.deepEqual(
    readdirSync(own).filter(
      (name) => name === dirs[0] || name === `lameduck-run-${killed.child.pid}`,
    ),
    [],
  )
  rmSync(own, { recursive: true, force: true })
})
