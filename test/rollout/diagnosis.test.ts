// The diagnosis of failed requests: one sentence per mechanism, with the numbers and the fix.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type DiagnosedPod, diagnose } from '../../src/rollout/diagnosis.js'
import { drainWarning } from '../../src/rollout/lab.js'
import { DEFAULTS, type LabOptions } from '../../src/rollout/options.js'
import type { RequestRecord } from '../../src/rollout/recorder.js'

const context = {
  propagationDelayMs: 1_000,
  propagationJitterMs: 250,
  gracePeriodMs: 30_000,
  preStopSleepMs: 0,
  timeoutMs: 5_000,
}

function pod(name: string, fields: Partial<DiagnosedPod>): DiagnosedPod {
  return { name, revision: 0, port: 1, pid: 1, startedAt: 0, ...fields }
}

let id = 0
function failure(fields: Partial<RequestRecord> & Pick<RequestRecord, 'outcome'>): RequestRecord {
  return { id: id++, method: 'GET', path: '/', client: 'agent-lifo', start: 0, end: 0, ...fields }
}

test('refused connections to a pod whose listener closed at SIGTERM name the drain delay to use', () => {
  const pods = [pod('a', { sigtermAt: 1_000, exitedAt: 1_010, endpointRemovedAt: 2_100 })]
  const requests = [
    failure({ outcome: 'refused', pod: 'a', start: 1_100, end: 1_101 }),
    failure({ outcome: 'refused', pod: 'a', start: 1_500, end: 1_501, method: 'POST' }),
    failure({ outcome: 'ok', pod: 'a', start: 10, end: 11 }),
  ]
  const [d, ...rest] = diagnose(requests, { ...context, pods })
  assert.equal(rest.length, 0)
  assert.equal(d!.mechanism, 'refused')
  assert.equal(d!.count, 2)
  assert.equal(d!.posts, 1)
  assert.equal(
    d!.sentence,
    '2 refused: sent to 1 pod whose listener had closed 0.1 s after SIGTERM while the Service still routed new connections to them for 1.0 s more; 1 of them POST, which no client may retry → keep the listener open and serving for longer than the propagation delay (drainDelay ≥ 1.5s here: 1s ± 250ms plus a margin)',
  )
})

