// HTTP/2 drained under load from undici, whose HTTP/2 client retries the requests a GOAWAY
// did not accept (undici 8; its engines field asks for Node 22.19 or later).
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { startApp } from './app-process.js'
import { within } from './helpers.js'

const [major = 0, minor = 0] = process.versions.node.split('.').map(Number)
const supported = major > 22 || (major === 22 && minor >= 19)

describe('HTTP/2 with undici', {
  skip: supported ? false : 'undici 8 needs Node 22.19 or later',
}, () => {
  test('requests over h2 through the whole drain: none fails, and clients move to new sessions', async (t) => {
    const { Agent, request } = await import('undici')
    const app = await startApp({
      fixture: 'h2-app',
      options: { drainDelay: 2_500, shutdownTimeout: 3_000 },
      env: { FIXTURE_H2: 'tls' },
    })
    t.after(() => app.child.kill('SIGKILL'))
    const dispatcher = new Agent({
      allowH2: true,
      connect: { rejectUnauthorized: false },
      // One stream at a time per session, so a request undici retries after a GOAWAY is the
      // first stream of its new session, which is always served. (With many streams per
      // session, a retried request can race the new session's own GOAWAY, and undici
      // retries a refused stream only once; on Kubernetes the retry's new connection
      // normally goes to another replica.)
      pipelining: 1,
    })
    t.after(() => dispatcher.close())
    // Requests start before the signal and stop well before the drain ends (drainDelay is
    // there so that, on Kubernetes, nothing is routed to the pod by then). The margin covers
    // GOAWAY_PING_TIMEOUT_MS: a node:http2 client that processes a GOAWAY while undici
    // re-queues a stream it could not send stops writing (it never acks the PING), so its
    // unsent requests wait for the final GOAWAY to refuse them, then undici retries them.
    let stopAt = Number.POSITIVE_INFINITY
    void app.state('draining').then(() => {
      stopAt = performance.now() + 1_000
    })
    const failures: string[] = []
    let ok = 0
    let signalled = false
    const started = performance.now()
    const loop = async () => {
      // Bounded in count and time.
      for (let i = 0; i < 2_000 && performance.now() < Math.min(stopAt, started + 6_000); i++) {
        try {
          const res = await request(`https://127.0.0.1:${app.port}/?delay=5`, { dispatcher })
          const body = await res.body.text()
          if (res.statusCode === 200 && body === 'GET / 5') ok++
          else failures.push(`${res.statusCode} ${body}`)
        } catch (error) {
          failures.push((error as Error).message)
        }
        if (ok >= 20 && !signalled) {
          signalled = true
          app.signal('SIGTERM')
        }
      }
    }
    await within('the load to finish', Promise.all([loop(), loop(), loop(), loop()]))
    assert.deepEqual(failures, [])
    assert.ok(ok > 20, `${ok} requests answered`)
    assert.equal((await app.exit()).code, 0)
    const sessions = app.logs().find((l) => l.state === 'stopped') as
      | { connections: { closed: number } }
      | undefined
    assert.ok(
      (sessions?.connections.closed ?? 0) >= 2,
      'the client opened a new session after the GOAWAY',
    )
  })
})
