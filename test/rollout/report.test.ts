import assert from 'node:assert/strict'
import { test } from 'node:test'
import { parseRolloutArgs } from '../../src/cli/rollout.js'
import { Clock } from '../../src/rollout/clock.js'
import { Recorder } from '../../src/rollout/recorder.js'
import { renderComparison } from '../../src/rollout/report/compare.js'
import { COLORS, renderHtml } from '../../src/rollout/report/html.js'
import { renderText } from '../../src/rollout/report/text.js'
import { buildResult, type LabResult } from '../../src/rollout/result.js'

/** A small result built from recorded facts, with hostile text in the command and an error. */
function sample(): LabResult {
  const parsed = parseRolloutArgs(['--name', 'demo', '--', 'node', '<script>alert(1)</script>'])
  assert.equal(parsed.help, false)
  assert.ok(!parsed.help && parsed.version !== true)
  const options = parsed.options
  const recorder = new Recorder(new Clock())
  recorder.event('pod-created', 'demo-abc-1')
  recorder.request({
    id: 0,
    method: 'GET',
    client: 'fetch',
    path: '/',
    start: 10,
    end: 11,
    outcome: 'ok',
    pod: 'demo-abc-1',
  })
  recorder.request({
    id: 1,
    method: 'GET',
    client: 'fetch',
    path: '/',
    start: 20,
    end: 250,
    outcome: 'ok',
    pod: 'demo-abc-1',
  })
  recorder.request({
    id: 2,
    method: 'GET',
    client: 'agent-lifo',
    path: '/?x=<b>',
    start: 30,
    end: 31,
    outcome: 'reset',
    pod: 'demo-abc-1',
    message: 'read ECONNRESET',
  })
  recorder.sample({
    inFlight: 1,
    endpoints: 1,
    endpointsTerminating: 0,
    endpointsGone: 1,
    readyPods: 0,
    runningPods: 0,
  })
  return buildResult({
    options,
    recorder,
    pods: [
      {
        name: 'demo-abc-1',
        revision: 0,
        port: 1234,
        pid: 42,
        startedAt: 0,
        readyAt: 5,
        deletedAt: 25,
        sigtermAt: 25,
        sigkillAt: 2_025,
        exitedAt: 2_026,
        exit: { code: null, signal: 'SIGKILL' },
      },
    ],
    connectionsPerPod: new Map([['demo-abc-1', 2]]),
    load: undefined,
    rollouts: [{ index: 1, startedAt: 3, completedAt: 40 }],
    warnings: [],
    error: undefined,
  })
}

test('the result counts outcomes, per pod too, and judges against --max-failures', () => {
  const result = sample()
  assert.equal(result.requests, 3)
  assert.equal(result.failed, 1)
  assert.equal(result.outcomes.reset, 1)
  assert.deepEqual(result.verdict, {
    status: 'fail',
    pass: false,
    failed: 1,
    maxFailures: 0,
    unexercisedPods: [],
    undelivered: 0,
  })
  assert.equal(result.pods[0]!.shutdown?.inFlightAtSigterm, 1, 'the 20–250 ms request')
  assert.deepEqual(
    result.byRequest.map((r) => [r.key, r.sent, r.failed]),
    [
      ['GET /', 2, 0],
      ['GET /?x=<b>', 1, 1],
    ],
  )
  assert.equal(result.pods[0]!.failed, 1)
  assert.equal(result.pods[0]!.ok, 2)
  assert.equal(result.pods[0]!.timeToExitMs, 2_001)
  assert.equal(result.latencyMs?.max, 230)
  assert.ok(result.timeSeries.buckets.length >= 1)
  assert.equal(result.timeSeries.buckets[0]!.failed.reset, 1)
})

