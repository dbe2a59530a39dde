import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { describe, test } from 'node:test'
import {
  type CheckOptions,
  type CheckResult,
  check,
  formatJson,
  formatText,
  readSources,
} from '../../src/check/index.js'
import { exited, fromRoot, spawnNode } from '../helpers.js'

// Issue 20: singletons and stateful workloads judged as their owners would, and the misses
// found. Every case is a real public manifest from test/fixtures/real (provenance in its
// README.md), checked as a user would check that project's directory or one file of it.

const noStdin = (async function* () {})()
const real = (path: string) => fromRoot(`test/fixtures/real/${path}`)

async function checkReal(path: string, options: CheckOptions = {}): Promise<CheckResult> {
  return check(await readSources([real(path)], noStdin), options)
}

function find(r: CheckResult, rule: string, object: string) {
  return r.findings.filter((f) => f.rule === rule && f.object === object)
}

describe('a workload no Service in the input selects (item 7)', () => {
  const file = 'gke-samples/whereami/k8s/deployment.yaml'

  test('one file of a project: the summary says how many were not checked as served, why, and how', async () => {
    const r = await checkReal(file)
    assert.deepEqual(r.notServed, ['Deployment/whereami'])
    assert.deepEqual(r.findings, [])
    const text = formatText(r)
    assert.match(text, /1 workload with container ports was not checked as served/)
    assert.match(text.replaceAll(/\s+/g, ' '), /no Service in the input selects it/)
    assert.match(text, /--assume-served/)
    assert.equal(JSON.parse(formatJson(r)).summary.notServed, 1)
    // With its Service in the input, it is served and the count is gone.
    assert.deepEqual((await checkReal('gke-samples/whereami/k8s')).notServed, [])
  })

  test('--assume-served checks it as served through its own ports', async () => {
    const r = await checkReal(file, { assumeServed: true })
    assert.deepEqual(r.notServed, [])
    const delay = find(r, 'no-prestop-delay', 'Deployment/whereami')
    assert.equal(delay.length, 1)
    assert.match(delay[0]!.message, /its Service \(assumed by --assume-served\)/)
  })

  test('grace 0 is an error even with no Service in the file (the real Deployment with grace 0)', async () => {
    const text = (await readFile(real(file), 'utf8')).replace(
      '    spec:\n',
      '    spec:\n      terminationGracePeriodSeconds: 0\n',
    )
    assert.notEqual(text, await readFile(real(file), 'utf8'))
    const r = check([{ name: 'deployment.yaml', text }])
    const zero = find(r, 'grace-period-zero', 'Deployment/whereami')
    assert.equal(zero.length, 1)
    assert.equal(zero[0]!.severity, 'error')
    assert.match(zero[0]!.message, /no Service in the input selects it, but its container ports/)
    // 1 s is no grace period either.
    const one = check([{ name: 'deployment.yaml', text: text.replace('Seconds: 0', 'Seconds: 1') }])
    assert.match(
      find(one, 'grace-period-zero', 'Deployment/whereami')[0]!.message,
      /terminationGracePeriodSeconds is 1/,
    )
  })

  test('through the CLI: --assume-served is a flag, and the summary line is printed', async () => {
    const bin = fromRoot('bin/lameduck.js')
    const run = async (args: string[]) => {
      const ran = spawnNode(bin, ['check', ...args])
      const exit = await exited(ran.child, `lameduck check ${args.join(' ')}`, 30_000)
      return { code: exit.code, stdout: ran.stdout() }
    }
    const plain = await run(['--fail-on', 'warning', real(file)])
    assert.equal(plain.code, 0)
    assert.match(plain.stdout, /not checked as served \(Deployment\/whereami\)/)
    const served = await run(['--fail-on', 'warning', '--assume-served', real(file)])
    assert.equal(served.code, 1)
    assert.match(served.stdout, /no-prestop-delay/)
  })
})

