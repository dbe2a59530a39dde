import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import {
  type CheckResult,
  check,
  formatSarif,
  formatText,
  readSources,
} from '../../src/check/index.js'
import { exited, fromRoot, spawnNode } from '../helpers.js'

// Issue 8's behaviours, through the public check function and the CLI: which containers are
// lameduck apps, which serve, what the rest of the picture (autoscalers, budgets, other
// controllers) changes, malformed values, known images, broken inputs, readable output.

const noStdin = (async function* () {})()

function run(text: string, options: Parameters<typeof check>[1] = {}): CheckResult {
  return check([{ name: 'm.yaml', text }], options)
}

function rules(r: CheckResult): string[] {
  return r.findings.map((f) => f.rule)
}

interface Spec {
  kind?: string
  apiVersion?: string
  name?: string
  replicas?: string
  annotations?: string
  spec?: string
  pod?: string
  containers: string
}

/** A workload (a Deployment unless said otherwise) and nothing else. */
function workload(o: Spec): string {
  const name = o.name ?? 'app'
  return [
    `apiVersion: ${o.apiVersion ?? 'apps/v1'}`,
    `kind: ${o.kind ?? 'Deployment'}`,
    'metadata:',
    `  name: ${name}`,
    ...(o.annotations === undefined ? [] : [`  annotations: ${o.annotations}`]),
    'spec:',
    ...(o.replicas === undefined ? [] : [`  replicas: ${o.replicas}`]),
    ...(o.spec === undefined ? [] : [o.spec]),
    `  selector: {matchLabels: {app: ${name}}}`,
    '  template:',
    `    metadata: {labels: {app: ${name}}}`,
    '    spec:',
    ...(o.pod === undefined ? [] : [o.pod]),
    '      containers:',
    o.containers,
    '',
  ].join('\n')
}

function service(name: string, ports: string, extra = ''): string {
  return `\n---\napiVersion: v1\nkind: Service\nmetadata: {name: ${name}}\nspec: {selector: {app: app}, ports: ${ports}${extra}}\n`
}

const goServer = [
  '        - name: server',
  '          image: example.com/server:1',
  '          ports: [{name: http, containerPort: 8080}, {name: metrics, containerPort: 9090}]',
  '          readinessProbe: {httpGet: {path: /healthz, port: http}}',
].join('\n')

