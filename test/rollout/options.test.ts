import assert from 'node:assert/strict'
import { test } from 'node:test'
import { HELP, parseRolloutArgs } from '../../src/cli/rollout.js'
import { planRollingUpdate } from '../../src/rollout/deployment.js'
import { weightedPicker } from '../../src/rollout/load.js'
import {
  LabOptionError,
  parseDuration,
  parseIntOrPercent,
  resolveFenceposts,
} from '../../src/rollout/options.js'
import { percentile } from '../../src/rollout/result.js'

const options = (args: string[]) => {
  const parsed = parseRolloutArgs([...args, '--', 'node', 'app.js'])
  assert.equal(parsed.help, false)
  assert.ok(!parsed.help && parsed.version !== true)
  return parsed.options
}

test('durations take ms, s, m or bare seconds', () => {
  assert.equal(parseDuration('x', '500ms', [0, 1e9]), 500)
  assert.equal(parseDuration('x', '1.5s', [0, 1e9]), 1_500)
  assert.equal(parseDuration('x', '2m', [0, 1e9]), 120_000)
  assert.equal(parseDuration('x', '30', [0, 1e9]), 30_000)
  assert.throws(() => parseDuration('x', '1h', [0, 1e9]), /--x expects a duration.*got '1h'/)
  assert.throws(() => parseDuration('x', '5s', [0, 1_000]), /--x must be from 0s to 1s, got '5s'/)
})

test('maxSurge rounds up and maxUnavailable rounds down, as Kubernetes does', () => {
  const pct = (value: number) => ({ kind: 'percent', value }) as const
  const n = (value: number) => ({ kind: 'count', value }) as const
  assert.deepEqual(resolveFenceposts(3, pct(25), pct(25)), { maxSurge: 1, maxUnavailable: 0 })
  assert.deepEqual(resolveFenceposts(10, pct(25), pct(25)), { maxSurge: 3, maxUnavailable: 2 })
  assert.deepEqual(resolveFenceposts(4, pct(25), pct(25)), { maxSurge: 1, maxUnavailable: 1 })
  assert.deepEqual(resolveFenceposts(3, n(0), n(2)), { maxSurge: 0, maxUnavailable: 2 })
  // Both rounding to 0 would stall the rollout: the controller makes maxUnavailable 1.
  assert.deepEqual(resolveFenceposts(3, n(0), pct(10)), { maxSurge: 0, maxUnavailable: 1 })
  assert.deepEqual(resolveFenceposts(3, n(1), n(9)), { maxSurge: 1, maxUnavailable: 3 })
  assert.deepEqual(parseIntOrPercent('max-surge', '50%'), { kind: 'percent', value: 50 })
  assert.throws(() => parseIntOrPercent('max-surge', '150%'), /--max-surge must be from 0% to 100%/)
  assert.throws(
    () => parseIntOrPercent('max-surge', '-1'),
    /expects a whole number or a percentage/,
  )
})

test('the command line: defaults, repeatable options, the command after --', () => {
  const o = options([
    '--path',
    '9:/',
    '--path',
    '1:/?delay=2000',
    '--post',
    '2:/echo',
    '--client',
    '3:agent-fifo',
    '--client',
    'new-connection',
    '--pools',
    '2',
    '--env',
    'A=1',
    '--env',
    'B=x=y',
  ])
  assert.deepEqual(o.command, ['node', 'app.js'])
  assert.equal(o.replicas, 3)
  assert.equal(o.gracePeriodMs, 30_000)
  assert.deepEqual(o.maxSurge, { kind: 'percent', value: 25 })
  assert.deepEqual(o.paths, [
    { path: '/', weight: 9, method: 'GET' },
    { path: '/?delay=2000', weight: 1, method: 'GET' },
    { path: '/echo', weight: 2, method: 'POST' },
  ])
  assert.deepEqual(o.clients, [
    { kind: 'agent-fifo', weight: 3 },
    { kind: 'new-connection', weight: 1 },
  ])
  assert.equal(o.pools, 2)
  const defaults = options([])
  assert.deepEqual(
    defaults.clients.map((c) => c.kind),
    ['agent-lifo', 'agent-fifo', 'fetch', 'new-connection'],
    'every HTTP/1.1 client kind by default',
  )
  assert.equal(defaults.wsPath, '/')
  const protocols = options(['--client', '2:h2', '--client', 'ws', '--ws-path', '/socket'])
  assert.deepEqual(protocols.clients, [
    { kind: 'h2', weight: 2 },
    { kind: 'ws', weight: 1 },
  ])
  assert.equal(protocols.wsPath, '/socket')
  assert.deepEqual(o.env, { A: '1', B: 'x=y' })
  assert.deepEqual(parseRolloutArgs(['--help']), { help: true })
})

