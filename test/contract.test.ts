// The facts in src/contract.ts tie the parts together: the checker's model of the runtime
// must be the runtime. Each test asks both sides the same question and compares the answers,
// so a default, a limit or a grammar changed on one side alone fails here.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { check } from '../src/check/index.js'
import { parseServeArgs } from '../src/cli/serve.js'
import { parseWorkersArgs } from '../src/cli/serve-workers.js'
import {
  childStopHookMs,
  ENV,
  FORCE_EXIT_MARGIN_MS,
  forceExitAfterMs,
  MAX_TIMER_MS,
  parseDuration,
} from '../src/contract.js'
import { resolveOptions } from '../src/options.js'
import { parseDuration as parseLabDuration } from '../src/rollout/options.js'
import { stopBudgetMs } from '../src/serve/proxy-mode.js'

const POD_ENV = { KUBERNETES_SERVICE_HOST: '10.0.0.1' }

/** One lameduck Deployment behind a Service; `env` and `command` go on its container. */
function manifest(env: Record<string, string> = {}, command?: string[]): string {
  const envLines = Object.entries(env).map(
    ([name, value]) => `            - {name: ${name}, value: ${JSON.stringify(value)}}`,
  )
  return [
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata: {name: app, annotations: {lameduck/app: "true"}}',
    'spec:',
    '  replicas: 3',
    '  selector: {matchLabels: {app: app}}',
    '  template:',
    '    metadata: {labels: {app: app}}',
    '    spec:',
    '      containers:',
    '        - name: app',
    '          image: app:1',
    ...(command === undefined ? [] : [`          command: ${JSON.stringify(command)}`]),
    '          ports: [{name: http, containerPort: 8080}]',
    '          readinessProbe: {httpGet: {path: /readyz, port: http}}',
    ...(envLines.length === 0 ? [] : ['          env:', ...envLines]),
    '---',
    'apiVersion: v1',
    'kind: Service',
    'metadata: {name: app}',
    'spec: {selector: {app: app}, ports: [{port: 80, targetPort: http}]}',
    '',
  ].join('\n')
}

function timelineOf(text: string) {
  const result = check([{ name: 'app.yaml', text }], {})
  const timeline = result.timelines[0]
  assert.ok(timeline !== undefined, 'the checker computed a timeline for the Deployment')
  return timeline
}

test("the checker's default timeline is what the runtime resolves with no options in a pod", () => {
  const runtime = resolveOptions({}, POD_ENV)
  const t = timelineOf(manifest())
  assert.equal(t.drain.ms, runtime.drainDelay)
  assert.equal(t.shutdown.ms, runtime.shutdownTimeout)
  assert.equal(t.hooks.ms, runtime.hookTimeout)
  assert.equal(t.drain.source, 'default')
  // The runtime ends the process by every phase's deadline plus its margin; the checker
  // budgets the same phases (one hook) and a margin that covers the runtime's.
  const runtimeDeadline = forceExitAfterMs({
    drainDelayMs: runtime.drainDelay,
    shutdownTimeoutMs: runtime.shutdownTimeout,
    hooksMs: runtime.hookTimeout,
  })
  assert.equal(runtimeDeadline, 36_000)
  assert.ok(t.marginSeconds * 1000 >= FORCE_EXIT_MARGIN_MS)
  assert.equal(
    t.totalSeconds,
    (runtimeDeadline - FORCE_EXIT_MARGIN_MS) / 1000 + t.marginSeconds,
    'the checker adds up the runtime phases',
  )
})

