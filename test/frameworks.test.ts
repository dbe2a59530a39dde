// Each framework example (examples/frameworks/) through a real SIGTERM with a request in
// flight: readiness answers 503, responses in the lame-duck phase say Connection: close,
// the in-flight request gets its full answer, the framework's own shutdown runs, exit 0.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { exited, fromRoot, spawnNode, within } from './helpers.js'
import { get } from './http-client.js'

const DRAIN_MS = 1_000
/** Longer than the drain: the request is still running when the listener closes. */
const SLOW_MS = 1_300

const frameworks: { name: string; shutdown: RegExp }[] = [
  { name: 'express', shutdown: /express: every connection closed/ },
  {
    name: 'fastify',
    shutdown: /fastify: every connection closed\n[\s\S]*fastify: onClose hooks ran/,
  },
  { name: 'koa', shutdown: /koa: every connection closed/ },
  { name: 'hono', shutdown: /hono: every connection closed/ },
  { name: 'nestjs', shutdown: /nestjs: onApplicationShutdown ran/ },
]

/** lameduck_in_flight_requests from the example's /metrics. */
async function inFlight(port: number): Promise<number> {
  const { body } = await get(port, '/metrics')
  return Number(/^lameduck_in_flight_requests (\d+)$/m.exec(body)?.[1] ?? Number.NaN)
}

test('framework examples drain through SIGTERM', { concurrency: true }, async (t) => {
  const runs = frameworks.map(({ name, shutdown }) =>
    t.test(name, async (t) => {
      const env = Object.fromEntries(
        Object.entries(process.env).filter(([key]) => !key.startsWith('LAMEDUCK_')),
      )
      delete env.KUBERNETES_SERVICE_HOST
      const app = spawnNode(fromRoot(`dist/examples/frameworks/${name}.js`), [], {
        env: { ...env, PORT: '0', LAMEDUCK_DRAIN_DELAY_MS: String(DRAIN_MS) },
      })
      t.after(() => app.child.kill('SIGKILL'))
      const out = await app.waitFor(/listening on \d+/, `${name} to listen`, 15_000)
      const port = Number(/listening on (\d+)/.exec(out)?.[1])
      assert.equal((await get(port, '/readyz')).status, 200)

      const slow = get(port, `/?delay=${SLOW_MS}`)
      await within(
        `${name}: the slow request to be in flight`,
        (async () => {
          while ((await inFlight(port)) < 1) await new Promise((r) => setTimeout(r, 5))
        })(),
      )
      app.child.kill('SIGTERM')
      await app.waitFor('"state":"draining"', `${name}: the draining log line`)
      const ready = await get(port, '/readyz')
      const during = await get(port, '/')
      // lameduck logs JSON on stderr, or through the framework's logger (Fastify: stdout).
      const stillDraining = !`${app.stdout()}${app.stderr()}`.includes('"state":"stopping"')
      const answer = await slow
      const exit = await exited(app.child, `${name} to exit`, 10_000)

      assert.ok(stillDraining, 'the probes ran inside the lame-duck phase')
      assert.equal(ready.status, 503)
      assert.deepEqual(JSON.parse(ready.body), { status: 'draining' })
      assert.equal(during.status, 200)
      assert.equal(during.headers.connection, 'close', 'a response in the lame duck says close')
      assert.equal(answer.status, 200)
      assert.deepEqual(JSON.parse(answer.body), { framework: name, delay: SLOW_MS })
      assert.equal(answer.headers.connection, 'close')
      assert.deepEqual(exit, { code: 0, signal: null }, app.stderr())
      assert.match(app.stdout(), shutdown)
    }),
  )
  await Promise.all(runs)
})
