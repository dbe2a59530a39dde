// The lab on `lameduck serve --workers`: every pod is a primary with two workers, and three
// rolling updates through the model of a Service lose nothing.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { fromRoot } from '../helpers.js'
import { FAST, runLab } from '../rollout/lab-helpers.js'

test('lameduck rollout -- lameduck serve --workers 2 loses 0 over 3 rolling updates', async () => {
  const run = await runLab(
    [
      ...FAST,
      '--replicas',
      '2',
      '--rollouts',
      '3',
      '--rate',
      '200',
      '--path',
      '19:/',
      '--path',
      '1:/?delay=300',
      '--readiness-path',
      '/readyz',
      '--env',
      'LAMEDUCK_DRAIN_DELAY_MS=800',
      // LIFO pools leave deep connections idle until the close phase, where closing an idle
      // connection would race with a client that picks it at that instant; the close phase
      // holds idle connections instead, so LIFO pools must lose nothing either.
      '--client',
      'agent-lifo',
      '--client',
      'agent-fifo',
      '--client',
      'new-connection',
    ],
    [
      process.execPath,
      fromRoot('bin/lameduck.js'),
      'serve',
      '--workers',
      '2',
      fromRoot('dist/examples/server.js'),
    ],
    90_000,
  )
  const result = run.result
  assert.ok(result !== undefined, run.stderr)
  assert.equal(result.failed, 0, JSON.stringify(result.failures.slice(0, 5)))
  assert.equal(run.exit.code, 0, run.stderr)
  assert.ok(result.outcomes.ok > 500, `${result.outcomes.ok} requests answered`)
  assert.equal(result.rollouts.length, 3)
  const deleted = result.pods.filter((p) => p.deletedAt !== undefined)
  assert.equal(deleted.length, 6)
  for (const pod of deleted) assert.equal(pod.exit?.code, 0, pod.name)
})
