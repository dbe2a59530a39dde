// The demo's HTTP/2 and WebSocket comparisons, run as the demo runs them but with fast
// probes and propagation: lameduck loses nothing over 3 rolling updates under h2 load and
// under WebSocket load; the naive service loses some, and the diagnosis says why.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DEMO_COMPARISONS } from '../../src/rollout/demo.js'
import { fromRoot } from '../helpers.js'
import { FAST, runLab } from './lab-helpers.js'

const RUN_MS = 60_000
// Later options win: fast probes and propagation, and a drain delay above 300 ms ± 100 ms.
const SHORT = [...FAST, '--env', 'LAMEDUCK_DRAIN_DELAY_MS=600']
/** The h2 comparison's minReadySeconds, shortened as the propagation delay is. */
const SHORT_MIN_READY = ['--min-ready', '500ms']

for (const id of ['h2', 'ws']) {
  const comparison = DEMO_COMPARISONS.find((c) => c.id === id)!
  const [naive, lameduck] = comparison.services

  test(`${comparison.title}: lameduck loses nothing over 3 rolling updates`, async () => {
    const run = await runLab(
      [
        ...comparison.args,
        ...SHORT,
        ...(id === 'h2' ? SHORT_MIN_READY : []),
        '--name',
        lameduck.name,
      ],
      [process.execPath, fromRoot(lameduck.file)],
      RUN_MS,
    )
    const result = run.result!
    const diagnosis = result.diagnosis.map((d) => d.sentence)
    assert.equal(result.failed, 0, `failed requests, diagnosed: ${JSON.stringify(diagnosis)}`)
    assert.equal(
      result.verdict.status,
      'pass',
      `${run.stdout.split('\n')[0]}\n${JSON.stringify(
        result.pods.map((p) => [p.name, p.readyAt, p.endpointAddedAt, p.sigtermAt, p.shutdown]),
      )}`,
    )
    assert.equal(run.exit.code, 0, run.stderr)
    assert.ok(result.rollouts.length === 3 && result.rollouts.every((r) => r.completedAt))
    const deleted = result.pods.filter((p) => p.deletedAt !== undefined)
    assert.equal(deleted.length, 9)
    for (const pod of deleted) {
      assert.deepEqual(pod.exit, { code: 0, signal: null }, pod.name)
      assert.equal(pod.sigkillAt, undefined, pod.name)
    }
    const kinds = result.byClient.map((b) => b.key)
    if (id === 'h2') {
      assert.deepEqual(kinds, ['h2'])
      assert.ok(
        deleted.some((p) => p.shutdown!.servedInLameDuck > 0),
        'streams served during the lame duck',
      )
      assert.ok(
        deleted.every((p) => p.shutdown!.connectionsMoved > 0),
        'every deleted pod sent its sessions a GOAWAY',
      )
    } else {
      assert.ok(kinds.includes('ws') && kinds.includes('new-connection'), kinds.join())
      assert.ok(
        deleted.some((p) => p.shutdown!.connectionsMoved > 0),
        'WebSockets closed with 1001 by terminating pods, and their clients reconnected',
      )
      assert.ok(result.byRequest.some((r) => r.key === 'WS /ws' && r.sent > 100))
    }
  })

  test(`${comparison.title}: the naive service loses requests, and the diagnosis says why`, async () => {
    const run = await runLab(
      [...comparison.args, ...SHORT, ...(id === 'h2' ? SHORT_MIN_READY : []), '--name', naive.name],
      [process.execPath, fromRoot(naive.file)],
      RUN_MS,
    )
    assert.equal(run.exit.code, 1, run.stderr)
    const result = run.result!
    assert.ok(result.failed > 0)
    const mechanisms = result.diagnosis.map((d) => d.mechanism)
    assert.ok(mechanisms.includes('refused'), mechanisms.join())
    if (id === 'ws') {
      const cut = result.diagnosis.find((d) => d.mechanism === 'ws-cut')
      assert.match(cut?.sentence ?? '', /WebSockets? cut without a close frame .*1001/)
    }
  })
}
