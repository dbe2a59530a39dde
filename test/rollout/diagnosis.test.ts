// The diagnosis of failed requests: one sentence per mechanism, with the numbers and the fix.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { type DiagnosedPod, diagnose } from '../../src/rollout/diagnosis.js'
import { drainWarning } from '../../src/rollout/lab.js'
import { DEFAULTS, type LabOptions } from '../../src/rollout/options.js'
import type { RequestRecord } from '../../src/rollout/recorder.js'
import { FAST, fixture, runLab } from './lab-helpers.js'

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

test('a pod SIGKILLed while still serving its kept-alive connections is told apart from a slow shutdown', () => {
  // Like a service whose SIGTERM handler only calls server.close(): it keeps answering on the
  // connections it has until SIGKILL.
  const pods = [
    pod('kept', {
      sigtermAt: 1_000,
      endpointRemovedAt: 1_300,
      sigkillAt: 31_000,
      exitedAt: 31_005,
    }),
    pod('slow', {
      sigtermAt: 1_000,
      endpointRemovedAt: 1_300,
      sigkillAt: 31_000,
      exitedAt: 31_005,
    }),
  ]
  const requests = [
    // Answered after the Service stopped routing to it: on connections opened before.
    ...[2_000, 15_000, 29_000, 30_900].map((start) =>
      failure({ outcome: 'ok', pod: 'kept', start, end: start + 50 }),
    ),
    failure({ outcome: 'hang_up', pod: 'kept', start: 30_990, end: 31_002 }),
    failure({ outcome: 'hang_up', pod: 'kept', start: 30_995, end: 31_003, method: 'POST' }),
    // A long request in flight since before SIGTERM, on a pod that stopped serving early.
    failure({ outcome: 'ok', pod: 'slow', start: 1_100, end: 1_150 }),
    failure({ outcome: 'hang_up', pod: 'slow', start: 900, end: 31_001 }),
  ]
  const found = diagnose(requests, { ...context, pods })
  assert.deepEqual(
    found.map((d) => [d.mechanism, d.count, d.pods]),
    [
      ['kept-alive', 2, ['kept']],
      ['sigkill', 1, ['slow']],
    ],
  )
  const kept = found[0]!.sentence
  assert.match(
    kept,
    /^SIGKILL at the grace period \(30s\) cut 2 requests on 1 pod still serving on kept-alive connections after SIGTERM: they answered 4 requests sent after the Service had stopped routing to them, on connections opened before, the last 0\.1 s before SIGKILL; .*never exited/,
  )
  assert.match(
    kept,
    /→ a longer grace period would not help: .*`Connection: close`.*closeIdleConnections/,
  )
  assert.doesNotMatch(kept, /raise it/)
  assert.match(found[1]!.sentence, /raise it above the drain delay plus the longest request/)
})

