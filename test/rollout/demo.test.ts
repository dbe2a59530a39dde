// The demo's claim, checked with the demo's own settings: the naive service loses requests
// during rolling updates, the same service with lameduck loses none.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DEMO_ARGS, DEMO_SERVICES } from '../../src/rollout/demo.js'
import { exited, fromRoot, spawnNode } from '../helpers.js'
import { runLab } from './lab-helpers.js'

const RUN_MS = 90_000
const service = (name: string) => DEMO_SERVICES.find((s) => s.name === name)!

test('the naive service loses requests in the demo configuration', async () => {
  const run = await runLab(
    [...DEMO_ARGS, '--name', 'naive'],
    [process.execPath, fromRoot(service('naive').file)],
    RUN_MS,
  )
  assert.equal(run.exit.code, 1, run.stderr)
  const result = run.result!
  const { refused, reset, hang_up } = result.outcomes
  assert.ok(result.failed > 0, 'some requests failed')
  assert.ok(refused + reset + hang_up > 0, `refused ${refused}, reset ${reset}, hang up ${hang_up}`)
  assert.equal(result.verdict.pass, false)
  assert.match(run.stdout, /verdict {3}FAIL/)
  // The failures are explained.
  const listener = result.diagnosis.find((d) => d.mechanism === 'refused')
  assert.match(listener?.sentence ?? '', /whose listener had closed .*drainDelay ≥ 1\.5s/)
  assert.ok(result.byClient.length >= 2 && result.byRequest.some((r) => r.key.includes('/stream')))
})

test('the lameduck service loses none over 3 rolling updates at 300 requests/s', async () => {
  const run = await runLab(
    [...DEMO_ARGS, '--name', 'lameduck'],
    [process.execPath, fromRoot(service('lameduck').file)],
    RUN_MS,
  )
  const result = run.result!
  const diagnosis = result.diagnosis.map((d) => d.sentence)
  assert.equal(result.failed, 0, `failed requests, diagnosed: ${JSON.stringify(diagnosis)}`)
  assert.equal(run.exit.code, 0, run.stderr)
  assert.ok(result.settings.rate >= 300)
  assert.ok(result.rollouts.length >= 3)
  assert.ok(result.rollouts.every((r) => r.completedAt !== undefined))
  // Every pod deleted during the run drained and exited on its own, none was SIGKILLed.
  const deleted = result.pods.filter((p) => p.deletedAt !== undefined)
  assert.equal(deleted.length, 9)
  for (const pod of deleted) {
    assert.deepEqual(pod.exit, { code: 0, signal: null }, pod.name)
    assert.equal(pod.sigkillAt, undefined)
  }
  assert.ok(
    deleted.some((p) => p.shutdown!.servedInLameDuck > 0),
    'requests served in lame duck',
  )
  assert.equal(result.verdict.status, 'pass')
  assert.ok(result.requests > 2_000, `${result.requests} requests were sent`)
})

test('npm run demo passes --service and --ingress to every lab run', async () => {
  const demo = spawnNode(fromRoot('scripts/demo.mjs'), ['--ingress', 'bogus', 'http1'])
  const exit = await exited(demo.child, 'npm run demo --ingress bogus', 30_000)
  assert.notEqual(exit.code, 0)
  assert.match(demo.stdout(), /^lameduck rollout .* --ingress bogus --name naive -- node /m)
  assert.match(demo.stderr(), /--ingress expects one of none, nginx, haproxy, got 'bogus'/)
  const missing = spawnNode(fromRoot('scripts/demo.mjs'), ['--service'])
  assert.equal((await exited(missing.child, 'npm run demo --service', 30_000)).code, 2)
  assert.match(
    missing.stderr(),
    /npm run demo: --service expects a value, e\.g\. --service iptables/,
  )
})