test('each mechanism gets its own cluster, largest first', () => {
  const pods = [
    pod('exits', { sigtermAt: 1_000, exitedAt: 1_020, endpointRemovedAt: 2_000 }),
    pod('killed', { sigtermAt: 1_000, sigkillAt: 3_000, exitedAt: 3_001 }),
    pod('errors', { sigtermAt: 1_000, exitedAt: 4_000 }),
  ]
  const requests = [
    // A request sent after SIGTERM on a reused keep-alive connection, no response.
    failure({ outcome: 'hang_up', pod: 'exits', start: 1_010, end: 1_011, reused: true }),
    failure({ outcome: 'hang_up', pod: 'exits', start: 1_012, end: 1_013, reused: true }),
    failure({ outcome: 'hang_up', pod: 'exits', start: 1_014, end: 1_015, reused: true }),
    // A streamed response cut when the process exited.
    failure({ outcome: 'hang_up', pod: 'exits', start: 900, end: 1_020, status: 200 }),
    failure({ outcome: 'timeout', pod: 'killed', start: 2_000, end: 3_000 }),
    failure({ outcome: 'http_5xx', pod: 'errors', start: 1_500, end: 1_501, status: 503 }),
    failure({
      outcome: 'refused',
      start: 50,
      end: 51,
      message: 'the Service had no ready endpoint',
    }),
  ]
  const found = diagnose(requests, { ...context, pods })
  assert.deepEqual(
    found.map((d) => [d.mechanism, d.count]),
    [
      ['keep-alive', 3],
      ['cut', 1],
      ['sigkill', 1],
      ['http-5xx', 1],
      ['no-endpoint', 1],
    ],
  )
  const sentence = (m: string) => found.find((d) => d.mechanism === m)!.sentence
  assert.match(
    sentence('keep-alive'),
    /^3 socket hang up on reused keep-alive connections .* 3 while the Service still routed to the pod → send `Connection: close`/,
  )
  assert.match(
    sentence('cut'),
    /in flight when 1 pod exited 0\.0 s after SIGTERM, 1 of them mid-response .* → .*streamed responses included/,
  )
  assert.match(
    sentence('sigkill'),
    /^SIGKILL at the grace period cut 1 request on 1 pod, 2\.0 s after SIGTERM → .*terminationGracePeriodSeconds \(30s/,
  )
  assert.match(sentence('http-5xx'), /only the readiness probe should answer 503/)
  assert.match(sentence('no-endpoint'), /no ready endpoint/)
  for (const d of found) assert.match(d.sentence, / → /, 'every sentence names a fix')
})

test('a visible drain delay shorter than the propagation delay plus jitter is warned about', () => {
  const options = (env: Record<string, string>, preStopSleepMs = 0) =>
    ({ ...DEFAULTS, env, preStopSleepMs }) as unknown as LabOptions
  assert.match(
    drainWarning(options({ LAMEDUCK_DRAIN_DELAY_MS: '800' }), {})!,
    /^LAMEDUCK_DRAIN_DELAY_MS=800 is shorter than the propagation delay plus its jitter \(1s \+ 250ms\)/,
  )
  assert.match(
    drainWarning(options({}), { LAMEDUCK_DRAIN_DELAY_MS: '1000' })!,
    /LAMEDUCK_DRAIN_DELAY_MS=1000/,
    "the lab's own environment is passed on to the pods, so it counts too",
  )
  assert.equal(drainWarning(options({ LAMEDUCK_DRAIN_DELAY_MS: '1250' }), {}), undefined)
  assert.equal(drainWarning(options({ LAMEDUCK_DRAIN_DELAY_MS: '800' }, 500), {}), undefined)
  assert.equal(drainWarning(options({}), {}), undefined, 'nothing visible, nothing said')
})

test('timeouts on pods that were not being deleted are told apart as overload', () => {
  const pods = [pod('busy', {}), pod('leaving', { deletedAt: 5_000, sigtermAt: 5_000 })]
  const requests = [
    failure({ outcome: 'timeout', pod: 'busy', start: 100, end: 5_100 }),
    failure({ outcome: 'timeout', pod: 'leaving', start: 100, end: 4_000 }),
    failure({ outcome: 'timeout', pod: 'leaving', start: 4_900, end: 9_900 }),
    failure({ outcome: 'ok', pod: 'busy', start: 0, end: 3_000 }),
  ]
  const found = diagnose(requests, { ...context, pods })
  assert.deepEqual(
    found.map((d) => [d.mechanism, d.count]),
    [
      ['overload', 2],
      ['timeout', 1],
    ],
  )
  assert.match(
    found[0]!.sentence,
    /^2 timed out on 2 pods that were not being deleted .* p99 latency of the ok requests 3\.0 s\): not a shutdown failure/,
  )
})

test('connections to the address of a pod whose namespace was gone (EHOSTUNREACH) are their own cluster', () => {
  const pods = [pod('gone', { sigtermAt: 1_000, exitedAt: 1_010, endpointRemovedAt: 1_400 })]
  const requests = [
    failure({
      outcome: 'other',
      pod: 'gone',
      start: 1_100,
      end: 4_100,
      message: 'EHOSTUNREACH: connect EHOSTUNREACH 198.19.7.1:80',
    }),
  ]
  const [d, ...rest] = diagnose(requests, { ...context, pods })
  assert.equal(rest.length, 0)
  assert.equal(d!.mechanism, 'unreachable')
  assert.equal(
    d!.sentence,
    '1 other with EHOSTUNREACH: sent to the address of 1 pod that had exited (their network namespace gone, so no reset came back) while the Service still routed new connections to them for 0.4 s more → keep the listener open and serving for longer than the propagation delay (drainDelay ≥ 1.5s here: 1s ± 250ms plus a margin)',
  )
})
