// The proof in the lab: the seed's Python services (FastAPI under uvicorn, Flask under
// gunicorn, each with its usual shutdown recipe) rolled bare and under `lameduck serve`,
// plus a stdlib Python service and a naive Node server under it. The Python tests need the
// Debian packages python3-uvicorn python3-fastapi gunicorn python3-flask (.ci/run installs
// them) and skip with a message naming them when they are missing.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { test } from 'node:test'
import type { LabResult } from '../../src/rollout/result.js'
import { NEW_CONNECTION_GRACE_MS } from '../../src/trackers/ledger.js'
import { fromRoot } from '../helpers.js'
import { FAST, fixture, runLab } from '../rollout/lab-helpers.js'
import { bin } from './serve-helpers.js'

const RUN_MS = 60_000
// Long enough that a keep-alive connection pinned to a deleted pod is very likely to carry a
// request during the drain (and get Connection: close) rather than be closed idle at its end,
// the HTTP/1.1 race no server can avoid (README, Limits).
const DRAIN_MS = 2_000
const DRAIN = `${DRAIN_MS}ms`
const fastapiDir = fromRoot('examples/python/fastapi')
const flaskDir = fromRoot('examples/python/flask')

/** A python3 that can import every module, or undefined. */
function python(modules: string[]): string | undefined {
  const candidates = [process.env.PYTHON, 'python3', '/usr/bin/python3'].filter(
    (c): c is string => c !== undefined && c !== '',
  )
  return candidates.find(
    (candidate) =>
      spawnSync(candidate, ['-c', modules.length === 0 ? 'pass' : `import ${modules.join(', ')}`], {
        stdio: 'ignore',
      }).status === 0,
  )
}

const MISSING =
  'needs python3 with uvicorn, fastapi, gunicorn and flask (Debian: apt-get install python3-uvicorn python3-fastapi gunicorn python3-flask)'

/** `lameduck serve` in front of a command, as a pod's command. */
function served(command: string[], health?: string): string[] {
  return [
    process.execPath,
    bin,
    'serve',
    '--quiet',
    '--drain-delay',
    DRAIN,
    ...(health === undefined ? [] : ['--upstream-health', health]),
    '--',
    ...command,
  ]
}

function summary(result: LabResult | undefined): string {
  if (result === undefined) return 'no result'
  return `${result.failed} failed of ${result.requests}: ${JSON.stringify(result.outcomes)}`
}

function uvicorn(py: string): string[] {
  return [
    'sh',
    '-c',
    `exec ${py} -m uvicorn --log-level warning --app-dir ${fastapiDir} main:app --port "$PORT"`,
  ]
}

test('FastAPI + uvicorn with the SIGTERM recipe: bare it loses requests; under lameduck serve 0 over 3 rolling updates', async (t) => {
  const py = python(['uvicorn', 'fastapi'])
  if (py === undefined) {
    t.skip(MISSING)
    return
  }
  const load = ['--replicas', '2', '--rate', '200', '--max-failures', '1000000']
  const bare = await runLab(
    // Two rolling updates (four pods stopped): a loss is then all but certain.
    [...FAST, ...load, '--rollouts', '2', '--readiness-path', '/health'],
    uvicorn(py),
    RUN_MS,
  )
  assert.equal(bare.exit.code, 0, bare.stderr)
  assert.ok((bare.result?.failed ?? 0) > 0, `bare uvicorn: ${summary(bare.result)}`)

  const run = await runLab(
    [...FAST, ...load, '--rollouts', '3', '--readiness-path', '/readyz'],
    served(uvicorn(py), '/health'),
    RUN_MS,
  )
  assert.equal(run.exit.code, 0, run.stderr)
  assert.equal(run.result?.failed, 0, `under lameduck serve: ${summary(run.result)}`)
  assert.equal(run.result?.rollouts.length, 3)
  for (const pod of run.result?.pods ?? []) {
    if (pod.deletedAt !== undefined) assert.equal(pod.exit?.code, 0, pod.name)
  }
})