describe('two kinds of container', () => {
  const plain =
    workload({ replicas: '3', containers: goServer }) +
    service('app', '[{port: 80, targetPort: http}]')

  test('an app without lameduck is not held to its 40 s budget or /readyz, but gets the preStop warning', () => {
    const r = run(plain, { ignore: ['no-spread'] })
    assert.deepEqual(rules(r), ['no-prestop-delay'])
    const [t] = r.timelines
    assert.equal(t!.lameduck, undefined)
    assert.equal(t!.totalSeconds, 5, 'preStop 0 + margin 5, not 40')
    assert.match(r.findings[0]!.message, /Service\/app may still send it new connections/)
    assert.match(r.findings[0]!.fix, /preStop: \{sleep: \{seconds: 5\}\}/)
  })

  for (const [how, text, options] of [
    [
      'a LAMEDUCK_* variable',
      plain.replace(
        'port: http}}',
        'port: http}}\n          env: [{name: LAMEDUCK_DRAIN_DELAY_MS, value: "10000"}]',
      ),
      {},
    ],
    [
      'the lameduck/app annotation',
      plain.replace('  name: app\n', '  name: app\n  annotations: {lameduck/app: "true"}\n'),
      {},
    ],
    ['--assume-lameduck', plain, { assumeLameduck: true }],
  ] as const) {
    test(`${how} makes it a lameduck app: lameduck's budget and probe advice`, () => {
      const r = run(text, { ...options, ignore: ['no-spread'] })
      // On its /health path the probe never sees lameduck's 503: readiness-path says so,
      // and its timing is not judged against the drain (issue 20, item 5).
      assert.deepEqual(rules(r).sort(), ['grace-period-too-short', 'readiness-path'])
      assert.equal(r.timelines[0]!.totalSeconds, 40)
      assert.notEqual(r.timelines[0]!.lameduck, undefined)
    })
  }

  test('lameduck/app: "false" wins over --assume-lameduck; a list names containers', () => {
    const no = plain.replace(
      '  name: app\n',
      '  name: app\n  annotations: {lameduck/app: "false"}\n',
    )
    assert.equal(run(no, { assumeLameduck: true }).timelines[0]!.lameduck, undefined)
    const listed = plain.replace(
      '  name: app\n',
      '  name: app\n  annotations: {lameduck/app: "web, server"}\n',
    )
    assert.equal(run(listed).timelines[0]!.lameduck?.reason, 'annotation')
  })

  test('a LAMEDUCK_* key in a ConfigMap loaded with envFrom counts too', () => {
    const text = `${plain.replace('port: http}}', 'port: http}}\n          envFrom: [{configMapRef: {name: tuning}}]')}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: tuning}\ndata: {LAMEDUCK_DRAIN_DELAY_MS: "5000"}\n`
    const r = run(text)
    assert.equal(r.timelines[0]!.lameduck?.detail, 'LAMEDUCK_DRAIN_DELAY_MS from ConfigMap tuning')
    assert.equal(r.timelines[0]!.drain.ms, 5000)
  })

  test('fixes name a port the Service targets; tcpSocket for apps that are not lameduck', () => {
    const redis =
      workload({
        replicas: '2',
        containers: '        - {name: redis, image: redis:7, ports: [{containerPort: 6379}]}',
      }) + service('redis', '[{port: 6379}]')
    const r = run(redis, { ignore: ['no-spread'] })
    const probe = r.findings.find((f) => f.rule === 'no-readiness-probe')!
    assert.match(probe.fix, /^readinessProbe: \{tcpSocket: \{port: 6379\}/)
    assert.doesNotMatch(probe.fix, /httpGet|8080|readyz/)
  })

  test('a container that declares no port: the fix does not make one up', () => {
    const bare = workload({ replicas: '2', containers: '        - {name: web, image: web:1}' })
    const r = run(
      `${bare}---\napiVersion: v1\nkind: Service\nmetadata: {name: app}\nspec: {selector: {app: app}, ports: [{port: 80, targetPort: web}]}\n`,
      { assumeLameduck: true },
    )
    // A named target port nothing declares reaches no container; the lameduck container
    // is still serving (the pod is selected and no container declares a port).
    const probe = r.findings.find((f) => f.rule === 'no-readiness-probe')!
    assert.match(probe.fix, /port: <the port the app listens on>/)
  })
})

describe('serving: a Service routes user traffic to it', () => {
  test('a numeric targetPort need not be declared; a named one must match a port name', () => {
    const text =
      workload({
        replicas: '2',
        containers:
          '        - {name: web, image: web:1, readinessProbe: {tcpSocket: {port: 8080}}}',
      }) + service('web', '[{port: 80, targetPort: 8080}]')
    const r = run(text, { ignore: ['no-spread'] })
    assert.deepEqual(
      r.timelines.map((t) => t.container.name),
      ['web'],
    )
    // The only container of the pod, even when it declares other ports (metrics only).
    const declaresOthers = text.replace(
      'image: web:1,',
      'image: web:1, ports: [{name: metrics, containerPort: 9090}],',
    )
    assert.deepEqual(
      run(declaresOthers).timelines.map((t) => t.container.name),
      ['web'],
    )
  })

  for (const [what, svc] of [
    ['a Service named *-metrics', service('app-metrics', '[{port: 8080, targetPort: http}]')],
    ['a port named metrics', service('app', '[{name: metrics, port: 9090, targetPort: metrics}]')],
    ['a Prometheus port number', service('app', '[{port: 9100}]')],
  ] as const) {
    test(`${what} does not make it serving: no rollout or replica findings for a singleton`, () => {
      const text =
        workload({
          replicas: '1',
          spec: '  strategy: {type: Recreate}',
          containers: goServer
            .replace('8080}, {name: metrics', '8080}, {name: metrics')
            .replace('9090}', '9090}, {containerPort: 9100}'),
        }) + svc
      const r = run(text)
      assert.deepEqual(rules(r), [])
      assert.equal(r.timelines.length, 0)
    })
  }

  test('a container behind a metrics-only image (kube-rbac-proxy) is not serving', () => {
    const text =
      workload({
        containers:
          '        - {name: proxy, image: quay.io/brancz/kube-rbac-proxy:v0.19.1, ports: [{name: https, containerPort: 8443}]}',
      }) + service('app', '[{port: 8443, targetPort: https}]')
    assert.deepEqual(rules(run(text)), [])
  })

  test('a sleep-only container serves nothing, whatever selects it', () => {
    const text =
      workload({
        pod: '      terminationGracePeriodSeconds: 0',
        containers: '        - {name: curl, image: curl:8, command: [/bin/sleep, infinity]}',
      }) + service('app', '[{port: 80}]')
    assert.deepEqual(rules(run(text)), [])
  })
})

describe('the whole picture', () => {
  const web = [
    '        - name: web',
    '          image: web:1',
    '          ports: [{name: http, containerPort: 8080}]',
    '          readinessProbe: {httpGet: {path: /healthz, port: http}}',
    '          lifecycle: {preStop: {sleep: {seconds: 5}}}',
  ].join('\n')
  const svc = service('app', '[{port: 80, targetPort: http}]')

  test("an autoscaler's minReplicas is the replica count; the finding points at it", () => {
    const hpa =
      '---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: app}\nspec: {scaleTargetRef: {kind: Deployment, name: app}, minReplicas: 1, maxReplicas: 10}\n'
    const r = run(workload({ replicas: '5', containers: web }) + svc + hpa)
    assert.deepEqual(rules(r), ['single-replica'])
    assert.equal(r.findings[0]!.object, 'HorizontalPodAutoscaler/app')
    assert.equal(r.findings[0]!.path, 'spec.minReplicas')
    const two = run(
      workload({ replicas: '1', containers: web }) +
        svc +
        hpa.replace('minReplicas: 1', 'minReplicas: 2'),
    )
    assert.deepEqual(rules(two), ['no-spread'])
  })

  test('a budget that allows no eviction is reported; one that allows one is not', () => {
    const pdb = (spec: string) =>
      `---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: app}\nspec: {selector: {matchLabels: {app: app}}, ${spec}}\n`
    const base =
      workload({
        replicas: '2',
        containers: web,
        spec: '  strategy: {rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}',
      }) + svc
    assert.deepEqual(rules(run(base + pdb('minAvailable: 2'), { ignore: ['no-spread'] })), [
      'pdb-blocks-eviction',
    ])
    assert.deepEqual(rules(run(base + pdb('maxUnavailable: 0'), { ignore: ['no-spread'] })), [
      'pdb-blocks-eviction',
    ])
    assert.deepEqual(rules(run(base + pdb('minAvailable: 50%'), { ignore: ['no-spread'] })), [])
  })

  test('Argo Rollouts and ReplicationControllers are checked like Deployments', () => {
    const rollout =
      workload({
        kind: 'Rollout',
        apiVersion: 'argoproj.io/v1alpha1',
        replicas: '1',
        spec: '  strategy: {canary: {maxSurge: 0, maxUnavailable: 1}}',
        containers: web,
      }) + svc
    assert.deepEqual(rules(run(rollout)), ['single-replica', 'max-unavailable-all'])
    const blueGreen = rollout.replace(
      'canary: {maxSurge: 0, maxUnavailable: 1}',
      'blueGreen: {activeService: app}',
    )
    assert.deepEqual(rules(run(blueGreen)), ['single-replica'])
    const rc =
      workload({
        kind: 'ReplicationController',
        apiVersion: 'v1',
        replicas: '1',
        containers: web,
      }).replace('  selector: {matchLabels: {app: app}}', '  selector: {app: app}') + svc
    const r = run(rc)
    assert.equal(r.workloads, 1)
    assert.deepEqual(rules(r), ['single-replica'])
  })

  test('a single Redis is not told to run more copies, and a UDP port gets no tcpSocket probe', () => {
    const redis =
      workload({
        replicas: '1',
        containers: '        - {name: redis, image: redis:7, ports: [{containerPort: 6379}]}',
      }) + service('redis', '[{port: 6379}]')
    const single = run(redis).findings.find((f) => f.rule === 'single-replica')!
    assert.match(single.message, /one instance: Redis keeps its data in the pod$/)
    assert.match(single.fix, /^not more replicas \(each Redis copy would hold its own data\)/)
    assert.match(single.fix, /a restart is an outage; plan for it/)
    const dns =
      workload({
        replicas: '2',
        containers:
          '        - {name: dns, image: example.com/dns:1, ports: [{name: dns, containerPort: 53, protocol: UDP}]}',
      }) + service('dns', '[{port: 53, targetPort: dns, protocol: UDP}]')
    const probe = run(dns).findings.find((f) => f.rule === 'no-readiness-probe')!
    assert.doesNotMatch(probe.fix, /tcpSocket: \{/)
    assert.match(probe.fix, /UDP/)
  })

  test('a single replica per version behind one Service is not a single replica', () => {
    const v1 = workload({ name: 'app', replicas: '1', containers: web })
    const v2 = workload({ name: 'app', replicas: '1', containers: web }).replace(
      'name: app\n',
      'name: app-v2\n',
    )
    assert.deepEqual(rules(run(`${v1}\n---\n${v2}${svc}`)), [])
  })

  test('kinds that are not checked are listed, never silently dropped', () => {
    const text = `${workload({ replicas: '2', containers: web })}---\napiVersion: batch/v1\nkind: Job\nmetadata: {name: migrate}\nspec: {}\n---\napiVersion: example.com/v1\nkind: Deployment\nmetadata: {name: crd}\n`
    const r = run(text)
    assert.deepEqual(
      r.skipped.map((s) => [s.kind, s.name, s.reason]),
      [
        ['Job', 'migrate', 'not a kind the checker reads'],
        ['Deployment', 'crd', 'API group of example.com/v1 is not the Kubernetes one'],
      ],
    )
    const text2 = formatText(r, { verbose: true })
    assert.match(
      text2,
      /^Not checked \(kinds the checker does not read\)\n {2}m\.yaml: Job\/migrate: not a kind/m,
    )
    assert.match(formatText(r), /2 objects of kinds not checked\)$/m)
  })
})

describe('malformed values are errors at their own path, not defaults', () => {
  test('quoted integers and a grace period in the container', () => {
    const text =
      workload({
        replicas: '"1"',
        pod: '      terminationGracePeriodSeconds: "5"',
        containers: [
          '        - name: web',
          '          image: web:1',
          '          terminationGracePeriodSeconds: 60',
          '          ports: [{name: http, containerPort: 8080}]',
          '          readinessProbe: {httpGet: {path: /readyz, port: "8080"}, periodSeconds: "5"}',
        ].join('\n'),
      }) + service('app', '[{port: 80, targetPort: http}]')
    const r = run(text, { assumeLameduck: true })
    assert.deepEqual(
      r.findings.filter((f) => f.rule === 'invalid-field').map((f) => [f.path, f.line]),
      [
        ['spec.replicas', 6],
        ['spec.template.spec.terminationGracePeriodSeconds', 11],
        ['spec.template.spec.containers[0].terminationGracePeriodSeconds', 15],
        ['spec.template.spec.containers[0].readinessProbe.httpGet.port', 17],
        ['spec.template.spec.containers[0].readinessProbe.periodSeconds', 17],
      ],
    )
    // Not read as the defaults: no grace-period-too-short against 30 s, no single replica.
    assert.ok(!rules(r).includes('grace-period-too-short'))
    assert.ok(!rules(r).includes('single-replica'))
    assert.match(r.findings[0]!.message, /^replicas is the string "1"; the API expects an integer$/)
    assert.equal(r.findings[0]!.fix, 'replicas: 1 (without quotes)')
  })
})

describe('known images', () => {
  test("a stop signal that is the image's graceful one is not an error; any other is", () => {
    const pod = (image: string, signal: string) =>
      workload({
        annotations: '{lameduck/app: "true"}',
        replicas: '2',
        pod: '      terminationGracePeriodSeconds: 45',
        containers: `        - {name: web, image: ${image}, ports: [{name: http, containerPort: 80}], readinessProbe: {httpGet: {path: /readyz, port: http}, periodSeconds: 5, failureThreshold: 2}, lifecycle: {stopSignal: ${signal}}}`,
      })
    assert.deepEqual(rules(run(pod('nginx:1.27', 'SIGQUIT'), { ignore: ['no-spread'] })), [])
    assert.deepEqual(rules(run(pod('httpd:2.4', 'SIGWINCH'), { ignore: ['no-spread'] })), [])
    assert.deepEqual(rules(run(pod('example.com/web:1', 'SIGQUIT'), { ignore: ['no-spread'] })), [
      'stop-signal-unhandled',
    ])
  })

  test("CoreDNS's lameduck in its mounted Corefile counts as its drain", () => {
    const text = `${workload({
      replicas: '2',
      pod: '      volumes: [{name: config, configMap: {name: coredns}}]',
      containers:
        '        - {name: coredns, image: registry.k8s.io/coredns/coredns:v1.12.0, ports: [{name: dns, containerPort: 53, protocol: UDP}], readinessProbe: {httpGet: {path: /ready, port: 8181}}}',
    })}${service('kube-dns', '[{port: 53, targetPort: dns, protocol: UDP}]')}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: coredns}\ndata:\n  Corefile: |\n    .:53 {\n        health {\n            lameduck 5s\n        }\n    }\n`
    const r = run(text, { ignore: ['no-spread'] })
    assert.deepEqual(rules(r), [])
    assert.deepEqual(r.timelines[0]!.selfDrain, {
      seconds: 5,
      where: 'lameduck in ConfigMap coredns Corefile',
    })
    assert.deepEqual(
      rules(run(text.replace('lameduck 5s', 'lameduck 2s'), { ignore: ['no-spread'] })),
      ['drain-delay-short'],
    )
  })
})

describe('broken inputs and empty ones', () => {
  let dir: string
  const bin = fromRoot('bin/lameduck.js')
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lameduck-check-broken-'))
    await writeFile(
      join(dir, 'a-broken.yaml'),
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x\n',
    )
    await writeFile(
      join(dir, 'b-good.yaml'),
      await readFile(fromRoot('test/fixtures/check/rules/npm-start/bad.yaml'), 'utf8'),
    )
    await writeFile(join(dir, 'kustomization.yaml'), 'resources: [b-good.yaml]\n')
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  async function cli(args: string[]) {
    const ran = spawnNode(bin, ['check', ...args])
    const exit = await exited(ran.child, `lameduck check ${args.join(' ')}`, 30_000)
    return { code: exit.code, stdout: ran.stdout(), stderr: ran.stderr() }
  }

  test('one broken file does not hide the others: an error entry in text, JSON and SARIF, exit 2', async () => {
    const errors: import('../../src/check/index.js').InputError[] = []
    const sources = await readSources([dir], noStdin, errors)
    const r = check(sources)
    assert.equal(r.errors.length, 1)
    assert.match(r.errors[0]!.message, /a-broken\.yaml:\d+:\d+: YAML syntax error/)
    assert.deepEqual(
      rules(r).filter((id) => id !== 'no-spread'),
      ['npm-start'],
    )

    const text = await cli([dir])
    assert.equal(text.code, 2)
    assert.match(text.stdout, /a-broken\.yaml:\d+:\d+ {2}error {2}input\n {4}YAML syntax error/)
    assert.match(text.stdout, /b-good\.yaml:\d+:\d+ {2}error {2}npm-start/)
    const json = JSON.parse((await cli(['--format', 'json', dir])).stdout)
    assert.equal(json.errors.length, 1)
    assert.equal(json.summary.inputErrors, 1)
    assert.ok(json.findings.some((f: { rule: string }) => f.rule === 'npm-start'))
    const sarifRun = await cli(['--format', 'sarif', dir])
    assert.equal(sarifRun.code, 2)
    const sarif = JSON.parse(sarifRun.stdout)
    assert.equal(sarif.runs[0].invocations[0].executionSuccessful, false)
    const ids = sarif.runs[0].results.map((x: { ruleId: string }) => x.ruleId)
    assert.equal(ids[0], 'input-error')
    assert.ok(ids.includes('npm-start'))
  })

  test('a directory with no Kubernetes objects exits 2', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'lameduck-check-none-'))
    try {
      await writeFile(join(empty, 'values.yaml'), 'replicaCount: 2\nimage: {repository: web}\n')
      const ran = await cli([empty])
      assert.equal(ran.code, 2)
      assert.match(ran.stderr, /no Kubernetes objects found in .*values\.yaml/)
    } finally {
      await rm(empty, { recursive: true, force: true })
    }
  })
})

