// Clients in other languages (clients/external.ts), each a separate process the lab drives:
// curl (a new connection per request), Python requests (a keep-alive Session, no retries) and
// Go net/http (the default Transport). For each: a naive service fails, a lameduck service
// loses nothing. A kind whose toolchain is missing here is skipped by the lab with a message;
// these tests then skip too, saying why.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fromRoot } from '../helpers.js'
import { assertNaiveRan, FAST, runLab } from './lab-helpers.js'

const RUN_MS = 90_000
const naive = [process.execPath, fromRoot('dist/examples/naive.js')]
const graceful = [process.execPath, fromRoot('dist/examples/server.js')]
/** Slow GETs and POSTs, so requests are in flight at each SIGTERM; a low rate for helpers. */
const MIX = [
  ...FAST,
  '--replicas',
  '2',
  '--rate',
  '20',
  '--timeout',
  '10s',
  '--path',
  '1:/?delay=300',
  '--post',
  '1:/?delay=300',
]
const DRAINED = ['--readiness-path', '/readyz', '--env', 'LAMEDUCK_DRAIN_DELAY_MS=1000']

const works = (command: string, args: string[]) =>
  spawnSync(command, args, { stdio: 'ignore', timeout: 10_000 }).status === 0

const KINDS: [string, string | false][] = [
  ['curl', works('curl', ['--version']) ? false : 'needs curl'],
  ['py-requests', works('python3', ['-c', 'import requests']) ? false : 'needs python3-requests'],
  ['go-http', works('go', ['version']) ? false : 'needs the Go toolchain (golang-go)'],
]

for (const [kind, skip] of KINDS) {
  test(`--client ${kind}: a naive service fails, a lameduck service loses nothing`, {
    skip,
  }, async () => {
    const failing = await runLab(
      [...MIX, '--client', kind, '--max-failures', '100000'],
      naive,
      RUN_MS,
    )
    assertNaiveRan(failing)
    const lost = failing.result!
    assert.deepEqual(
      lost.warnings.filter((w) => w.includes('skipped')),
      [],
    )
    assert.ok(lost.failed > 0, `the naive service lost ${lost.failed} requests to ${kind}`)
    assert.ok(lost.byClient.every((b) => b.key === kind))
    // The failures are traced to the pods being deleted, as for the Node clients.
    assert.ok(lost.failures.some((failure) => failure.pod !== undefined))

    const passing = await runLab(
      [...MIX, ...DRAINED, '--client', kind, '--max-failures', '100000'],
      graceful,
      RUN_MS,
    )
    assert.equal(passing.exit.code, 0, `${passing.stdout}\n${passing.stderr}`)
    const result = passing.result!
    assert.equal(result.verdict.unexercisedPods.length, 0)
    // requests does not retry, so a keep-alive connection closed the instant the client picks
    // it would fail here; the close phase's idle hold answers it with Connection: close instead.
    assert.equal(result.failed, 0, passing.stdout)
  })
}

test('a client kind whose toolchain is missing is skipped with a message; the others run', async () => {
  // A PATH with node and nothing else: no curl, no python3, no go.
  const bin = mkdtempSync(join(tmpdir(), 'lameduck-path-'))
  symlinkSync(process.execPath, join(bin, 'node'))
  try {
    const run = await runLab(
      [...MIX, ...DRAINED, '--client', 'curl', '--client', 'agent-lifo'],
      graceful,
      RUN_MS,
      { ...process.env, PATH: bin },
    )
    assert.equal(run.exit.code, 0, `${run.stdout}\n${run.stderr}`)
    assert.ok(
      run.result!.warnings.includes(
        '--client curl skipped: curl is not installed (Debian: apt-get install curl)',
      ),
      run.result!.warnings.join('\n'),
    )
    assert.deepEqual(
      run.result!.byClient.map((b) => b.key),
      ['agent-lifo'],
    )
  } finally {
    rmSync(bin, { recursive: true, force: true })
  }
})