test('bad input names the option, the value and what was expected', () => {
  const bad: [string[], RegExp][] = [
    [['--replicas', '0'], /--replicas must be from 1 to 50, got '0'/],
    [['--replicas', 'three'], /--replicas expects a whole number from 1 to 50, got 'three'/],
    [['--rate', '0'], /--rate must be from 1 to 20000/],
    [['--max-unavailable', '101%'], /--max-unavailable must be from 0% to 100%/],
    [['--max-surge', '0', '--max-unavailable', '0'], /cannot both be 0/],
    [
      ['--pre-stop-sleep', '10s', '--termination-grace-period', '5s'],
      /must not exceed --termination-grace-period/,
    ],
    [['--path', 'nope'], /--path expects PATH or WEIGHT:PATH/],
    [['--post', '0:/echo'], /--post must be from weight 1/],
    [
      ['--client', 'wget'],
      /--client expects KIND or WEIGHT:KIND with KIND one of agent-lifo, agent-fifo, fetch, new-connection, h2, ws, curl, py-requests, go-http, got 'wget'/,
    ],
    [['--service', 'ipvs'], /--service expects one of model, iptables, got 'ipvs'/],
    [['--ingress', 'traefik'], /--ingress expects one of none, nginx, haproxy, got 'traefik'/],
    [['--from', '/no/such/deployment.yaml'], /--from \/no\/such\/deployment\.yaml: ENOENT/],
    [['--pools', '0'], /--pools must be from 1 to 64/],
    [['--ws-path', 'socket'], /--ws-path expects a path starting with '\/', got 'socket'/],
    [['--env', '1A=b'], /--env expects KEY=VALUE/],
    [['--readiness-path', 'readyz'], /--readiness-path expects a path starting with '\/'/],
    [
      ['--progress-deadline', '5s', '--min-ready', '5s'],
      /--progress-deadline \(5s\) must exceed --min-ready/,
    ],
    [['--frobnicate'], /^unknown option '--frobnicate'; run `lameduck rollout --help`/],
    [
      ['--replicas'],
      /^--replicas expects a value, e\.g\. --replicas 3; run `lameduck rollout --help`/,
    ],
    [['--quiet=yes'], /^--quiet takes no value; run/],
    [
      ['--timeout', '-5'],
      /^--timeout expects a value, e\.g\. --timeout <value> \(a value that starts with '-' goes after '=': --timeout=-…\); run/,
    ],
    [['--name', 'Not_A_Label'], /--name expects a DNS label/],
  ]
  for (const [args, message] of bad) {
    assert.throws(
      () => options(args),
      (error: Error) => {
        assert.ok(error instanceof LabOptionError, `${args.join(' ')} gives a LabOptionError`)
        assert.match(error.message, message)
        return true
      },
    )
  }
  assert.throws(() => parseRolloutArgs(['--replicas', '2']), /missing the command to run/)
})

