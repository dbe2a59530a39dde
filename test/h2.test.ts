// HTTP/2 drained end to end: a real process, real signals, node:http2 and undici clients.
import assert from 'node:assert/strict'
import https from 'node:https'
import { describe, test } from 'node:test'
import { type AppProcess, startApp } from './app-process.js'
import { H2Session } from './h2-client.js'
import { FRAME, RawH2 } from './h2-raw.js'
import { within } from './helpers.js'
import { get, refused } from './http-client.js'

const MAX_STREAM_ID = 2 ** 31 - 1

function stopped(app: AppProcess) {
  const line = app.logs().find((l) => l.event === 'state' && l.state === 'stopped')
  return line as { exitCode: number; connections: { closed: number; forced: number } } | undefined
}

function startH2(options: Record<string, unknown>, mode: 'h2c' | 'tls' | 'tls-h1' = 'h2c') {
  return startApp({ fixture: 'h2-app', options, env: { FIXTURE_H2: mode } })
}

describe('HTTP/2 (h2c)', () => {
  test('probes answer over HTTP/2; at the signal a session gets GOAWAY 2^31-1, then the real last stream id', async (t) => {
    const app = await startH2({ drainDelay: 60_000 })
    t.after(() => app.child.kill('SIGKILL'))
    const before = new H2Session(app.port)
    t.after(() => before.close())
    assert.equal((await before.request('/readyz')).status, 200)
    assert.equal((await before.request('/livez')).status, 200)
    const stream = before.request('/stream?chunks=10&interval=30')
    await app.waitFor('request /stream')

    app.signal('SIGTERM')
    await app.state('draining')
    const goaways = await before.waitForGoaways(2)
    assert.deepEqual(goaways, [
      { code: 0, lastStreamID: MAX_STREAM_ID },
      { code: 0, lastStreamID: 5 },
    ])
    const streamed = await within('the stream in flight to complete', stream)
    assert.equal(streamed.status, 200)
    assert.match(streamed.body, /^chunk 0\n(chunk \d\n){9}done\n$/)
    await within('the session to end after its last stream', before.closed)
    assert.equal(app.stdout().match(/request \/readyz/g), null, 'probes never reach the app')
  })

  test('a session opened during the lame duck is served first, then gets the same two-step GOAWAY', async (t) => {
    const app = await startH2({ drainDelay: 60_000 })
    t.after(() => app.child.kill('SIGKILL'))
    app.signal('SIGTERM')
    await app.state('draining')
    const during = new H2Session(app.port)
    t.after(() => during.close())
    // Both streams leave together; the GOAWAY follows the end of the first one.
    const readyz = during.request('/readyz')
    const slow = during.request('/?delay=300')
    const ready = await readyz
    assert.equal(ready.status, 503)
    assert.deepEqual(JSON.parse(ready.body), { status: 'draining' })
    const goaways = await during.waitForGoaways(2)
    assert.deepEqual(goaways, [
      { code: 0, lastStreamID: MAX_STREAM_ID },
      { code: 0, lastStreamID: 3 },
    ])
    assert.equal((await slow).body, 'GET / 300')
    await within('the session to end', during.closed)
    const next = new H2Session(app.port)
    t.after(() => next.close())
    const served = await next.request('/?delay=20')
    assert.equal(served.body, 'GET / 20', 'the listener still serves new sessions')
  })

  test('close: the listener closes, sessions end with their last stream, a silent session is closed, exit 0', async (t) => {
    const app = await startH2({ drainDelay: 200 })
    t.after(() => app.child.kill('SIGKILL'))
    const idle = new H2Session(app.port)
    await idle.request('/')
    const silent = new H2Session(app.port)
    await silent.connected
    const busy = new H2Session(app.port)
    const slow = busy.request('/?delay=600')
    await app.waitFor('request /?delay=600')

    app.signal('SIGTERM')
    await app.state('stopping')
    assert.equal(await refused(app.port), true, 'new connections are refused once the drain ends')
    await within('the idle session to end', idle.closed)
    assert.equal((await slow).body, 'GET / 600')
    await within('the busy session to end after its stream', busy.closed)
    await within('the silent session to be sent a GOAWAY', silent.waitForGoaways(1))
    await within('the silent session to end', silent.closed)
    assert.deepEqual(await app.exit(), { code: 0, signal: null })
    assert.deepEqual(stopped(app)?.connections, { closed: 3, forced: 0 })
  })

  test('a stream slower than shutdownTimeout is cut at the deadline: exit 1, counted as forced', async (t) => {
    const app = await startH2({ shutdownTimeout: 150 })
    t.after(() => app.child.kill('SIGKILL'))
    const session = new H2Session(app.port)
    t.after(() => session.close())
    const slow = session.request('/?delay=60000').then(
      () => 'answered',
      (error: NodeJS.ErrnoException) => error.code ?? error.message,
    )
    await app.waitFor('request /?delay=60000')
    app.signal('SIGTERM')
    assert.equal((await app.exit()).code, 1)
    assert.notEqual(await slow, 'answered')
    assert.deepEqual(stopped(app)?.connections, { closed: 0, forced: 1 })
    const forced = app.logs().filter((line) => line.event === 'forced')
    assert.equal(forced[0]?.connections, 1)
  })
})