describe('grace 0 with a preStop hook (item 11)', () => {
  test("Calico's calico-node: grace 0 and a preStop hook that therefore never runs", async () => {
    const r = await checkReal('calico')
    const zero = find(r, 'grace-period-zero', 'DaemonSet/calico-node')
    assert.equal(zero.length, 1)
    assert.match(zero[0]!.message, /the preStop hook \(calico-node: .*\) never runs/)
  })

  test('a placeholder with grace 0 (istio curl: sleep) is left alone', async () => {
    const r = await checkReal('istio/curl')
    assert.deepEqual(find(r, 'grace-period-zero', 'Deployment/curl'), [])
  })
})

describe('singletons: a restart is an outage; plan for it (item 1)', () => {
  const planned = /a restart is an outage; plan for it/

  for (const [unit, object, why] of [
    ['opentelemetry-demo', 'Deployment/kafka', /only voter of its KRaft quorum/],
    ['opentelemetry-demo', 'Deployment/jaeger', /Jaeger all-in-one/],
    ['istio/addons', 'Deployment/jaeger', /Jaeger all-in-one/],
    ['metallb', 'Deployment/controller', /without leader election/],
    ['kube-thanos', 'StatefulSet/thanos-compact', /must run alone per bucket/],
    ['opentelemetry-demo', 'StatefulSet/opensearch', /single-node/],
    ['sock-shop', 'Deployment/rabbitmq', /a single RabbitMQ broker/],
    ['sock-shop', 'Deployment/catalogue-db', /MySQL keeps its data in the pod \(port 3306\)/],
    ['kubernetes-website/wordpress', 'Deployment/wordpress', /ReadWriteOnce PersistentVolumeClaim/],
    ['kube-thanos', 'StatefulSet/thanos-store', /its data on its own volume/],
  ] as const) {
    test(`${unit}: ${object}`, async () => {
      const r = await checkReal(unit)
      const single = find(r, 'single-replica', object)
      assert.equal(single.length, 1, `${object} is reported once`)
      assert.match(single[0]!.message, why)
      assert.match(single[0]!.fix, planned)
      assert.doesNotMatch(single[0]!.fix, /replicas: 2/)
    })
  }

  test('a plain stateless app still gets replicas: 2', async () => {
    const r = await checkReal('opentelemetry-demo')
    assert.match(find(r, 'single-replica', 'Deployment/cart')[0]!.fix, /^replicas: 2 or more/)
  })
})

describe('Recreate and maxUnavailable on ReadWriteOnce volumes and singletons (item 2)', () => {
  test('MySQL and WordPress on RWO claims keep Recreate; a StatefulSet of 1 is single-replica only', async () => {
    for (const unit of ['kubernetes-website/mysql', 'kubernetes-website/wordpress']) {
      const r = await checkReal(unit)
      assert.deepEqual(
        r.findings.filter(
          (f) => f.rule === 'recreate-strategy' || f.rule === 'max-unavailable-all',
        ),
        [],
        unit,
      )
    }
    const boa = await checkReal('bank-of-anthos')
    assert.deepEqual(find(boa, 'max-unavailable-all', 'StatefulSet/ledger-db'), [])
    assert.equal(find(boa, 'single-replica', 'StatefulSet/ledger-db').length, 1)
  })
})

describe('no-prestop-delay knows databases, brokers and self-delaying programs (item 3)', () => {
  test('a MySQL Galera node, MongoDB and Redis behind Services: no preStop advice', async () => {
    for (const [unit, object] of [
      ['kubernetes-examples/storage/mysql-galera', 'ReplicationController/pxc-node1'],
      ['kubernetes-examples/storage/redis', 'ReplicationController/redis'],
    ] as const) {
      const r = await checkReal(unit)
      assert.deepEqual(find(r, 'no-prestop-delay', object), [], object)
    }
  })

  test("Gatekeeper's --shutdown-delay and Calico Typha's direct clients", async () => {
    const gatekeeper = await checkReal('gatekeeper')
    assert.deepEqual(
      gatekeeper.findings.filter((f) => f.rule === 'no-prestop-delay'),
      [],
    )
    assert.match(
      gatekeeper.timelines.find((t) => t.workload.name === 'gatekeeper-controller-manager')!
        .selfDrain!.where,
      /--shutdown-delay/,
    )
    const calico = await checkReal('calico')
    assert.deepEqual(find(calico, 'no-prestop-delay', 'Deployment/calico-typha'), [])
  })
})

