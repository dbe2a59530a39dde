// HTTP/1.1 traffic shapes across the shutdown: streamed responses, an app that insists on
// keep-alive, pipelining, Expect, upgrades, a blocked event loop, connections older than
// lameduck(), absolute-form targets. A real process, real signals, real sockets.
import assert from 'node:assert/strict'
import dns from 'node:dns'
import http from 'node:http'
import https from 'node:https'
import { describe, test } from 'node:test'
import { lameduck } from 'lameduck'
import { type AppProcess, startApp } from './app-process.js'
import { nextEvent, within } from './helpers.js'
import { parseResponses, RawConnection, type Response } from './http-client.js'

function stopped(app: AppProcess): Record<string, unknown> | undefined {
  return app.logs().find((line) => line.event === 'state' && line.state === 'stopped')
}

function probeOption(where: 'same port' | 'own port'): Record<string, unknown> {
  return where === 'own port' ? { probes: { port: 0, host: '127.0.0.1' } } : {}
}

let flushes = 0
/** Waits until the app's output so far has reached the test: it prints a line for one more
 * request, and lines arrive in order. The listener must still be open. */
async function flushed(app: AppProcess): Promise<void> {
  const marker = `/?flush=${++flushes}`
  const connection = new RawConnection(app.port)
  connection.request(marker)
  await app.waitFor(`request ${marker}`)
  connection.socket.destroy()
}

/** Requests the app's handler ran, as printed by the fixture. */
function ran(app: AppProcess, prefix: string): string[] {
  return app
    .stdout()
    .split('\n')
    .filter((line) => line.startsWith(`request ${prefix}`))
}

interface AgentResponse extends Response {
  /** The client-side port of the connection it came on. */
  localPort: number | undefined
}

function request(
  port: number,
  path: string,
  agent: http.Agent,
  tls: boolean,
): Promise<AgentResponse> & { ended: Promise<void>; firstChunk: Promise<void> } {
  let onEnd: () => void = () => {}
  let onChunk: () => void = () => {}
  const ended = new Promise<void>((resolve) => {
    onEnd = resolve
  })
  const firstChunk = new Promise<void>((resolve) => {
    onChunk = resolve
  })
  const client = tls ? https : http
  const done = new Promise<AgentResponse>((resolve, reject) => {
    const req = client.request(
      { host: '127.0.0.1', port, path, agent, rejectUnauthorized: false },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          body += chunk
          onChunk()
        })
        const localPort = res.socket.localPort
        res.on('end', () => {
          onEnd()
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, localPort })
        })
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end()
  })
  return Object.assign(done, { ended, firstChunk })
}