describe('HTTP/2 clients that do not follow the GOAWAY', () => {
  test('a stream opened after the GOAWAY is served or refused by the final last stream id, never reset; the accepted stream completes', async (t) => {
    const app = await startH2({ drainDelay: 60_000 })
    t.after(() => app.child.kill('SIGKILL'))
    const client = new RawH2(app.port)
    t.after(() => client.close())
    client.autoAckPing = false
    client.get(1, '/?delay=300')
    await app.waitFor('request /?delay=300')

    app.signal('SIGTERM')
    await client.until('the first GOAWAY', () => client.goaways().length === 1)
    assert.deepEqual(client.goaways(), [MAX_STREAM_ID])
    client.get(3, '/?delay=0')
    client.ackPings()
    await client.until('the final GOAWAY', () => client.goaways().length >= 2)
    await client.until('stream 1 to end', () => client.ended(1))
    assert.equal(client.body(1), 'GET / 300')
    assert.deepEqual(
      client.frames.filter((f) => f.type === FRAME.RST_STREAM),
      [],
      'no stream is reset',
    )
    // nghttp2, as node:http2 drives it, ignores every stream that arrives after it sent any
    // GOAWAY, so stream 3 is not served: the final GOAWAY's last stream id (1) tells the
    // client it was refused, safe to retry. Were it served, it would end with its body.
    const last = client.goaways()[1] ?? 0
    if (last >= 3) {
      await client.until('stream 3 to end', () => client.ended(3))
      assert.equal(client.body(3), 'GET / 0')
    } else {
      assert.equal(last, 1)
      assert.equal(client.frames.filter((f) => f.stream === 3).length, 0)
      assert.doesNotMatch(app.stdout(), /request \/\?delay=0/)
    }
  })

  test('a client that never acks the PING gets the final GOAWAY after GOAWAY_PING_TIMEOUT_MS', async (t) => {
    const app = await startH2({ drainDelay: 60_000 })
    t.after(() => app.child.kill('SIGKILL'))
    const client = new RawH2(app.port)
    t.after(() => client.close())
    client.autoAckPing = false
    client.get(1, '/?delay=1500')
    await app.waitFor('request /?delay=1500')
    app.signal('SIGTERM')
    await client.until('the first GOAWAY', () => client.goaways().length === 1)
    const first = performance.now()
    await client.until('the final GOAWAY', () => client.goaways().length === 2)
    assert.deepEqual(client.goaways(), [MAX_STREAM_ID, 1])
    const waited = performance.now() - first
    assert.ok(waited >= 900, `the final GOAWAY waited for the PING (${Math.round(waited)} ms)`)
    await client.until('stream 1 to end', () => client.ended(1))
    assert.equal(client.body(1), 'GET / 1500')
  })
})

describe('HTTP/2 over TLS with allowHTTP1', () => {
  test('h2 sessions get the two-step GOAWAY; HTTP/1.1 responses get Connection: close; probes answer on both', async (t) => {
    const app = await startH2({ drainDelay: 60_000 }, 'tls-h1')
    t.after(() => app.child.kill('SIGKILL'))
    const h2 = new H2Session(app.port, { tls: true })
    t.after(() => h2.close())
    assert.equal((await h2.request('/readyz')).status, 200)
    assert.equal((await get(app.port, '/readyz', { tls: true })).status, 200)
    const agent = new https.Agent({ keepAlive: true, rejectUnauthorized: false })
    t.after(() => agent.destroy())
    const h1 = await get(app.port, '/?delay=0', { tls: true, agent })
    assert.equal(h1.body, 'GET / 0')
    assert.equal(h1.headers.connection, 'keep-alive')

    const slow = h2.request('/?delay=300')
    await app.waitFor('request /?delay=300')

    app.signal('SIGTERM')
    await app.state('draining')
    assert.deepEqual(await h2.waitForGoaways(2), [
      { code: 0, lastStreamID: MAX_STREAM_ID },
      { code: 0, lastStreamID: 3 },
    ])
    assert.equal((await slow).body, 'GET / 300')
    const during = await get(app.port, '/?delay=0', { tls: true, agent })
    assert.equal(during.body, 'GET / 0')
    assert.equal(during.headers.connection, 'close')
    const ready = await get(app.port, '/readyz', { tls: true })
    assert.equal(ready.status, 503)
    const h2During = new H2Session(app.port, { tls: true })
    t.after(() => h2During.close())
    assert.equal((await h2During.request('/readyz')).status, 503)
    assert.match(app.stdout(), /request \/\?delay=0 1\.1/)
  })
})
