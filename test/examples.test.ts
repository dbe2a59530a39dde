// What a new user does with examples/server.ts: keep-alive traffic, kill -TERM, every
// request answered, readiness 503 during the lame-duck phase, exit 0; and with a request
// slower than the deadline, exit 1 and the forced count in the log.
import assert from 'node:assert/strict'
import http from 'node:http'
import { test } from 'node:test'
import { exited, fromRoot, nextEvent, spawnNode, within } from './helpers.js'
import { get } from './http-client.js'

function startExample(env: Record<string, string>) {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('LAMEDUCK_')),
  )
  delete clean.KUBERNETES_SERVICE_HOST
  return spawnNode(fromRoot('dist/examples/server.js'), [], {
    env: { ...clean, PORT: '0', ...env },
  })
}

test('examples/server.ts answers every keep-alive request through a SIGTERM and exits 0', async (t) => {
  const app = startExample({ LAMEDUCK_DRAIN_DELAY_MS: '300' })
  t.after(() => app.child.kill('SIGKILL'))
  const port = Number(/listening on (\d+)/.exec(await app.waitFor(/listening on \d+/))?.[1])
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })
  t.after(() => agent.destroy())

  const results: { status: number; connection: string | undefined }[] = []
  const failures: string[] = []
  let readinessDuringDrain = 0
  let stop = false
  const load = (async () => {
    // Bounded: at most 2 000 requests, and it stops as soon as the drain ends.
    for (let i = 0; i < 2_000 && !stop; i++) {
      await Promise.all(
        [0, 1, 2, 3].map(() =>
          get(port, '/?delay=2', { agent }).then(
            (res) => results.push({ status: res.status, connection: res.headers.connection }),
            (error: Error) => failures.push(error.message),
          ),
        ),
      )
    }
  })()
  const slow = get(port, '/?delay=500', { agent: false })
  await within(
    'some keep-alive traffic',
    new Promise<void>((resolve) => {
      const check = () => (results.length >= 20 ? resolve() : setImmediate(check))
      check()
    }),
  )
  app.child.kill('SIGTERM')
  await app.waitFor('"state":"draining"', 'the draining log line')
  const ready = await get(port, '/readyz')
  if (ready.status === 503) readinessDuringDrain++
  await app.waitFor('"state":"stopping"', 'the stopping log line')
  stop = true
  await within('the load loop to finish', load)
  const slowResponse = await slow
  const exit = await exited(app.child, 'the example to exit')

  assert.deepEqual(failures, [], 'no request failed while the listener was open')
  assert.ok(results.every((r) => r.status === 200))
  assert.ok(
    results.some((r) => r.connection === 'close'),
    'responses in the lame-duck phase say Connection: close',
  )
  assert.equal(readinessDuringDrain, 1)
  assert.equal(slowResponse.body, '{"pod":"server","path":"/","delay":500}')
  assert.deepEqual(exit, { code: 0, signal: null })
  assert.match(app.stdout(), /closed every connection/)
})

test('examples/server.ts with a request slower than the deadline exits 1 and logs the forced count', async (t) => {
  // The lame-duck phase guarantees the request is read even if it lands after the signal.
  const app = startExample({ LAMEDUCK_DRAIN_DELAY_MS: '200', LAMEDUCK_SHUTDOWN_TIMEOUT_MS: '100' })
  t.after(() => app.child.kill('SIGKILL'))
  const port = Number(/listening on (\d+)/.exec(await app.waitFor(/listening on \d+/))?.[1])
  const req = http.request({ host: '127.0.0.1', port, path: '/?delay=5000', agent: false })
  const slow = new Promise<string>((resolve) => {
    req.on('response', () => resolve('answered'))
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message))
  })
  req.end()
  await nextEvent(req, 'finish', 'the slow request to be sent')
  app.child.kill('SIGTERM')
  const exit = await exited(app.child, 'the example to exit')
  assert.equal(exit.code, 1)
  assert.match(await slow, /ECONNRESET|socket hang up/)
  assert.match(app.stderr(), /forced 1 connection\(s\) still open after shutdownTimeout 100 ms/)
})
