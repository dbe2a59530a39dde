import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type CheckResult, check } from '../../src/check/index.js'

// Rules through the public check function, on small inline manifests.

interface Options {
  grace?: number
  replicas?: number
  container?: string
  pod?: string
  spec?: string
  namespace?: string
  name?: string
  /** Annotate the workload lameduck/app: "true" (default true: most tests are about lameduck apps). */
  lameduck?: boolean
}

/** A Deployment whose one container is `container` (YAML lines under `- name: app`). */
function deployment(o: Options = {}): string {
  const name = o.name ?? 'app'
  return [
    'apiVersion: apps/v1',
    'kind: Deployment',
    'metadata:',
    `  name: ${name}`,
    ...(o.lameduck === false ? [] : ['  annotations: {lameduck/app: "true"}']),
    ...(o.namespace === undefined ? [] : [`  namespace: ${o.namespace}`]),
    'spec:',
    `  replicas: ${o.replicas ?? 3}`,
    ...(o.spec === undefined ? [] : [o.spec]),
    `  selector: {matchLabels: {app: ${name}}}`,
    '  template:',
    `    metadata: {labels: {app: ${name}}}`,
    '    spec:',
    ...(o.grace === undefined ? [] : [`      terminationGracePeriodSeconds: ${o.grace}`]),
    ...(o.pod === undefined ? [] : [o.pod]),
    '      containers:',
    `        - name: ${name}`,
    '          image: app:1',
    o.container ??
      [
        '          ports: [{name: http, containerPort: 8080}]',
        '          readinessProbe: {httpGet: {path: /readyz, port: http}, periodSeconds: 5, failureThreshold: 2}',
      ].join('\n'),
    '',
  ].join('\n')
}

const serving = [
  '          ports: [{name: http, containerPort: 8080}]',
  '          readinessProbe: {httpGet: {path: /readyz, port: http}, periodSeconds: 5, failureThreshold: 2}',
]

function run(...texts: string[]): CheckResult {
  return check(
    texts.map((text, i) => ({ name: `m${i}.yaml`, text })),
    { ignore: ['no-spread'] },
  )
}

function rules(result: CheckResult): string[] {
  return result.findings.map((f) => f.rule)
}