test('the text report has outcomes, pods with SIGKILL, and the verdict', () => {
  const text = renderText(sample())
  assert.match(text, /connection reset +1/)
  assert.match(text, /success rate {2}66\.666 %/)
  assert.match(text, /demo-abc-1 .* SIGKILL at grace period/)
  assert.match(text, /verdict {3}FAIL: 1 failed request, more than --max-failures 0/)
  // A failure sent and failed within the same hundredth of a second: one time, not a range.
  assert.match(text, /^ {2}0\.03 s {2}connection reset {2}GET \/\?x=<b>/m)
  assert.doesNotMatch(text, /0\.03–0\.03/)
})

test('the HTML report is self-contained and escapes what it quotes', () => {
  const html = renderHtml(sample())
  assert.doesNotMatch(html, /<script/)
  assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/)
  assert.match(html, /GET \/\?x=&lt;b&gt;/)
  assert.doesNotMatch(html, /(src|href)=/, 'nothing loaded from elsewhere')
  assert.match(html, /<svg[^>]*viewBox/)
  assert.match(html, /SIGKILL/)
})

test('the comparison puts results side by side', () => {
  const result = sample()
  const table = renderComparison([
    { title: 'one', subtitle: 'a.ts', result },
    { title: 'two', subtitle: 'b.ts', result },
  ])
  assert.match(table, /connection reset +1 +1/)
  assert.match(table, /verdict +FAIL +FAIL/)
})

test('the HTML report has a latency panel per request and colour-blind-safe, distinct colours', () => {
  const result = sample()
  const series = result.timeSeries.latency
  assert.deepEqual(
    series.map((s) => s.request),
    ['GET /'],
  )
  // The two ok requests (1 ms and 230 ms) complete in different buckets or, in a run this
  // short, the same last one: either way each value is a p50 or p99 of a bucket.
  const values = [...series[0]!.p50, ...series[0]!.p99]
  assert.ok(values.includes(1) && values.includes(230), JSON.stringify(series[0]))
  const page = renderHtml(result)
  assert.match(page, /Latency of ok requests per request, p50 \(solid\) and p99 \(dashed\)/)
  assert.match(page, /min-width:720px/, 'the chart scrolls rather than shrinking below 720 px')
  // "Routed to an exited pod" is not drawn like "connection refused", and no two outcomes share
  // a colour.
  assert.notEqual(COLORS.exited, COLORS.refused)
  const outcomes = [COLORS.ok, COLORS.http_5xx, COLORS.refused, COLORS.reset, COLORS.hang_up]
  assert.equal(new Set([...outcomes, COLORS.timeout, COLORS.other]).size, 7)
  assert.match(page, /Diagnosis/)
})

test('a deleted pod without traffic makes the run inconclusive only if the Service routed to it', () => {
  const parsed = parseRolloutArgs(['--', 'node', 'app.js'])
  assert.ok(!parsed.help && parsed.version !== true)
  const verdict = (routed: boolean) => {
    const recorder = new Recorder(new Clock())
    if (routed) recorder.event('endpoint-added', 'quiet-pod')
    recorder.request({
      id: 0,
      method: 'GET',
      client: 'fetch',
      path: '/',
      start: 1,
      end: 2,
      outcome: 'ok',
      pod: 'other',
    })
    return buildResult({
      options: parsed.options,
      recorder,
      pods: [
        {
          name: 'quiet-pod',
          revision: 0,
          port: 1,
          pid: 1,
          startedAt: 0,
          readyAt: 5,
          deletedAt: 25,
          sigtermAt: 25,
          exitedAt: 30,
          exit: { code: 0, signal: null },
        },
      ],
      connectionsPerPod: new Map(),
      load: undefined,
      rollouts: [],
      warnings: [],
      error: undefined,
    }).verdict
  }
  assert.deepEqual(
    [verdict(true).status, verdict(true).unexercisedPods],
    ['inconclusive', ['quiet-pod']],
  )
  assert.equal(verdict(false).status, 'pass', 'never routed: it could not lose a request')
})