describe('readable on real files', () => {
  test('text lines fit 100 columns, every finding names its object, each rationale comes once', async () => {
    const dir = fromRoot('test/fixtures/real/microservices-demo')
    const r = check(await readSources([dir], noStdin))
    const out = formatText(r)
    for (const line of out.split('\n')) {
      // A file path with its position cannot be broken; everything else wraps.
      if (/^\S+:\d+:\d+ {2}\w+ {2}[a-z-]+$/.test(line)) continue
      assert.ok(line.length <= 100, `${line.length} columns: ${line}`)
    }
    for (const f of r.findings) assert.ok(out.includes(f.object))
    const why = out.split('Why these matter\n')[1]!
    for (const id of new Set(rules(r))) {
      assert.equal(why.split('\n').filter((l) => l.startsWith(`  ${id}: `)).length, 1, id)
    }
  })

  test('SARIF fingerprints stay when lines move and differ between findings', async () => {
    const text = await readFile(fromRoot('test/fixtures/real/istio/bookinfo/bookinfo.yaml'), 'utf8')
    const print = (t: string) =>
      JSON.parse(
        formatSarif(check([{ name: 'b.yaml', text: t }]), { version: '1.0.0' }),
      ).runs[0].results.map(
        (x: {
          partialFingerprints: Record<string, string>
          locations: { physicalLocation: { region: { startLine: number } } }[]
        }) => [
          x.partialFingerprints['lameduckFinding/v1'],
          x.locations[0]!.physicalLocation.region.startLine,
        ],
      )
    const a = print(text)
    const b = print(`# a comment moves every line\n${text}`)
    assert.deepEqual(
      a.map((x: unknown[]) => x[0]),
      b.map((x: unknown[]) => x[0]),
    )
    assert.deepEqual(
      a.map((x: [string, number]) => x[1] + 1),
      b.map((x: [string, number]) => x[1]),
    )
    assert.equal(new Set(a.map((x: unknown[]) => x[0])).size, a.length)
  })

  test('no fix on the corpus invents a port or proposes HTTP for an app that is not lameduck', async () => {
    // Each unit in its own run, as real.test.ts does: one project's Services do not select
    // another project's pods.
    const readme = await readFile(fromRoot('test/fixtures/real/README.md'), 'utf8')
    const units = [...readme.matchAll(/^- `([^`]+)`$/gm)].map((m) => m[1]!)
    for (const unit of units) {
      const sources = await readSources([fromRoot(`test/fixtures/real/${unit}`)], noStdin)
      // The port may be in another file of the unit (the Service's targetPort).
      const text = sources.map((source) => source.text).join('\n')
      for (const f of check(sources).findings) {
        for (const m of f.fix.matchAll(/port: (\d+)/g)) {
          assert.ok(
            new RegExp(`\\b${m[1]}\\b`).test(text),
            `${f.rule} ${f.object}: port ${m[1]} is in ${unit}`,
          )
        }
        if (!f.lameduck) assert.doesNotMatch(f.fix, /httpGet|readyz|livez/, `${f.rule} ${f.object}`)
      }
    }
  })
})
