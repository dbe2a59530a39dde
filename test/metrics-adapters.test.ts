// promClientMetrics and openTelemetryMetrics: lameduck's figures on the application's own
// prom-client registry and OpenTelemetry meter, read across a real SIGTERM.
import assert from 'node:assert/strict'
import http from 'node:http'
import { describe, test } from 'node:test'
import { MeterProvider } from '@opentelemetry/sdk-metrics'
import { lameduck, openTelemetryMetrics, promClientMetrics } from 'lameduck'
import client from 'prom-client'
import { startApp } from './app-process.js'
import { get, RawConnection } from './http-client.js'
import { parse, type Sample } from './prometheus.js'

function value(samples: Sample[], name: string, labels: Record<string, string> = {}) {
  const found = samples.find(
    (s) => s.name === name && JSON.stringify(s.labels) === JSON.stringify(labels),
  )
  assert.ok(found, `sample ${name} ${JSON.stringify(labels)}`)
  return found.value
}

/** prom-client separates families with a blank line, which the strict parser refuses. */
function scrape(answer: { body: string }): Sample[] {
  return parse(`${answer.body.split('\n').filter(Boolean).join('\n')}\n`).samples
}

type Collected = Record<string, [number, Record<string, unknown>][]>

describe('lameduck figures in the application metrics', () => {
  test("the app's /metrics serves its own metrics and lameduck's, and the meter carries them too, across SIGTERM", async (t) => {
    const app = await startApp({ fixture: 'metrics-app', options: { drainDelay: 60_000 } })
    t.after(() => app.child.kill('SIGKILL'))
    await app.state('ready')
    const before = scrape(await get(app.port, '/metrics'))
    assert.ok(value(before, 'http_requests_total') >= 1, "the application's own counter is there")
    assert.equal(value(before, 'lameduck_state', { state: 'ready' }), 1)
    assert.equal(value(before, 'lameduck_state', { state: 'draining' }), 0)

    const inFlight = new RawConnection(app.port)
    inFlight.request('/?delay=60000')
    await app.waitFor('request /?delay=60000')
    app.signal('SIGTERM')
    await app.state('draining')
    const during = scrape(await get(app.port, '/metrics'))
    assert.equal(value(during, 'lameduck_state', { state: 'draining' }), 1)
    assert.equal(value(during, 'lameduck_state', { state: 'ready' }), 0)
    // The slow request and the scrape itself, which goes through the managed server.
    assert.equal(value(during, 'lameduck_in_flight_requests'), 2)
    assert.ok(value(during, 'lameduck_shutdown_phase_seconds', { phase: 'drain' }) > 0)
    assert.equal(value(during, 'lameduck_shutdown_forced_connections_total'), 0)

    const otel = JSON.parse((await get(app.port, '/otel')).body) as Collected
    assert.deepEqual(
      otel['lameduck.state']?.filter(([v]) => v === 1),
      [[1, { state: 'draining' }]],
    )
    assert.deepEqual(otel['lameduck.in_flight_requests'], [[2, {}]])
    assert.deepEqual(
      otel['lameduck.shutdown.phase.duration']?.map(([, attributes]) => attributes.phase),
      ['drain', 'close', 'hooks'],
    )
    assert.deepEqual(otel['lameduck.shutdown.forced_connections'], [[0, {}]])
    assert.ok(otel['lameduck.open_connections'])
    assert.ok(otel['lameduck.shutdown.closed_connections'])
  })

  test('lameduck says at start that its metrics path on the app port hides an app route of that path', async (t) => {
    const app = await startApp({
      fixture: 'metrics-app',
      options: { probes: { metrics: '/metrics' } },
    })
    t.after(() => app.child.kill('SIGKILL'))
    const line = app.logs().find((l) => l.event === 'metrics-path')
    assert.equal(line?.path, '/metrics')
    assert.match(String(line?.msg), /an application route \/metrics is never reached/)
    // And indeed the app's own counter is gone from /metrics.
    assert.doesNotMatch((await get(app.port, '/metrics')).body, /http_requests_total/)
  })

  test('the adapters remove what they added, and reject what is not a lameduck, prom-client or meter', async () => {
    const server = http.createServer()
    const ld = lameduck(server, { signals: [], exit: false, logger: false })
    const registry = new client.Registry()
    const remove = promClientMetrics(ld, client, { registry })
    assert.match(await registry.metrics(), /lameduck_state\{state="starting"\} 1/)
    remove()
    assert.doesNotMatch(await registry.metrics(), /lameduck/)
    const removeGlobal = promClientMetrics(ld, client)
    assert.match(await client.register.metrics(), /lameduck_open_connections 0/)
    removeGlobal()
    assert.doesNotMatch(await client.register.metrics(), /lameduck/)
    const stop = openTelemetryMetrics(ld, new MeterProvider().getMeter('x'))
    stop()
    assert.throws(
      () => promClientMetrics({} as typeof ld, client),
      /first argument of promClientMetrics to be what lameduck\(\) returned/,
    )
    assert.throws(
      () => promClientMetrics(ld, {} as typeof client),
      /second argument of promClientMetrics to be the prom-client module/,
    )
    assert.throws(
      () => openTelemetryMetrics(ld, {} as never),
      /second argument of openTelemetryMetrics to be an OpenTelemetry Meter/,
    )
    await ld.shutdown()
  })
})
