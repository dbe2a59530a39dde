// The lab end to end, as a user runs it: real pods, real signals, the CLI's exit codes.
import assert from 'node:assert/strict'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { exited, fromRoot } from '../helpers.js'
import { allGone, FAST, fixture, runLab, scratch, startLab } from './lab-helpers.js'

const RUN_MS = 30_000

/** A port nothing listens on now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

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
  // PASS, or INCONCLUSIVE (3) when at 50 requests/s no request happened to cross a pod's
  // instant shutdown: either way the Python service ran unchanged, which is the point here.
  assert.ok(run.exit.code === 0 || run.exit.code === 3, `exit ${run.exit.code}: ${run.stderr}`)
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
      '18:/',
      '--path',
      '1:/?delay=500',
      '--post',
      '1:/',
      // The fixture closes idle connections at the end of its drain, which races with a client
      // that kept one idle all along (LIFO pools, fetch): the lab reports that, and it is the
      // runtime's business. FIFO pools and new connections leave no connection idle that long.
      '--client',
      'agent-fifo',
      '--client',
      'new-connection',
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
  const deleted = result.pods.filter((p) => p.deletedAt !== undefined)
  assert.ok(deleted.every((p) => p.exit?.code === 0))
  // Every shutdown was exercised by the default client mix, and the report says how.
  for (const pod of deleted) {
    const shutdown = pod.shutdown!
    assert.ok(shutdown.exercised, `${pod.name}: ${JSON.stringify(shutdown)}`)
    assert.ok(pod.headroomMs! > 0, `${pod.name} exited after the Service stopped routing to it`)
  }
  assert.ok(
    deleted.some((p) => p.shutdown!.servedInLameDuck > 0),
    'requests served in lame duck',
  )
  assert.ok(
    deleted.some((p) => p.shutdown!.inFlightAtSigterm > 0),
    'requests in flight at SIGTERM',
  )
  assert.equal(result.verdict.status, 'pass')
  assert.match(run.stdout, /least headroom \d+\.\d+ s/)
  assert.deepEqual(result.byClient.map((c) => c.key).sort(), ['agent-fifo', 'new-connection'])
  assert.deepEqual(result.byRequest.map((c) => c.key).sort(), [
    'GET /',
    'GET /?delay=500',
    'POST /',
  ])
})

test('a run where a deleted pod carried no traffic across its shutdown is inconclusive (exit 3)', async () => {
  const run = await runLab(
    [
      ...FAST,
      '--replicas',
      '2',
      '--rate',
      '1',
      '--max-requests',
      '1',
      '--readiness-path',
      '/readyz',
      '--env',
      'DRAIN_MS=300',
      '--env',
      'LAMEDUCK_DRAIN_DELAY_MS=100',
    ],
    [process.execPath, fixture('graceful.mjs')],
    RUN_MS,
  )
  assert.equal(run.exit.code, 3, run.stderr)
  const result = run.result!
  assert.equal(result.failed, 0)
  assert.equal(result.verdict.status, 'inconclusive')
  assert.equal(result.verdict.pass, false)
  const deleted = result.pods.filter((p) => p.deletedAt !== undefined).map((p) => p.name)
  assert.deepEqual(result.verdict.unexercisedPods.sort(), deleted.sort())
  assert.match(
    run.stdout,
    /verdict {3}INCONCLUSIVE: 0 failed requests, but 2 deleted pods carried no request across their shutdown/,
  )
  // The too-short drain setting the pods can see is reported before the run starts.
  const warning = result.events.findIndex(
    (e) => e.type === 'warning' && /LAMEDUCK_DRAIN_DELAY_MS=100 is shorter/.test(e.detail ?? ''),
  )
  assert.ok(warning >= 0 && warning < result.events.findIndex((e) => e.type === 'pod-created'))
  assert.match(
    run.stdout,
    /warning: LAMEDUCK_DRAIN_DELAY_MS=100 is shorter than the propagation delay plus its jitter \(300ms \+ 100ms\)/,
  )
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

const fixedPort = await freePort()
const notADirectory = join(scratch().dir, 'file')
writeFileSync(notADirectory, '')
usage.push(
  [
    "a command that throws at start: its error line, not only the stack's tail",
    ['--', process.execPath, fixture('throws-at-start.mjs')],
    /exited with code 1 before it was ready \(\d+\.\d s after start\): Error: cannot connect to the database at db\.internal:5432\./,
  ],
  [
    'a command that ignores $PORT: the pods collide on its port',
    ['--env', `FIXED_PORT=${fixedPort}`, '--', process.execPath, fixture('fixed-port.mjs')],
    /Error: listen EADDRINUSE: address already in use 127\.0\.0\.1:\d+\. Several pods listened on the same port: does the command ignore \$PORT \(\d+ for this pod\)\?/,
  ],
  [
    'a command that ignores $PORT: it listens elsewhere',
    [
      ...FAST,
      '--replicas',
      '1',
      '--progress-deadline',
      '1s',
      '--env',
      `FIXED_PORT=${fixedPort}`,
      '--',
      process.execPath,
      fixture('fixed-port.mjs'),
    ],
    new RegExp(
      `it listens on port ${fixedPort} instead of its port \\d+ \\(PORT=\\d+\\): .* The command ignores \\$PORT`,
    ),
  ],
  [
    '--client h2 against a service that speaks only HTTP/1.1, before the load',
    [
      ...FAST,
      '--replicas',
      '1',
      '--client',
      'h2',
      '--',
      process.execPath,
      fromRoot('dist/examples/server.js'),
    ],
    /--client h2: the service does not answer HTTP\/2 without TLS \(h2c\) on its port \(.+\); serve it with http2\.createServer\(\)/,
  ],
  [
    '--client ws on a path where the service serves no WebSocket, before the load',
    [
      ...FAST,
      '--replicas',
      '1',
      '--client',
      'ws',
      '--ws-path',
      '/chat',
      '--',
      process.execPath,
      fromRoot('dist/examples/server.js'),
    ],
    /--client ws: the service answered HTTP 200 at \/chat instead of opening a WebSocket; serve WebSockets there or set --ws-path/,
  ],
  [
    'an output path that is a directory, before any pod starts',
    ['--html', tmpdir(), '--', 'no-such-command-here'],
    /--html \/\S+: is a directory; expected a file name/,
  ],
  [
    'an output path whose directory cannot be created, before any pod starts',
    ['--json', join(notADirectory, 'report.json'), '--', 'no-such-command-here'],
    /--json \S+report\.json: \S+\/file is not a directory/,
  ],
)

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

test('Ctrl-C during the load writes the partial reports, marked interrupted', async () => {
  const out = scratch()
  const json = join(out.dir, 'partial.json')
  const html = join(out.dir, 'partial.html')
  try {
    const run = startLab([
      ...FAST,
      '--replicas',
      '2',
      '--rate',
      '100',
      '--json',
      json,
      '--html',
      html,
      '--',
      process.execPath,
      fixture('ignore-sigterm.mjs'),
    ])
    await run.waitFor('<- SIGTERM', 'a pod being terminated', 15_000)
    run.child.kill('SIGINT')
    const exit = await exited(run.child, 'the lab after SIGINT')
    assert.equal(exit.code, 130)
    assert.match(run.stdout(), /verdict {3}INTERRUPTED: \d+ failed requests? until then/)
    assert.match(run.stderr(), new RegExp(`wrote ${json.replaceAll('.', '\\.')}\n`))
    assert.match(run.stderr(), new RegExp(`wrote ${html.replaceAll('.', '\\.')}\n`))
    const result = JSON.parse(readFileSync(json, 'utf8'))
    assert.equal(result.interrupted, true)
    assert.ok(result.requests > 0)
    assert.ok(existsSync(html) && /INTERRUPTED/.test(readFileSync(html, 'utf8')))
  } finally {
    out.dispose()
  }
})

test('--probe-port-env probes a separate listener: lameduck with LAMEDUCK_PROBE_PORT', async () => {
  const run = await runLab(
    [
      ...FAST,
      '--replicas',
      '1',
      '--rate',
      '50',
      '--readiness-path',
      '/readyz',
      '--probe-port-env',
      'LAMEDUCK_PROBE_PORT',
      '--env',
      'LAMEDUCK_DRAIN_DELAY_MS=600',
      '--max-failures',
      '100000',
    ],
    [process.execPath, fromRoot('dist/examples/server.js')],
    RUN_MS,
  )
  assert.equal(run.exit.code, 0, run.stderr)
  const pods = run.result!.pods
  assert.equal(pods.length, 2)
  for (const pod of pods) {
    assert.ok(pod.readyAt !== undefined, `${pod.name} became ready through its probe port`)
    assert.ok(pod.probePort !== undefined && pod.probePort !== pod.port)
  }
  assert.equal(run.result!.settings.probePortEnv, 'LAMEDUCK_PROBE_PORT')
})
