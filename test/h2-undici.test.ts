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
      options: { drainDelay: 400, shutdownTimeout: 3_000 },
      env: { FIXTURE_H2: 'tls' },
    })
    t.after(() => app.child.kill('SIGKILL'))
    const dispatcher = new Agent({
      allowH2: true,
      connect: { rejectUnauthorized: false },
      pipelining: 10,
    })
    t.after(() => dispatcher.close())
    let stopping = false
    void app.state('stopping').then(() => {
      stopping = true
    })
    const failures: string[] = []
    let ok = 0
    const started = performance.now()
    const loop = async () => {
      // Bounded in count and time.
      for (let i = 0; i < 2_000 && !stopping && performance.now() - started < 4_000; i++) {
        try {
          const res = await request(`https://127.0.0.1:${app.port}/?delay=5`, { dispatcher })
          const body = await res.body.text()
          if (res.statusCode === 200 && body === 'GET / 5') ok++
          else failures.push(`${res.statusCode} ${body}`)
        } catch (error) {
          failures.push((error as Error).message)
        }
        if (i === 5) app.signal('SIGTERM')
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