describe('HTTP/1.1 shapes across the shutdown', () => {
  for (const tls of [false, true]) {
    test(`a response streamed across the signal completes, and the next request on its keep-alive socket succeeds with Connection: close (${tls ? 'https' : 'http'})`, async (t) => {
      const app = await startApp({ options: { drainDelay: 2_000 }, https: tls })
      t.after(() => app.child.kill('SIGKILL'))
      const port = tls ? (app.httpsPort as number) : app.port
      const agent = new (tls ? https : http).Agent({ keepAlive: true, maxSockets: 1 })
      t.after(() => agent.destroy())
      const first = request(port, '/stream?chunks=6&interval=30', agent, tls)
      await within('the first chunk, before the signal', first.firstChunk)
      app.signal('SIGTERM')
      await app.state('draining')
      // Queued behind the stream on the one socket: the Agent sends it the instant the
      // stream's body ends, which is what a busy keep-alive client does.
      const next = request(port, '/?delay=0&after=stream', agent, tls)
      const streamed = await within('the streamed response', first)
      assert.equal(streamed.body, 'chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\nchunk 5\ndone\n')
      assert.equal(streamed.headers.connection, 'keep-alive', 'its headers went out before')
      const answered = await within('the request sent right after the stream', next)
      assert.equal(answered.status, 200)
      assert.equal(answered.localPort, streamed.localPort, 'it went on the same socket')
      assert.equal(answered.headers.connection, 'close')
      await flushed(app)
      assert.equal(ran(app, '/?delay=0&after=stream').length, 1)
    })
  }

  for (const [via, probes] of [
    ['setHeader', 'same port'],
    ['writeHead', 'same port'],
    ['pairs', 'same port'],
    ['writeHead', 'own port'],
  ] as const) {
    test(`an app that sets Connection: keep-alive (${via}) still answers with Connection: close during the lame duck (probes on the ${probes})`, async (t) => {
      const app = await startApp({ options: { drainDelay: 60_000, ...probeOption(probes) } })
      t.after(() => app.child.kill('SIGKILL'))
      app.signal('SIGTERM')
      await app.state('draining')
      const connection = new RawConnection(app.port)
      connection.request(`/keepalive?via=${via}`)
      await within('the connection to close after the response', connection.closed)
      const [response] = parseResponses(connection.data)
      assert.equal(response?.body, 'kept')
      assert.equal(response?.headers.connection, 'close')
    })
  }

  for (const probes of ['same port', 'own port'] as const) {
    test(`pipelined requests sent during the lame duck: each one the app runs is answered, in order, the last with Connection: close (probes on the ${probes})`, async (t) => {
      const app = await startApp({ options: { drainDelay: 60_000, ...probeOption(probes) } })
      t.after(() => app.child.kill('SIGKILL'))
      app.signal('SIGTERM')
      await app.state('draining')
      const connection = new RawConnection(app.port)
      await connection.connected
      const get = (n: number) =>
        `GET /?delay=20&pipe=${n} HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n`
      connection.send(get(1) + get(2) + get(3))
      await within('the connection to close', connection.closed)
      await flushed(app)
      const responses = parseResponses(connection.data)
      assert.equal(responses.length, ran(app, '/?delay=20&pipe=').length)
      assert.deepEqual(
        responses.map((r) => r.body),
        ['GET / 20', 'GET / 20', 'GET / 20'],
      )
      assert.deepEqual(
        responses.map((r) => r.headers.connection),
        ['keep-alive', 'keep-alive', 'close'],
      )
    })
  }

  test('pipelined requests in flight at the signal are all answered, the last with Connection: close', async (t) => {
    const app = await startApp({ options: { drainDelay: 60_000 } })
    t.after(() => app.child.kill('SIGKILL'))
    const connection = new RawConnection(app.port)
    await connection.connected
    const get = (n: number) =>
      `GET /?delay=300&pipe=${n} HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n`
    connection.send(get(1) + get(2) + get(3))
    await app.waitFor('request /?delay=300&pipe=3')
    app.signal('SIGTERM')
    await app.state('draining')
    await within('the connection to close', connection.closed)
    const responses = parseResponses(connection.data)
    assert.equal(responses.length, 3)
    assert.deepEqual(
      responses.map((r) => r.headers.connection),
      ['keep-alive', 'keep-alive', 'close'],
    )
  })

  test('pipelined requests behind a response that already said close are not run by the app', async (t) => {
    const app = await startApp({ options: { drainDelay: 60_000 } })
    t.after(() => app.child.kill('SIGKILL'))
    app.signal('SIGTERM')
    await app.state('draining')
    const connection = new RawConnection(app.port)
    await connection.connected
    // This route answers synchronously: its headers (with close) go out before node has
    // parsed the requests behind it.
    const get = (n: number) =>
      `GET /keepalive?via=writeHead&pipe=${n} HTTP/1.1\r\nHost: localhost\r\n\r\n`
    connection.send(get(1) + get(2) + get(3))
    await within('the connection to close', connection.closed)
    await flushed(app)
    const responses = parseResponses(connection.data)
    const runs = ran(app, '/keepalive?via=writeHead&pipe=')
    assert.ok(runs.length >= 1)
    assert.equal(responses.length, runs.length, 'every request the app ran was answered')
    assert.equal(responses.at(-1)?.headers.connection, 'close')
  })

  test('probe paths sent with Expect reach neither checkContinue nor checkExpectation, and responses made there say close during the lame duck', async (t) => {
    const app = await startApp({ options: { drainDelay: 60_000 }, expect: true })
    t.after(() => app.child.kill('SIGKILL'))
    for (const expect of ['100-continue', 'something-else']) {
      const probe = new RawConnection(app.port)
      probe.send(`GET /readyz HTTP/1.1\r\nHost: localhost\r\nExpect: ${expect}\r\n\r\n`)
      await probe.waitFor('"status":"ready"', `the readiness answer with Expect: ${expect}`)
      probe.socket.destroy()
    }
    assert.doesNotMatch(app.stdout(), /check(Continue|Expectation) \/readyz/)

    app.signal('SIGTERM')
    await app.state('draining')
    const post = new RawConnection(app.port)
    post.send(
      'POST /?delay=0 HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n',
    )
    await post.waitFor('100 Continue')
    post.send('hello')
    await within('the connection to close after the response', post.closed)
    const responses = parseResponses(post.data)
    assert.deepEqual(
      responses.map((r) => r.status),
      [100, 200],
    )
    assert.equal(responses[1]?.headers.connection, 'close')
    assert.match(app.stdout(), /checkContinue \/\?delay=0/)
  })

  test("a probe path sent as an upgrade request is answered as a probe and never reaches the app's 'upgrade' listener", async (t) => {
    const app = await startApp({ upgrade: true })
    t.after(() => app.child.kill('SIGKILL'))
    const probe = new RawConnection(app.port)
    probe.send(
      'GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
    )
    await within('the probe connection to close', probe.closed)
    const [answer] = parseResponses(probe.data)
    assert.equal(answer?.status, 200)
    assert.deepEqual(JSON.parse(answer?.body ?? ''), { status: 'ready' })
    const other = new RawConnection(app.port)
    other.send(
      'GET /socket HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n',
    )
    await other.waitFor('101 Switching Protocols')
    // The app logs before it answers, but its stdout pipe can reach this process after the
    // socket's 101 does. Its output is in order: a /readyz line would be before this one.
    await app.waitFor('upgrade /socket', "the app's 'upgrade' listener to log /socket")
    assert.doesNotMatch(app.stdout(), /upgrade \/readyz/)
  })

  test('absolute-form targets (as proxies send them) are probes too', async (t) => {
    const app = await startApp()
    t.after(() => app.child.kill('SIGKILL'))
    for (const target of ['http://localhost/readyz', 'HTTP://pod:8080/livez?verbose=1']) {
      const connection = new RawConnection(app.port)
      connection.send(`GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`)
      await within(`the answer to ${target}`, connection.closed)
      const [answer] = parseResponses(connection.data)
      assert.equal(answer?.status, 200, target)
      assert.equal(answer?.headers['content-type'], 'application/json', target)
    }
    assert.doesNotMatch(app.stdout(), /request http/i)
  })

  test('requests that reach the socket buffers while the event loop is blocked at the end of the lame duck are served', async (t) => {
    const app = await startApp({ options: { drainDelay: 150 } })
    t.after(() => app.child.kill('SIGKILL'))
    const idle = [0, 1, 2].map(() => new RawConnection(app.port))
    for (const [i, connection] of idle.entries()) connection.request(`/?warm=${i}`)
    await Promise.all(idle.map((c, i) => c.waitFor(`GET / 0`, `warm-up ${i}`)))
    app.signal('SIGTERM')
    await app.state('draining')
    const blocker = new RawConnection(app.port)
    blocker.request('/block?ms=400')
    await app.waitFor('blocking')
    // The drain timer expires during the block. Everything below waits in kernel buffers
    // (accept queue, socket buffers) until the loop runs again.
    for (const [i, connection] of idle.entries()) connection.request(`/?late=${i}`)
    const fresh = [0, 1, 2].map((i) => {
      const connection = new RawConnection(app.port)
      connection.request(`/?fresh=${i}`)
      return connection
    })
    for (const [i, connection] of [...idle, ...fresh].entries()) {
      await within(`connection ${i} to be answered and closed`, connection.closed)
      const responses = parseResponses(connection.data)
      const last = responses.at(-1)
      assert.equal(last?.status, 200, `connection ${i}: ${JSON.stringify(connection.data)}`)
      assert.equal(last?.headers.connection, 'close')
    }
    assert.deepEqual(await app.exit(), { code: 0, signal: null })
    assert.equal(ran(app, '/?late=').length, 3)
    assert.equal(ran(app, '/?fresh=').length, 3)
  })

  test('connections opened before lameduck() was called are drained and counted like the others', async (t) => {
    const app = await startApp({ late: true, options: { drainDelay: 100 } })
    t.after(() => app.child.kill('SIGKILL'))
    const idle = new RawConnection(app.port)
    idle.request('/?early=idle')
    await idle.waitFor('GET / 0')
    const busy = new RawConnection(app.port)
    busy.request('/?delay=400&early=busy')
    await app.waitFor('request /?delay=400&early=busy')
    const attach = new RawConnection(app.port)
    attach.send('GET /attach HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
    await app.state('ready')
    await within('the /attach connection to close', attach.closed)
    app.signal('SIGTERM')
    // Idle at the close: kept open until node's keep-alive timeout (5 s after its answer).
    await within('the idle early connection to close', idle.closed, 10_000)
    await within('the busy early connection to close', busy.closed)
    const [answer] = parseResponses(busy.data)
    assert.equal(answer?.body, 'GET / 400')
    assert.equal(answer?.headers.connection, 'close')
    assert.deepEqual(await app.exit(), { code: 0, signal: null })
    const counts = stopped(app)?.connections as { closed: number; forced: number }
    assert.equal(counts.forced, 0)
    assert.ok(counts.closed >= 2, `closed ${counts.closed}`)
  })

  test('shutdownTimeout at its documented maximum does not wrap the force-exit timer', async (t) => {
    const app = await startApp({ options: { shutdownTimeout: 2_147_483_647 } })
    t.after(() => app.child.kill('SIGKILL'))
    const slow = new RawConnection(app.port)
    slow.request('/?delay=200')
    await app.waitFor('request /?delay=200')
    app.signal('SIGTERM')
    await within('the slow request to finish', slow.closed)
    assert.equal(parseResponses(slow.data)[0]?.body, 'GET / 200')
    assert.deepEqual(await app.exit(), { code: 0, signal: null })
    assert.doesNotMatch(app.stderr(), /TimeoutOverflowWarning/)
  })

  test('the app closing the server itself during the lame duck is logged and recorded', async (t) => {
    const app = await startApp({ options: { drainDelay: 100 }, appCloses: true })
    t.after(() => app.child.kill('SIGKILL'))
    app.signal('SIGTERM')
    assert.deepEqual(await app.exit(), { code: 0, signal: null })
    const warning = app.logs().find((line) => line.event === 'listener-closed-early')
    assert.ok(warning, app.stderr())
    assert.match(String(warning.msg ?? warning.message ?? JSON.stringify(warning)), /closed/)
    assert.equal(stopped(app)?.listenerClosedByApp, true)
  })
})

describe('hook results tell the truth', () => {
  test('a hook that blocks the event loop past its timeout is a timeout', async (t) => {
    const app = await startApp({
      hooks: [{ name: 'sync', does: 'block', ms: 150, timeout: 50 }],
    })
    t.after(() => app.child.kill('SIGKILL'))
    app.signal('SIGTERM')
    assert.equal((await app.exit()).code, 1)
    assert.deepEqual(stopped(app)?.hooks, [{ name: 'sync', phase: 'shutdown', status: 'timeout' }])
  })

  test('a hook that completes after a second signal, within the forced budget, is ok', async (t) => {
    const app = await startApp({
      hooks: [{ name: 'slow', does: 'slow', ms: 300, timeout: 5_000 }],
    })
    t.after(() => app.child.kill('SIGKILL'))
    app.signal('SIGTERM')
    await app.waitFor('hook slow')
    app.signal('SIGTERM')
    assert.equal((await app.exit()).code, 1, 'a forced shutdown exits 1')
    assert.match(app.stdout(), /hook slow done/)
    assert.deepEqual(stopped(app)?.hooks, [{ name: 'slow', phase: 'shutdown', status: 'ok' }])
  })

  test('hooks not started when the forced budget runs out are skipped', async (t) => {
    const app = await startApp({
      // Run last-registered first: 'hangs' runs, 'later' waits behind it.
      hooks: [
        { name: 'later', does: 'ok' },
        { name: 'hangs', does: 'hang', timeout: 60_000 },
      ],
    })
    t.after(() => app.child.kill('SIGKILL'))
    app.signal('SIGTERM')
    await app.waitFor('hook hangs')
    app.signal('SIGTERM')
    assert.equal((await app.exit()).code, 1)
    assert.doesNotMatch(app.stdout(), /hook later/)
    assert.deepEqual(stopped(app)?.hooks, [
      { name: 'hangs', phase: 'shutdown', status: 'timeout' },
      { name: 'later', phase: 'shutdown', status: 'skipped' },
    ])
  })
})

describe('shutdown while listen() is pending', () => {
  test('a server whose listen() was still resolving its host never starts listening afterwards', async (t) => {
    // Hold net's host lookup until the shutdown is over, as a slow DNS server would.
    const lookup = dns.lookup
    let release: () => void = () => {}
    const held = new Promise<void>((resolve) => {
      release = resolve
    })
    dns.lookup = ((...args: Parameters<typeof dns.lookup>) => {
      held.then(() => Reflect.apply(lookup, dns, args))
    }) as typeof dns.lookup
    t.after(() => {
      dns.lookup = lookup
    })
    const server = http.createServer((_req, res) => res.end('app'))
    const ld = lameduck(server, { signals: [], exit: false, logger: false, drainDelay: 0 })
    const states: string[] = []
    ld.on('state', (state) => states.push(state))
    server.listen(0, 'localhost')
    const closed = nextEvent(server, 'close', 'the late listener to close')
    const outcome = await within('the shutdown outcome', ld.shutdown('test'))
    assert.equal(outcome.drained, false)
    assert.equal(outcome.exitCode, 0)
    assert.equal(ld.state, 'stopped')
    release()
    await closed
    assert.equal(server.listening, false)
    assert.ok(!states.includes('ready'), `states: ${states.join(', ')}`)
  })
})
