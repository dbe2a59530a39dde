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
  const app = startExample({ LAMEDUCK_DRAIN_DELAY_MS: '1500' })
  t.after(() => app.child.kill('SIGKILL'))
  const port = Number(/listening on (\d+)/.exec(await app.waitFor(/listening on \d+/))?.[1])
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })
  t.after(() => agent.destroy())

  // Keep-alive load, 4 requests at a time, until 40 responses told the client to close:
  // by then, on Kubernetes, the endpoint removal has reached the clients and they stop
  // opening connections to this pod. Bounded at 5 000 requests.
  const results: { status: number; connection: string | undefined }[] = []
  const failures: string[] = []
  let closes = 0
  const load = (async () => {
    for (let i = 0; i < 5_000 / 4 && closes < 40; i++) {
      await Promise.all(
        [0, 1, 2, 3].map(() =>
          get(port, '/?delay=1', { agent }).then(
            (res) => {
              results.push({ status: res.status, connection: res.headers.connection })
              if (res.headers.connection === 'close') closes++
            },
            (error: Error) => failures.push(error.message),
          ),
        ),
      )
    }
  })()
  const slow = get(port, '/?delay=300', { agent: false })
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
  await within('the load loop to finish', load)
  const stillDraining = !app.stderr().includes('"state":"stopping"')
  const slowResponse = await slow
  const exit = await exited(app.child, 'the example to exit')

  assert.ok(stillDraining, 'the load ended inside the lame-duck phase')
  assert.deepEqual(failures, [], 'no request failed')
  assert.ok(results.every((r) => r.status === 200))
  assert.ok(closes >= 40, 'responses in the lame-duck phase say Connection: close')
  assert.equal(ready.status, 503)
  assert.deepEqual(JSON.parse(ready.body), { status: 'draining' })
  assert.equal(slowResponse.body, '{"pod":"server","path":"/","delay":300}')
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