describe('timeline', () => {
  test('the grace-period message adds up preStop, drain, shutdown, hooks and margin', () => {
    const r = run(
      deployment({
        grace: 30,
        container: [...serving, '          lifecycle: {preStop: {sleep: {seconds: 10}}}'].join(
          '\n',
        ),
      }),
    )
    assert.deepEqual(rules(r), ['grace-period-too-short'])
    assert.match(
      r.findings[0]!.message,
      /^preStop 10 s \+ drain 10 s \+ shutdown 20 s \+ hooks 5 s \+ margin 5 s = 50 s > grace 30 s$/,
    )
    assert.match(r.findings[0]!.fix, /terminationGracePeriodSeconds: 50/)
    assert.equal(r.findings[0]!.path, 'spec.template.spec.terminationGracePeriodSeconds')
  })

  test('LAMEDUCK_* env (milliseconds) replaces the defaults', () => {
    const r = run(
      deployment({
        grace: 20,
        container: [
          ...serving,
          '          env:',
          '            - {name: LAMEDUCK_DRAIN_DELAY_MS, value: "5000"}',
          '            - {name: LAMEDUCK_SHUTDOWN_TIMEOUT_MS, value: "8000"}',
          '            - {name: LAMEDUCK_HOOK_TIMEOUT_MS, value: "1500"}',
          '            - {name: LAMEDUCK_SHUTDOWN_TIMEOUT_MS, value: "9000"}',
        ].join('\n'),
      }),
    )
    const [t] = r.timelines
    // The last of two entries with one name wins, as in the kubelet.
    assert.deepEqual([t!.drain.seconds, t!.shutdown.seconds, t!.hooks.seconds], [5, 9, 1.5])
    assert.equal(t!.totalSeconds, 20.5)
    assert.match(
      r.findings[0]!.message,
      /drain 5 s \+ shutdown 9 s \+ hooks 1.5 s \+ margin 5 s = 20.5 s > grace 20 s/,
    )
    assert.match(r.findings[0]!.fix, /terminationGracePeriodSeconds: 21/)
  })

  for (const [command, seconds, atLeast] of [
    ['[sleep, "5"]', 5, false],
    ['[/bin/sh, -c, "sleep 5"]', 5, false],
    ['[sh, -c, "sleep 2; sleep 3s"]', 5, false],
    ['[sh, -c, "sleep 5 && nginx -s quit"]', 5, true],
    ['[sleep, 1m]', 60, false],
    ['[busybox, sleep, "7"]', 7, false],
  ] as const) {
    test(`exec preStop ${command} sleeps ${atLeast ? 'at least ' : ''}${seconds} s`, () => {
      const r = run(
        deployment({
          grace: 200,
          container: [
            ...serving,
            `          lifecycle: {preStop: {exec: {command: ${command}}}}`,
          ].join('\n'),
        }),
      )
      const [t] = r.timelines
      assert.deepEqual(
        [t!.preStop.kind, t!.preStop.seconds, t!.preStop.atLeast],
        ['exec-sleep', seconds, atLeast],
      )
      // A hook that also runs other commands cannot become a sleep action without losing
      // them: prestop-exec-sleep has no fix to offer it.
      assert.deepEqual(rules(r), atLeast ? [] : ['prestop-exec-sleep'])
    })
  }

  test('a native sleep longer than the grace period is rejected by the API server', () => {
    const r = run(
      deployment({
        grace: 20,
        container: [...serving, '          lifecycle: {preStop: {sleep: {seconds: 25}}}'].join(
          '\n',
        ),
      }),
    )
    assert.deepEqual(rules(r), ['prestop-exceeds-grace'])
    assert.match(r.findings[0]!.message, /preStop sleep 25 s ≥ grace 20 s: the API server rejects/)
    assert.equal(
      r.findings[0]!.path,
      'spec.template.spec.containers[0].lifecycle.preStop.sleep.seconds',
    )
  })

  test('sleep infinity in preStop uses up any grace period', () => {
    const r = run(
      deployment({
        grace: 300,
        container: [
          ...serving,
          '          lifecycle: {preStop: {exec: {command: [sleep, infinity]}}}',
        ].join('\n'),
      }),
    )
    assert.deepEqual(rules(r), ['prestop-exceeds-grace', 'prestop-exec-sleep'])
    assert.match(r.findings[0]!.fix, /never `infinity`/)
  })

  test('a preStop sleep can be the whole drain: drain delay 0 is then fine', () => {
    const r = run(
      deployment({
        grace: 45,
        container: [
          ...serving,
          '          lifecycle: {preStop: {sleep: {seconds: 10}}}',
          '          env: [{name: LAMEDUCK_DRAIN_DELAY_MS, value: "0"}]',
        ].join('\n'),
      }),
    )
    assert.ok(!rules(r).includes('no-drain-delay'))
    assert.ok(!rules(r).includes('drain-delay-short'))
  })

  test('settings from a ConfigMap in the input: envFrom with prefix, configMapKeyRef, env over envFrom', () => {
    const configMap = [
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata: {name: shutdown}',
      'data: {DRAIN_DELAY_MS: "0", hooks: "2000", LAMEDUCK_SHUTDOWN_TIMEOUT_MS: "1"}',
    ].join('\n')
    const r = run(
      deployment({
        grace: 45,
        container: [
          ...serving,
          '          envFrom: [{configMapRef: {name: shutdown}, prefix: LAMEDUCK_}, {configMapRef: {name: shutdown}}]',
          '          env:',
          '            - {name: LAMEDUCK_SHUTDOWN_TIMEOUT_MS, value: "15000"}',
          '            - name: LAMEDUCK_HOOK_TIMEOUT_MS',
          '              valueFrom: {configMapKeyRef: {name: shutdown, key: hooks}}',
        ].join('\n'),
      }),
      configMap,
    )
    const [t] = r.timelines
    assert.deepEqual(
      [
        t!.drain.ms,
        t!.drain.source,
        t!.shutdown.ms,
        t!.shutdown.source,
        t!.hooks.ms,
        t!.hooks.source,
      ],
      [0, 'configmap', 15000, 'env', 2000, 'configmap'],
    )
    assert.deepEqual(rules(r), ['no-drain-delay'])
  })

  test('values the checker cannot read: defaults assumed, and said so', () => {
    const r = run(
      deployment({
        grace: 45,
        container: [
          ...serving,
          '          envFrom: [{secretRef: {name: tuning}}]',
          '          env:',
          '            - name: LAMEDUCK_SHUTDOWN_TIMEOUT_MS',
          '              valueFrom: {fieldRef: {fieldPath: metadata.annotations}}',
        ].join('\n'),
      }),
    )
    assert.deepEqual(rules(r), ['env-value-unknown'])
    assert.match(
      r.findings[0]!.message,
      /comes from a fieldRef; lameduck's default 20 s is assumed/,
    )
    assert.deepEqual(r.timelines[0]!.notes, [
      'envFrom Secret tuning is not in the input; LAMEDUCK_* settings in it are not seen',
      "LAMEDUCK_SHUTDOWN_TIMEOUT_MS comes from a fieldRef; lameduck's default 20 s is assumed",
    ])
  })
})