test('every timing variable is read alike by the runtime and the checker', () => {
  const raws = ['0', '1', '250', ' 1500 ', '-1', '1.5', '10s', 'abc', '2147483647', '2147483648']
  for (const option of ['drainDelay', 'shutdownTimeout', 'hookTimeout'] as const) {
    const variable = ENV[option]
    for (const raw of raws) {
      const env = { ...POD_ENV, [variable]: raw }
      let runtime: number | undefined
      try {
        runtime = resolveOptions({}, env)[option]
      } catch {
        runtime = undefined
      }
      const t = timelineOf(manifest({ [variable]: raw }))
      const setting =
        option === 'drainDelay' ? t.drain : option === 'shutdownTimeout' ? t.shutdown : t.hooks
      if (runtime === undefined) {
        assert.equal(setting.invalid, raw, `${variable}=${JSON.stringify(raw)}: rejected by both`)
      } else {
        assert.equal(
          setting.invalid,
          undefined,
          `${variable}=${JSON.stringify(raw)}: taken by both`,
        )
        assert.equal(setting.ms, runtime, `${variable}=${JSON.stringify(raw)}: same value`)
      }
    }
  }
})

test('every command line reads durations with one grammar', () => {
  const raws = [
    '500ms',
    '2s',
    '1.5s',
    '1m',
    '30',
    '0',
    ' 2s ',
    '1h',
    '-1s',
    's',
    '10 s',
    '2147484s',
  ]
  for (const raw of raws) {
    const ms = parseDuration(raw)
    const valid = ms !== undefined && ms <= MAX_TIMER_MS
    let serve: number | undefined
    try {
      serve = parseServeArgs(['--drain-delay', raw, '--', 'true'], {}).options?.drainDelayMs
    } catch {
      serve = undefined
    }
    let workers: number | undefined
    try {
      const parsed = parseWorkersArgs(
        ['--workers', '1', '--drain-delay', raw, fileURLToPath(import.meta.url)],
        {},
      )
      workers = parsed.help ? undefined : parsed.options.drainDelay
    } catch {
      workers = undefined
    }
    let lab: number | undefined
    try {
      lab = parseLabDuration('x', raw, [0, MAX_TIMER_MS])
    } catch {
      lab = undefined
    }
    const checker = timelineOf(
      manifest({}, ['lameduck', 'serve', '--drain-delay', raw, '--', 'uvicorn', 'main:app']),
    ).drain
    const expected = valid ? ms : undefined
    assert.equal(serve, expected, `serve --drain-delay ${JSON.stringify(raw)}`)
    assert.equal(workers, expected, `serve --workers --drain-delay ${JSON.stringify(raw)}`)
    assert.equal(lab, expected, `rollout duration ${JSON.stringify(raw)}`)
    if (valid) assert.equal(checker.ms, ms, `check reads --drain-delay ${JSON.stringify(raw)}`)
    else assert.equal(checker.invalid, raw, `check rejects --drain-delay ${JSON.stringify(raw)}`)
  }
})

test("serve's stop budget is the runtime's deadline with the child's stop as the hook", () => {
  const phases = { drainDelayMs: 3_000, shutdownTimeoutMs: 4_000, childStopTimeoutMs: 5_000 }
  assert.equal(
    stopBudgetMs(phases),
    forceExitAfterMs({
      drainDelayMs: 3_000,
      shutdownTimeoutMs: 4_000,
      hooksMs: childStopHookMs(5_000),
    }),
  )
  // The checker's proxy-mode timeline counts the child's stop where the hooks would be, and
  // its margin covers what serve adds to reap the child.
  const t = timelineOf(
    manifest({}, ['lameduck', 'serve', '--child-stop-timeout', '5s', '--', 'gunicorn', 'app']),
  )
  assert.equal(t.hooks.ms, 0)
  assert.equal(t.childStop?.ms, 5_000)
  assert.ok(t.marginSeconds * 1000 >= childStopHookMs(0) + FORCE_EXIT_MARGIN_MS)
})

test('a sum of deadlines past the timer limit is clamped, not fired at once', () => {
  assert.equal(
    forceExitAfterMs({ drainDelayMs: MAX_TIMER_MS, shutdownTimeoutMs: MAX_TIMER_MS, hooksMs: 1 }),
    MAX_TIMER_MS,
  )
})