describe('fixes that validate, agree with each other, and use the container’s own command (items 4-6)', () => {
  test('no probe fix names a port the API server would reject', async () => {
    const text = [
      'apiVersion: v1',
      'kind: Service',
      'metadata: {name: worker}',
      'spec: {clusterIP: None, selector: {app: worker}, ports: [{port: 80, targetPort: 0}]}',
      '---',
      'apiVersion: apps/v1',
      'kind: Deployment',
      'metadata: {name: worker}',
      'spec:',
      '  replicas: 2',
      '  selector: {matchLabels: {app: worker}}',
      '  template:',
      '    metadata: {labels: {app: worker}}',
      '    spec:',
      '      containers: [{name: worker, image: example.com/worker:1}]',
      '',
    ].join('\n')
    const probe = check([{ name: 'w.yaml', text }]).findings.find(
      (f) => f.rule === 'no-readiness-probe',
    )!
    assert.doesNotMatch(probe.fix, /port: 0/)
    assert.match(probe.fix, /no port in the manifest can be probed/)
  })

  test('readiness timing is judged only on the probe readiness-path accepts', async () => {
    const seed = await readFile(fromRoot('test/fixtures/check/seed-deployment.yaml'), 'utf8')
    const onHealth = check([{ name: 's.yaml', text: seed }]).findings.map((f) => f.rule)
    assert.ok(onHealth.includes('readiness-path'))
    assert.ok(!onHealth.includes('readiness-slower-than-drain'))
  })

  test("shell-command's fix is the container's own script, never a placeholder", async () => {
    const longhorn = find(
      await checkReal('longhorn'),
      'shell-command',
      'DaemonSet/longhorn-manager',
    )
    assert.equal(longhorn.length, 1)
    assert.match(longhorn[0]!.fix, /"echo share-manager image pulled && exec sleep infinity"$/)
    // A loop cannot be exec'd: the shell must exit on SIGTERM itself.
    const nfs = find(
      await checkReal('kubernetes-examples/volumes/nfs'),
      'shell-command',
      'Deployment/nfs-busybox',
    )
    assert.equal(nfs.length, 1)
    assert.match(nfs[0]!.fix, /trap 'exit 0' TERM; while true; do date/)
    assert.doesNotMatch(nfs[0]!.fix, /exec done|the-app/)
  })
})