test('Flask + gunicorn: with the recipe every pod waits for SIGKILL; under lameduck serve 0 lost and each stops in about drainDelay + its longest request', async (t) => {
  const py = python(['gunicorn', 'flask'])
  if (py === undefined) {
    t.skip(MISSING)
    return
  }
  const grace = 5_000
  const longest = 500
  const load = [
    '--replicas',
    '2',
    '--rate',
    '100',
    '--path',
    '99:/',
    '--path',
    `1:/?delay=${longest}`,
    '--termination-grace-period',
    `${grace}ms`,
    '--max-failures',
    '1000000',
  ]
  const gunicorn = [py, '-m', 'gunicorn', '--chdir', flaskDir]
  const bare = await runLab(
    [...FAST, ...load, '--rollouts', '1', '--readiness-path', '/health'],
    [...gunicorn, '-c', `${flaskDir}/gunicorn_config.py`, 'main:app'],
    RUN_MS,
  )
  assert.equal(bare.exit.code, 0, bare.stderr)
  const bareDeleted = bare.result?.pods.filter((p) => p.deletedAt !== undefined) ?? []
  assert.ok(bareDeleted.length > 0)
  for (const pod of bareDeleted) {
    assert.ok(pod.sigkillAt !== undefined, `${pod.name} waits for the grace period's SIGKILL`)
  }

  const run = await runLab(
    [...FAST, ...load, '--rollouts', '3', '--readiness-path', '/readyz'],
    // --timeout 2: when the lab ends it SIGKILLs each pod's lameduck; the gunicorn master
    // dies with it (parent-death signal) and its workers notice within timeout / 2.
    served([...gunicorn, '--timeout', '2', 'main:app'], '/health'),
    RUN_MS,
  )
  assert.equal(run.exit.code, 0, run.stderr)
  assert.equal(run.result?.failed, 0, `under lameduck serve: ${summary(run.result)}`)
  const deleted = run.result?.pods.filter((p) => p.deletedAt !== undefined) ?? []
  assert.equal(deleted.length, 6, 'two pods replaced in each of 3 rolling updates')
  for (const pod of deleted) {
    const seen = `${pod.name}: exit ${JSON.stringify(pod.exit)}, SIGTERM at ${pod.sigtermAt}, SIGKILL at ${pod.sigkillAt}, exited at ${pod.exitedAt}`
    assert.equal(pod.exit?.code, 0, seen)
    assert.equal(pod.sigkillAt, undefined, seen)
    const stop = (pod.exitedAt ?? 0) - (pod.sigtermAt ?? 0)
    // drainDelay + the longest request or the 1 s hold of idle keep-alive connections (serve
    // tells its clients keep-alive 65 s), whichever is longer + gunicorn's own stop, below
    // the 5 s grace.
    const close = Math.max(longest, NEW_CONNECTION_GRACE_MS)
    assert.ok(stop < DRAIN_MS + close + 1_500, `${pod.name} stopped ${stop} ms after SIGTERM`)
  }
})

test('a stdlib Python service and a naive Node server lose nothing under lameduck serve', async (t) => {
  const py = python([])
  const services: [string, string[]][] = [
    ['naive node:http', [process.execPath, fromRoot('dist/examples/naive.js')]],
  ]
  if (py === undefined) t.diagnostic('python3 not found: only the Node server runs')
  else services.push(['Python http.server', [py, fixture('server.py')]])
  for (const [name, command] of services) {
    const run = await runLab(
      [
        ...FAST,
        '--replicas',
        '2',
        '--rollouts',
        '1',
        '--rate',
        '200',
        '--path',
        '19:/',
        '--path',
        '1:/?delay=300',
        '--readiness-path',
        '/readyz',
      ],
      served(command),
      RUN_MS,
    )
    assert.equal(
      run.exit.code,
      0,
      `${name}: exit ${run.exit.code}: ${run.stdout.slice(-1500)} ${run.stderr}`,
    )
    assert.equal(run.result?.failed, 0, `${name}: ${summary(run.result)}`)
  }
})