describe('which workloads take traffic', () => {
  const worker = deployment({
    name: 'worker',
    grace: 45,
    container: '          command: [node, worker.js]',
  })
  const service = (namespace?: string, selector = '{app: worker}') =>
    [
      'apiVersion: v1',
      'kind: Service',
      'metadata:',
      '  name: worker',
      ...(namespace === undefined ? [] : [`  namespace: ${namespace}`]),
      `spec: {selector: ${selector}, ports: [{port: 80}]}`,
    ].join('\n')

  test('no port and no Service: no timeline and no traffic rules', () => {
    const r = run(worker)
    assert.deepEqual([r.timelines.length, rules(r)], [0, []])
  })

  test('a Service selecting the pod template makes it take traffic', () => {
    const r = run(worker, service())
    assert.equal(r.timelines.length, 1)
    assert.deepEqual(rules(r), ['no-readiness-probe'])
  })

  test('a Service in another namespace, or with an empty selector, does not', () => {
    const namespaced = deployment({
      name: 'worker',
      grace: 45,
      namespace: 'jobs',
      container: '          command: [node, worker.js]',
    })
    assert.deepEqual(rules(run(namespaced, service('web'))), [])
    assert.deepEqual(rules(run(namespaced, service(undefined, '{}'))), [])
    assert.deepEqual(rules(run(namespaced, service('jobs'))), ['no-readiness-probe'])
  })

  test('signal rules apply to every container, traffic or not', () => {
    const r = run(deployment({ name: 'worker', container: '          command: [yarn, start]' }))
    assert.deepEqual(rules(r), ['npm-start'])
  })

  test('a CRD that reuses the name Deployment is skipped', () => {
    const crd = deployment({ container: serving[0] }).replace('apps/v1', 'example.com/v1')
    assert.deepEqual(run(crd).workloads, 0)
  })

  test('Pod, StatefulSet, DaemonSet and ReplicaSet are read too', () => {
    const pod = [
      'apiVersion: v1',
      'kind: Pod',
      'metadata: {name: p, labels: {app: p}}',
      'spec:',
      '  terminationGracePeriodSeconds: 0',
      '  containers: [{name: a, image: x, readinessProbe: {tcpSocket: {port: 80}}}]',
      '---',
      'apiVersion: v1',
      'kind: Service',
      'metadata: {name: p}',
      'spec: {selector: {app: p}, ports: [{port: 80}]}',
    ].join('\n')
    const daemonSet = deployment({
      name: 'ds',
      grace: 45,
      spec: '  updateStrategy: {rollingUpdate: {maxUnavailable: 100%}}',
    })
      .replace('kind: Deployment', 'kind: DaemonSet')
      .replace('  replicas: 3\n', '')
    const replicaSet = deployment({ name: 'rs' }).replace('kind: Deployment', 'kind: ReplicaSet')
    const r = run(pod, daemonSet, replicaSet)
    assert.equal(r.workloads, 3)
    assert.deepEqual(rules(r), [
      'grace-period-zero',
      'max-unavailable-all',
      'grace-period-too-short',
    ])
  })
})