test('the lab tells a service whose SIGTERM handler only calls server.close() that it never closed its kept-alive connections', async () => {
  // Keep-alive connections kept busy (12 connections, 200 requests/s of 50 ms each: about 5
  // in flight per pod): the ones busy at SIGTERM outlive server.close(), and their client
  // keeps using them until SIGKILL. A pod whose connections all happened to be idle at its
  // SIGTERM exits at once, which is why only one SIGKILLed pod is required.
  const run = await runLab(
    [
      ...FAST,
      '--replicas',
      '2',
      '--rate',
      '200',
      '--path',
      '/?delay=50',
      '--client',
      'agent-fifo',
      '--pools',
      '1',
      '--connections',
      '12',
      '--termination-grace-period',
      '3s',
      '--max-failures',
      '100000',
    ],
    [process.execPath, fixture('close-on-sigterm.mjs')],
    30_000,
  )
  // 0, or 3 (inconclusive) when the machine was too busy to deliver some requests: the
  // diagnosis is what is checked here.
  assert.ok(run.exit.code === 0 || run.exit.code === 3, `exit ${run.exit.code}: ${run.stderr}`)
  const result = run.result!
  const deleted = result.pods.filter((p) => p.deletedAt !== undefined)
  assert.equal(deleted.length, 2)
  const killed = deleted.filter((p) => p.exit?.signal === 'SIGKILL')
  assert.ok(killed.length > 0, 'a pod SIGKILLed at the grace period')
  for (const pod of killed) {
    assert.ok(pod.shutdown!.servedInLameDuck > 0, `${pod.name} answered after its SIGTERM`)
  }
  const kept = result.diagnosis.find((d) => d.mechanism === 'kept-alive')
  assert.ok(kept, `a kept-alive diagnosis in ${JSON.stringify(result.diagnosis, null, 1)}`)
  assert.match(kept.sentence, /still serving on kept-alive connections after SIGTERM/)
  assert.match(kept.sentence, /→ a longer grace period would not help/)
  for (const d of result.diagnosis) {
    assert.doesNotMatch(d.sentence, /raise it above/, 'no advice to raise the grace period')
  }
  assert.match(run.stdout, /still serving on kept-alive connections after SIGTERM/)
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

/** A 502 the proxy answered itself for a request it sent to pod a. */
function answeredBy(
  proxy: 'nginx' | 'haproxy',
  upstreamStatus: string,
  error: 'closed' | 'connect',
  fields: Partial<RequestRecord> = {},
): RequestRecord {
  return failure({
    outcome: 'http_5xx',
    status: 502,
    pod: 'a',
    start: 900,
    end: 1_010,
    ingress: { proxy, upstreamStatus, tried: 1, pods: ['a'], error },
    ...fields,
  })
}

test('a 502/503 an ingress answered itself is worded as the ingress’s answer, by what it logged of the pod, not as the pod’s HTTP 5xx', () => {
  const pods = [pod('a', { sigtermAt: 1_000, exitedAt: 1_010, endpointRemovedAt: 1_400 })]
  const nginx = (error: 'closed' | 'connect', fields: Partial<RequestRecord> = {}) =>
    answeredBy('nginx', '502', error, fields)
  const requests = [
    nginx('closed', { method: 'POST' }),
    nginx('closed'),
    nginx('connect', { start: 1_100, end: 1_150 }),
    // The pod's own 503 after SIGTERM, passed through by nginx: the pod's answer.
    failure({
      outcome: 'http_5xx',
      status: 503,
      pod: 'a',
      start: 1_050,
      end: 1_060,
      ingress: { proxy: 'nginx', upstreamStatus: '503', tried: 1, pods: ['a'] },
    }),
  ]
  const byMechanism = new Map(
    diagnose(requests, { ...context, pods }).map((d) => [d.mechanism, d.sentence]),
  )
  assert.deepEqual([...byMechanism.keys()].sort(), [
    'http-5xx',
    'ingress-closed',
    'ingress-connect',
  ])
  assert.match(
    byMechanism.get('ingress-closed')!,
    /^nginx answered 502 to 2 requests: 1 pod closed or reset the connection before answering, 0\.0 s after SIGTERM .*never a POST once sent\); 1 of them POST, which no client may retry →/,
  )
  assert.match(
    byMechanism.get('ingress-connect')!,
    /^nginx answered 502 to 1 request: it could not connect to 1 pod .*drainDelay ≥ 1\.5s/,
  )
  assert.match(byMechanism.get('http-5xx')!, /^1 HTTP 5xx answered by 1 pod after SIGTERM/)
})

/** A request on a kept-alive connection that got no response, as the ingress saw it. */
function unanswered(ingress: RequestRecord['ingress']): RequestRecord {
  return failure({ outcome: 'hang_up', reused: true, start: 900, end: 1_010, ingress })
}

test('a client connection haproxy closed without an answer is worded as haproxy’s doing', () => {
  const [d, ...rest] = diagnose(
    [
      unanswered({
        proxy: 'haproxy',
        upstreamStatus: '',
        tried: 0,
        pods: [],
        error: 'closed',
        unlogged: true,
      }),
      answeredBy('haproxy', 'SH', 'closed'),
    ],
    { ...context, pods: [pod('a', { sigtermAt: 1_000, exitedAt: 1_010 })] },
  )
  assert.equal(rest.length, 0)
  assert.equal(d!.mechanism, 'ingress-closed')
  assert.match(
    d!.sentence,
    /^haproxy answered 502 to 1 request, and haproxy closed the client's connection without an answer under 1 request .*retry-on conn-failure/,
  )
})

test('failures at a reload of the lab’s nginx are worded as the lab’s ingress’s own', () => {
  const [d, ...rest] = diagnose(
    [unanswered({ upstreamStatus: '', tried: 0, pods: [], reload: true })],
    { ...context, pods: [] },
  )
  assert.equal(rest.length, 0)
  assert.equal(d!.mechanism, 'ingress-reload')
  assert.match(
    d!.sentence,
    /^1 socket hang up at reloads of the lab's nginx, which never logged them: .* the lab's ingress's own failures, not the service's/,
  )
})

test('a timeout while the ingress was still retrying is worded as its retries, not as overload of the pod it logged last', () => {
  const pods = [pod('a', {}), pod('gone', { sigtermAt: 1_000, exitedAt: 1_010 })]
  const [d, ...rest] = diagnose(
    [
      failure({
        outcome: 'timeout',
        pod: 'a',
        start: 1_100,
        end: 6_100,
        ingress: { proxy: 'haproxy', upstreamStatus: '--', tried: 3, pods: ['a'] },
      }),
    ],
    { ...context, pods },
  )
  assert.equal(rest.length, 0)
  assert.equal(d!.mechanism, 'ingress-retrying')
  assert.match(
    d!.sentence,
    /^1 timed out at the client .* while haproxy was still trying pods: .*retries a failed connection up to 3 times.*\(drainDelay ≥ 1\.5s/,
  )
})
