// `lameduck rollout --from deployment.yaml`: the settings of the user's own Deployment, read
// by the loader `lameduck check` uses; flags win; the report says where each came from.
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { exited, fromRoot } from '../helpers.js'
import { FAST, runLab, scratch, startLab } from './lab-helpers.js'

const manifest = fromRoot('examples/k8s/deployment.yaml')
const graceful = [process.execPath, fromRoot('dist/examples/server.js')]

test('--from takes replicas, strategy, grace period, probe and env from the Deployment; flags win; the report says where each came from', async () => {
  const run = await runLab(
    [
      '--from',
      manifest,
      '--replicas',
      '2',
      ...FAST,
      '--rate',
      '40',
      '--env',
      'LAMEDUCK_DRAIN_DELAY_MS=1000',
    ],
    graceful,
    60_000,
  )
  assert.equal(run.exit.code, 0, `${run.stdout}\n${run.stderr}`)
  const { settings, failed } = run.result!
  assert.equal(failed, 0)
  // From the manifest.
  assert.equal(settings.name, 'web')
  assert.equal(settings.maxSurge, '1')
  assert.equal(settings.maxUnavailable, '0')
  assert.equal(settings.gracePeriodMs, 45_000)
  assert.equal(settings.readiness.path, '/readyz')
  assert.equal(settings.readiness.failureThreshold, 2)
  assert.equal(settings.env.LAMEDUCK_SHUTDOWN_TIMEOUT_MS, '20000')
  // The flags win, key by key for env; the manifest's PORT is not given to every pod.
  assert.equal(settings.replicas, 2)
  assert.equal(settings.readiness.periodMs, 200)
  assert.equal(settings.env.LAMEDUCK_DRAIN_DELAY_MS, '1000')
  assert.equal(settings.env.PORT, undefined)
  const origins = settings.from!.origins
  assert.match(
    origins.gracePeriodMs!,
    /deployment\.yaml:\d+ \(spec\.template\.spec\.terminationGracePeriodSeconds\)$/,
  )
  assert.match(
    origins.maxSurge!,
    /deployment\.yaml:26 \(spec\.strategy\.rollingUpdate\.maxSurge\)$/,
  )
  assert.equal(origins.replicas, '--replicas')
  assert.equal(origins.readinessPeriodMs, '--readiness-period')
  assert.equal(origins.minReadyMs, 'default')
  assert.match(
    origins.env!,
    /deployment\.yaml:\d+ \(spec\.template\.spec\.containers\.0\.env\) \+ --env$/,
  )
  assert.ok(
    run.result!.warnings.includes(
      `--from ${manifest}: PORT=8080 is not set: the lab gives each pod its port in $PORT`,
    ),
  )
  assert.match(
    run.stdout,
    /from \S+deployment\.yaml: manifest: name \S+deployment\.yaml:14 \(metadata\.name\), .*, env \S+deployment\.yaml:\d+ \(spec\.template\.spec\.containers\.0\.env\) \+ --env; flags: replicas, readinessPeriodMs, readinessTimeoutMs; defaults: minReadyMs/,
  )
})

test('--from with a Deployment the lab cannot roll says where and why, before any pod starts', async () => {
  const { dir, dispose } = scratch()
  try {
    const file = join(dir, 'recreate.yaml')
    writeFileSync(
      file,
      'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  strategy:\n    type: Recreate\n',
    )
    const none = join(dir, 'service.yaml')
    writeFileSync(none, 'apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n')
    for (const [path, message] of [
      [
        file,
        `lameduck rollout: ${file}:7 (spec.strategy.type): strategy Recreate takes every pod down at once; the lab rolls RollingUpdate Deployments only\n`,
      ],
      [
        none,
        `lameduck rollout: --from ${none}: expected exactly one Deployment, found 0 (the file holds Service)\n`,
      ],
    ] as const) {
      const lab = startLab(['--quiet', '--from', path, '--', 'true'])
      const exit = await exited(lab.child, `--from ${path}`, 10_000)
      assert.equal(exit.code, 2)
      assert.equal(lab.stderr(), message)
    }
  } finally {
    dispose()
  }
})