describe('rollouts', () => {
  test('maxSurge 0 with maxUnavailable rounding to 0: the controller uses 1, all of one replica', () => {
    const r = run(
      deployment({
        grace: 45,
        replicas: 1,
        spec: '  strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 25%}}',
      }),
    )
    assert.deepEqual(rules(r), ['single-replica', 'max-unavailable-all'])
    assert.match(r.findings[1]!.message, /both round to 0, so the controller uses maxUnavailable 1/)
  })

  test('the default 25% of 3 replicas rounds to 0 unavailable and 1 surge: fine', () => {
    assert.deepEqual(rules(run(deployment({ grace: 45, replicas: 3 }))), [])
  })

  test('a PodDisruptionBudget with minAvailable as a percentage', () => {
    const pdb = [
      'apiVersion: policy/v1',
      'kind: PodDisruptionBudget',
      'metadata: {name: app}',
      'spec:',
      '  minAvailable: 80%',
      '  selector: {matchExpressions: [{key: app, operator: In, values: [app]}]}',
    ].join('\n')
    const r = run(
      deployment({
        grace: 45,
        replicas: 10,
        spec: '  strategy: {rollingUpdate: {maxUnavailable: 3}}',
      }),
      pdb,
    )
    assert.deepEqual(rules(r), ['pdb-not-rollout-guard'])
    assert.match(
      r.findings[0]!.message,
      /allows 2 pods of Deployment\/app down, but its rollout may take 3 down/,
    )
    assert.equal(r.findings[0]!.file, 'm1.yaml')
  })
})

describe('suppression and paths', () => {
  test('the lameduck/ignore annotation drops rules for one object; unknown ids are noticed', () => {
    const annotated = deployment({ container: '          command: [npm, start]' }).replace(
      '  annotations: {lameduck/app: "true"}\n',
      '  annotations: {lameduck/app: "true", lameduck/ignore: "npm-start, no-such-rule"}\n',
    )
    const r = run(annotated)
    assert.deepEqual(rules(r), [])
    assert.equal(r.notices.length, 1)
    assert.match(
      r.notices[0]!,
      /^m0\.yaml:5:3: unknown rule id 'no-such-rule' in the lameduck\/ignore annotation of Deployment\/app$/,
    )
  })

  test('an unknown id in the lameduck/ignore annotation gets the closest rule id', () => {
    const annotated = deployment().replace(
      '  annotations: {lameduck/app: "true"}\n',
      '  annotations: {lameduck/app: "true", lameduck/ignore: "no-prestop, grace-period-to-short"}\n',
    )
    assert.deepEqual(run(annotated).notices, [
      "m0.yaml:5:3: unknown rule id 'no-prestop' (did you mean 'no-prestop-delay'?) in the lameduck/ignore annotation of Deployment/app",
      "m0.yaml:5:3: unknown rule id 'grace-period-to-short' (did you mean 'grace-period-too-short'?) in the lameduck/ignore annotation of Deployment/app",
    ])
  })

  test('the ignore option drops rules everywhere', () => {
    const r = check([{ name: 'm.yaml', text: deployment() }], {
      ignore: ['grace-period-too-short', 'no-spread'],
    })
    assert.deepEqual(rules(r), [])
  })

  test('findings inside a kind: List carry the item in their path and position', () => {
    const item = deployment({ container: serving[0] })
      .split('\n')
      .map((line, i) => (line === '' ? '' : `${i === 0 ? '  - ' : '    '}${line}`))
      .join('\n')
    const r = run(`apiVersion: v1\nkind: List\nitems:\n${item}`)
    assert.deepEqual(
      r.findings.map((f) => [f.rule, f.path, f.line]),
      [
        ['grace-period-too-short', 'items[0].spec.template.spec.terminationGracePeriodSeconds', 14],
        ['no-readiness-probe', 'items[0].spec.template.spec.containers[0]', 16],
      ],
    )
  })
})