test('--help explains every option and its default', () => {
  const documented = new Set([...HELP.matchAll(/(--[a-z-]+)/g)].map((m) => m[1]))
  for (const name of [
    'replicas',
    'rollouts',
    'max-surge',
    'max-unavailable',
    'min-ready',
    'progress-deadline',
    'name',
    'termination-grace-period',
    'pre-stop-sleep',
    'readiness-path',
    'readiness-period',
    'readiness-timeout',
    'readiness-failure-threshold',
    'readiness-success-threshold',
    'env',
    'port-env',
    'probe-port-env',
    'pod-logs',
    'from',
    'service',
    'ingress',
    'propagation-delay',
    'propagation-jitter',
    'rate',
    'connections',
    'path',
    'post',
    'client',
    'pools',
    'timeout',
    'max-requests',
    'max-duration',
    'max-failures',
    'json',
    'html',
    'quiet',
    'help',
  ]) {
    assert.ok(documented.has(`--${name}`), `--${name} is in --help`)
  }
  // An option's block: its line and the more indented lines under it.
  const options = HELP.slice(0, HELP.indexOf('\nExamples\n'))
  const blocks = options.split(/\n(?= {2}-)/).filter((block) => /^ {2}-/.test(block))
  const flags = /^ {2}(--env|--pod-logs|--json|--html|--quiet|-h|--version)\b/
  const noDefault = blocks.filter((block) => !flags.test(block) && !block.includes('default'))
  assert.deepEqual(noDefault, [], 'every option with a value states its default')
})

test('a rolling update with maxSurge 1, maxUnavailable 0 replaces one pod at a time', () => {
  const fenceposts = { maxSurge: 1, maxUnavailable: 0 }
  const old = [0, 1, 2].map(() => ({ revision: 0, readySince: 0 }))
  const step = (pods: { revision: number; readySince: number | undefined }[]) =>
    planRollingUpdate({ replicas: 3, fenceposts, minReadyMs: 0, revision: 1, pods, now: 100 })
  // Start: surge one new pod, delete nothing until it is available.
  let plan = step(old)
  assert.equal(plan.create, 1)
  assert.equal(plan.delete.length, 0)
  const fresh = { revision: 1, readySince: undefined as number | undefined }
  plan = step([...old, fresh])
  assert.deepEqual(
    [plan.create, plan.delete.length],
    [0, 0],
    'waits while the new pod is not ready',
  )
  fresh.readySince = 50
  plan = step([...old, fresh])
  assert.deepEqual([plan.create, plan.delete.length], [0, 1], 'one old pod goes once it is ready')
})

test('minReadySeconds holds the scale-down until the new pod has been ready long enough', () => {
  const pods = [
    { revision: 0, readySince: 0 },
    { revision: 1, readySince: 90 },
  ]
  const plan = (now: number) =>
    planRollingUpdate({
      replicas: 1,
      fenceposts: { maxSurge: 1, maxUnavailable: 0 },
      minReadyMs: 50,
      revision: 1,
      pods,
      now,
    })
  assert.equal(plan(100).delete.length, 0)
  assert.deepEqual(plan(140).delete, [pods[0]])
})

test('maxSurge 0, maxUnavailable 1 deletes first, then replaces', () => {
  const old = [0, 1, 2].map((i) => ({ revision: 0, readySince: i }))
  const plan = planRollingUpdate({
    replicas: 3,
    fenceposts: { maxSurge: 0, maxUnavailable: 1 },
    minReadyMs: 0,
    revision: 1,
    pods: old,
    now: 100,
  })
  assert.equal(plan.create, 0)
  assert.deepEqual(plan.delete, [old[2]], 'the most recently ready old pod goes first')
  const next = planRollingUpdate({
    replicas: 3,
    fenceposts: { maxSurge: 0, maxUnavailable: 1 },
    minReadyMs: 0,
    revision: 1,
    pods: old.slice(0, 2),
    now: 100,
  })
  assert.deepEqual([next.create, next.delete.length], [1, 0])
})

test('weighted paths and percentiles', () => {
  const draws = [0, 0.89, 0.9, 0.99]
  const pick = weightedPicker(
    [
      { path: '/', weight: 9 },
      { path: '/slow', weight: 1 },
    ],
    () => draws.shift()!,
  )
  assert.deepEqual(
    [pick(), pick(), pick(), pick()].map((p) => p.path),
    ['/', '/', '/slow', '/slow'],
  )
  const sorted = Float64Array.from({ length: 100 }, (_, i) => i + 1)
  assert.equal(percentile(sorted, 50), 50)
  assert.equal(percentile(sorted, 99), 99)
  assert.equal(percentile(new Float64Array(0), 50), 0)
})
