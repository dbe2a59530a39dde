import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { check, RULES } from '../../src/check/index.js'
import { fromRoot } from '../helpers.js'

// The Deployment from the seed article (shared/seed): grace 60 s, readiness GET /health
// every 10 s with failureThreshold 3, liveness tcpSocket, no preStop, no strategy, 3 replicas.
// The article's premise is that readiness failures take the pod out of the Service after
// 3 × 10 s; in fact the endpoint is marked not ready as soon as the pod terminates. What a
// careful reviewer would say, assuming the app uses lameduck (the fixture carries the
// lameduck/app annotation that says so):
//   - no-spread (info): 3 replicas and nothing that keeps them off a single node;
//   - readiness-path (info): /health is not lameduck's /readyz; it must flip to 503 on
//     SIGTERM the way /readyz does.
//   - once the probe is on /readyz (readiness-path's fix), readiness-slower-than-drain
//     (info): 10 s × 3 = 30 s before a load balancer that health-checks the pod sees the
//     503, but lameduck drains 10 s; in-cluster routing does not wait for the probe, so this
//     matters only to such load balancers. Not before: on /health the probe never sees the
//     503, and timing it would contradict readiness-path (issue 20, item 5).
// And what would be wrong to report:
//   - no drain delay: lameduck drains 10 s after SIGTERM by default on Kubernetes, so no
//     preStop sleep is needed;
//   - the grace period: drain 10 + shutdown 20 + hooks 5 + margin 5 = 40 s ≤ 60 s;
//   - the strategy: the defaults 25%/25% of 3 replicas give maxUnavailable 0 (rounded
//     down) and maxSurge 1 (rounded up), a safe rollout;
//   - the tcpSocket liveness probe: a different check from readiness, and liveness stops
//     when the pod terminates.
const file = fromRoot('test/fixtures/check/seed-deployment.yaml')
const result = check([{ name: 'seed-deployment.yaml', text: readFileSync(file, 'utf8') }])

describe('the seed Deployment', () => {
  test('gets exactly the findings a careful reviewer would make', () => {
    assert.deepEqual(
      result.findings.map((f) => [f.rule, f.severity, f.line, f.path]),
      [
        ['no-spread', 'info', 21, 'spec.template.spec.affinity'],
        [
          'readiness-path',
          'info',
          30,
          'spec.template.spec.containers[0].readinessProbe.httpGet.path',
        ],
      ],
    )
  })

  test('the findings explain themselves in numbers; readiness timing once the probe is on /readyz', () => {
    const onReadyz = check([
      {
        name: 'seed-deployment.yaml',
        text: readFileSync(file, 'utf8').replace('path: /health', 'path: /readyz'),
      },
    ])
    assert.deepEqual(
      onReadyz.findings.map((f) => f.rule),
      ['no-spread', 'readiness-slower-than-drain'],
    )
    const slower = onReadyz.findings.find((f) => f.rule === 'readiness-slower-than-drain')!
    assert.match(slower.message, /10 s × 3 = 30 s/)
    assert.match(slower.message, /drains 10 s after SIGTERM/)
    assert.match(
      RULES.find((r) => r.id === 'readiness-slower-than-drain')!.rationale,
      /in-cluster routing does not wait for the probe/,
    )
    const path = result.findings.find((f) => f.rule === 'readiness-path')!
    assert.match(path.message, /GET \/health on port 8080, not lameduck's \/readyz$/)
  })

  test('its timeline fits the 60 s grace period', () => {
    assert.equal(result.timelines.length, 1)
    const [t] = result.timelines
    assert.equal(t!.container.name, 'my-app-container')
    assert.deepEqual(
      [t!.preStop.kind, t!.drain.seconds, t!.shutdown.seconds, t!.hooks.seconds, t!.totalSeconds],
      ['none', 10, 20, 5, 40],
    )
    assert.deepEqual(t!.grace, {
      seconds: 60,
      written: true,
      invalid: false,
      path: ['spec', 'template', 'spec', 'terminationGracePeriodSeconds'],
    })
  })

  test('no error: with the default --fail-on error it passes', () => {
    assert.ok(result.findings.every((f) => f.severity === 'info'))
  })
})

describe('examples/k8s, the manifests the README recommends', () => {
  test('pass clean, with the timeline the comments describe', () => {
    const names = ['examples/k8s/deployment.yaml', 'examples/k8s/service.yaml']
    const r = check(names.map((name) => ({ name, text: readFileSync(fromRoot(name), 'utf8') })))
    assert.deepEqual(r.findings, [])
    assert.equal(r.workloads, 1)
    const [t] = r.timelines
    assert.deepEqual(
      t!.workload.services.map((s) => s.name),
      ['web'],
    )
    assert.deepEqual(
      [t!.drain.source, t!.drain.seconds, t!.shutdown.seconds, t!.hooks.seconds],
      ['env', 10, 20, 5],
    )
    assert.equal(t!.totalSeconds, 40)
    assert.equal(t!.grace.seconds, 45)
  })
})