describe('recall (items 8-10, 12, 13)', () => {
  test('kong quit as preStop stops Kong at once: no delay, and the fix keeps the hook', async () => {
    const r = await checkReal('kong/dbless')
    const f = find(r, 'no-prestop-delay', 'Deployment/proxy-kong')
    assert.equal(f.length, 1)
    assert.match(f[0]!.message, /`kong quit` stops the app at once/)
    assert.match(f[0]!.fix, /kong, quit, "--wait=5"/)
  })

  test('Prometheus and Thanos query-frontend serve on 9090: checked as served', async () => {
    const istio = await checkReal('istio/addons')
    assert.equal(find(istio, 'single-replica', 'Deployment/prometheus').length, 1)
    const thanos = await checkReal('kube-thanos')
    assert.equal(find(thanos, 'single-replica', 'Deployment/thanos-query-frontend').length, 1)
  })

  test('an ingress DaemonSet on hostPorts, which no Service selects, is checked as served', async () => {
    const r = await checkReal('nginxinc-ingress/daemon-set')
    const f = find(r, 'no-prestop-delay', 'DaemonSet/nginx-ingress')
    assert.equal(f.length, 1)
    assert.match(f[0]!.message, /the hostPorts 80, 443 on every node/)
  })

  test('Consul servers without a budget; ZooKeeper and CockroachDB with one', async () => {
    const consul = await checkReal('consul')
    const f = find(consul, 'quorum-no-pdb', 'StatefulSet/consul')
    assert.equal(f.length, 1)
    assert.match(f[0]!.fix, /maxUnavailable: 1/)
    for (const unit of ['kubernetes-website/zookeeper', 'kubernetes-examples/cockroachdb']) {
      const r = await checkReal(unit)
      assert.deepEqual(
        r.findings.filter((x) => x.rule === 'quorum-no-pdb'),
        [],
        unit,
      )
    }
  })

  test("OpenFaaS's gateway waits write_timeout 65 s under a 30 s grace period", async () => {
    const r = await checkReal('openfaas')
    const f = find(r, 'app-timeout-exceeds-grace', 'Deployment/gateway')
    assert.equal(f.length, 1)
    assert.match(f[0]!.message, /write_timeout 1m05s .* = 65 s > grace 30 s/)
  })

  const served = (name: string, container: string) => `apiVersion: apps/v1
kind: Deployment
metadata: {name: ${name}}
spec:
  replicas: 2
  selector: {matchLabels: {app: ${name}}}
  template:
    metadata: {labels: {app: ${name}}}
    spec:
      containers:
${container}
---
apiVersion: v1
kind: Service
metadata: {name: ${name}}
spec:
  selector: {app: ${name}}
  ports: [{port: 80, targetPort: 8000}]
`

  test("uvicorn's --timeout-graceful-shutdown longer than the grace period", () => {
    const text = served(
      'api',
      `        - name: api
          image: example.com/api:1
          command: [uvicorn, main:app, --host, 0.0.0.0, --port, "8000", --timeout-graceful-shutdown, "45"]
          ports: [{containerPort: 8000}]
          readinessProbe: {httpGet: {path: /health, port: 8000}}
          lifecycle: {preStop: {sleep: {seconds: 5}}}`,
    )
    const f = find(
      check([{ name: 'api.yaml', text }]),
      'app-timeout-exceeds-grace',
      'Deployment/api',
    )
    assert.equal(f.length, 1)
    assert.match(
      f[0]!.message,
      /preStop 5 s \+ uvicorn --timeout-graceful-shutdown 45 = 50 s > grace 30 s/,
    )
  })

  test("Envoy's --drain-time-s is not a wait after SIGTERM: Envoy closes its listeners at once", () => {
    // The command Istio's proxy agent gives Envoy (its docs and logs): --drain-time-s 45
    // applies to hot restarts and admin-API drains, not to SIGTERM.
    const text = served(
      'edge',
      `        - name: envoy
          image: envoyproxy/envoy:v1.30.4
          args: [-c, /etc/envoy/envoy.yaml, --drain-time-s, "45", --parent-shutdown-time-s, "60"]
          ports: [{containerPort: 8000}]
          readinessProbe: {httpGet: {path: /ready, port: 9901}}
          lifecycle: {preStop: {sleep: {seconds: 5}}}`,
    )
    const r = check([{ name: 'edge.yaml', text }])
    assert.deepEqual(find(r, 'app-timeout-exceeds-grace', 'Deployment/edge'), [])
  })

  describe("nginx's worker_shutdown_timeout", () => {
    // ingress-nginx's own deploy.yaml: grace 300 s, preStop /wait-shutdown (which stops the
    // controller and waits for it), its ConfigMap without worker-shutdown-timeout (240 s).
    const deploy = readFileSync(real('ingress-nginx/deploy.yaml'), 'utf8')
    const controller = 'Deployment/ingress-nginx-controller'
    const timeout = (text: string) =>
      find(check([{ name: 'deploy.yaml', text }]), 'app-timeout-exceeds-grace', controller)
    const withConfig = (data: string) =>
      deploy.replace(/^data: null\n(kind: ConfigMap)/m, `data: ${data}\n$1`)

    test('ingress-nginx as shipped: 240 s default under its 300 s grace; no finding', () => {
      assert.deepEqual(timeout(deploy), [])
    })

    test('ingress-nginx with the grace period cut to 60 s: the 240 s default outlasts it; /wait-shutdown is not counted twice', () => {
      const f = timeout(
        deploy.replace('terminationGracePeriodSeconds: 300', 'terminationGracePeriodSeconds: 60'),
      )
      assert.equal(f.length, 1)
      assert.equal(f[0]!.path, 'spec.template.spec.terminationGracePeriodSeconds')
      assert.match(
        f[0]!.message,
        /^worker-shutdown-timeout 240s \(ingress-nginx's default\) = 240 s > grace 60 s$/,
      )
    })

    test('ingress-nginx with worker-shutdown-timeout 600s in its ConfigMap and --shutdown-grace-period', () => {
      const text = withConfig('{worker-shutdown-timeout: "600s"}').replace(
        '- --ingress-class=nginx',
        '- --ingress-class=nginx\n        - --shutdown-grace-period=15',
      )
      const f = timeout(text)
      assert.equal(f.length, 1)
      assert.match(
        f[0]!.message,
        /^--shutdown-grace-period 15 \+ worker-shutdown-timeout 600s \(ConfigMap ingress-nginx-controller\) = 615 s > grace 300 s$/,
      )
      assert.deepEqual(timeout(withConfig('{worker-shutdown-timeout: "280s"}')), [])
    })

    test('ingress-nginx whose ConfigMap is not in the input: the timeout is not known; no finding', () => {
      const without = deploy
        .split(/^---$/m)
        .filter((doc) => !/^kind: ConfigMap$/m.test(doc))
        .join('---')
      assert.notEqual(without, deploy)
      assert.deepEqual(
        timeout(
          without.replace(
            'terminationGracePeriodSeconds: 300',
            'terminationGracePeriodSeconds: 60',
          ),
        ),
        [],
      )
    })

    test('nginx with worker_shutdown_timeout in the nginx.conf it mounts from a ConfigMap', () => {
      const web = (grace: string) => `apiVersion: v1
kind: ConfigMap
metadata: {name: web-conf}
data:
  nginx.conf: |
    worker_processes auto;
    worker_shutdown_timeout 1m;
    events {}
    http { server { listen 8000; location / { proxy_pass http://backend:8080; } } }
---
${served(
  'web',
  `        - name: nginx
          image: nginx:1.27
          ports: [{containerPort: 8000}]
          readinessProbe: {httpGet: {path: /, port: 8000}}
          lifecycle: {preStop: {sleep: {seconds: 5}}}
          volumeMounts: [{name: conf, mountPath: /etc/nginx/nginx.conf, subPath: nginx.conf}]
      volumes: [{name: conf, configMap: {name: web-conf}}]${grace}`,
)}`
      const f = find(
        check([{ name: 'web.yaml', text: web('') }]),
        'app-timeout-exceeds-grace',
        'Deployment/web',
      )
      assert.equal(f.length, 1)
      assert.match(
        f[0]!.message,
        /^preStop 5 s \+ worker_shutdown_timeout 1m \(ConfigMap web-conf nginx\.conf\) = 65 s > grace 30 s \(the default\)$/,
      )
      const longer = web('\n      terminationGracePeriodSeconds: 70')
      assert.deepEqual(
        find(
          check([{ name: 'web.yaml', text: longer }]),
          'app-timeout-exceeds-grace',
          'Deployment/web',
        ),
        [],
      )
    })
  })
})

// Manifests from outside test/fixtures/real, trimmed to what the case needs; provenance in
// each file's header (test/fixtures/check/outside/).
const outside = (file: string) => fromRoot(`test/fixtures/check/outside/${file}`)

async function checkOutside(file: string, options: CheckOptions = {}): Promise<CheckResult> {
  return check(await readSources([outside(file)], noStdin), options)
}

describe('the program a container runs, from its start command', () => {
  test('ZooKeeper started by zkServer.sh from a JRE image is a quorum without a budget', async () => {
    const f = find(await checkOutside('zookeeper-jre.yaml'), 'quorum-no-pdb', 'StatefulSet/zoo')
    assert.equal(f.length, 1)
    assert.match(f[0]!.message, /3 replicas of ZooKeeper .* survives losing 1/)
  })

  test('ZooKeeper started by zookeeper-server-start.sh from a Kafka image is named ZooKeeper, not Kafka', async () => {
    const r = await checkOutside('zookeeper-kafka-image.yaml')
    const f = find(r, 'quorum-no-pdb', 'StatefulSet/pzoo')
    assert.equal(f.length, 1)
    assert.match(f[0]!.message, /of ZooKeeper and no PodDisruptionBudget/)
    assert.doesNotMatch(f[0]!.message, /Kafka/)
  })
})

describe('a DaemonSet on the nodes’ network', () => {
  test('its container ports are node ports: an ingress controller with hostNetwork is checked as served', async () => {
    const r = await checkOutside('haproxy-ingress-host-network.yaml')
    assert.deepEqual(r.notServed, [])
    const f = find(r, 'no-prestop-delay', 'DaemonSet/haproxy-ingress')
    assert.equal(f.length, 1)
    // 10254 is the controller's metrics port: not a way in for users.
    assert.match(f[0]!.message, /the hostPorts 80, 443, 1936 on every node/)
    assert.equal(find(r, 'no-readiness-probe', 'DaemonSet/haproxy-ingress').length, 1)
  })

  test("MetalLB's speaker publishes only memberlist and metrics ports: not served, and not counted as unselected", async () => {
    const r = await checkReal('metallb')
    assert.deepEqual(
      r.findings.filter((f) => f.object === 'DaemonSet/speaker'),
      [],
    )
    // Nobody is served through them: the summary does not count it among the workloads
    // that declare ports but that no Service selects.
    assert.deepEqual(r.notServed, [])
  })
})

describe('an apps/v1 workload without a selector for its pod template', () => {
  const file = 'haproxy-ingress-daemonset-no-selector.yaml'

  test('no spec.selector: invalid-field, with the selector from the template labels', async () => {
    const f = find(await checkOutside(file), 'invalid-field', 'DaemonSet/haproxy-ingress')
    assert.equal(f.length, 1)
    assert.equal(f[0]!.path, 'spec')
    assert.match(f[0]!.message, /^DaemonSet has no spec\.selector; apps\/v1 requires one$/)
    assert.equal(f[0]!.fix, 'spec.selector: {matchLabels: {run: haproxy-ingress}}')
  })

  test('a selector that does not select the template, and the cases the API server accepts', async () => {
    const text = await readFile(outside(file), 'utf8')
    const withSelector = (labels: string) =>
      text.replace(
        'spec:\n  template:',
        `spec:\n  selector:\n    matchLabels: {${labels}}\n  template:`,
      )
    const other = find(
      check([{ name: file, text: withSelector('run: haproxy') }]),
      'invalid-field',
      'DaemonSet/haproxy-ingress',
    )
    assert.equal(other.length, 1)
    assert.equal(other[0]!.path, 'spec.selector')
    assert.match(
      other[0]!.message,
      /does not select the pod template's labels \(run: haproxy-ingress\)/,
    )
    const same = check([{ name: file, text: withSelector('run: haproxy-ingress') }])
    assert.deepEqual(find(same, 'invalid-field', 'DaemonSet/haproxy-ingress'), [])
    // extensions/v1beta1 defaulted the selector from the template's labels.
    const old = check([
      { name: file, text: text.replace('apiVersion: apps/v1', 'apiVersion: extensions/v1beta1') },
    ])
    assert.deepEqual(find(old, 'invalid-field', 'DaemonSet/haproxy-ingress'), [])
    // A kustomize base has neither (commonLabels adds both): metrics-server's.
    const base = await checkReal('metrics-server')
    assert.deepEqual(find(base, 'invalid-field', 'Deployment/metrics-server'), [])
  })
})

describe('peer ports are not how users are served', () => {
  test('--assume-served proposes the readiness probe on the client port, not the peer port', async () => {
    // kubernetes/kubernetes' e2e etcd StatefulSet (outside/etcd-e2e.yaml) declares its peer
    // port 2380 first and its client port 2379 second.
    const r = await checkOutside('etcd-e2e.yaml', { assumeServed: true })
    const f = find(r, 'no-readiness-probe', 'StatefulSet/etcd')
    assert.equal(f.length, 1)
    assert.match(f[0]!.fix, /tcpSocket: \{port: 2379\}/)
  })
})
