// How HTTP/1.1 connections end during the shutdown, in the shapes production traffic has:
// an upload answered before its body is read, an app that closes its own listener, a
// client that trickles its headers, keep-alive responses that end apart in the close phase.
// A real process, real signals, real sockets.
import assert from 'node:assert/strict'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import { describe, test } from 'node:test'
import { type AppProcess, startApp } from './app-process.js'
import { within } from './helpers.js'
import { parseResponses, RawConnection, trickleHeaders } from './http-client.js'

/** Larger than what the kernel's socket buffers and node's parser take in without the
 * application reading it. */
const UPLOAD_BYTES = 4 * 1024 * 1024
const TRIES = 20

function stopped(app: AppProcess): Record<string, unknown> | undefined {
  return app.logs().find((line) => line.event === 'state' && line.state === 'stopped')
}

/** POSTs `UPLOAD_BYTES` through `agent`; resolves with the status and body, rejects with the
 * client's error (a reset before the answer was read). */
function upload(
  port: number,
  path: string,
  agent: http.Agent,
  tls = false,
): Promise<{ status: number; body: string; connection: string | undefined }> {
  const client = tls ? https : http
  return new Promise((resolve, reject) => {
    const req = client.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent,
        rejectUnauthorized: false,
        headers: { 'content-type': 'application/octet-stream', 'content-length': UPLOAD_BYTES },
      },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          body += chunk
        })
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }),
        )
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(Buffer.alloc(UPLOAD_BYTES, 'u'))
  })
}

describe('HTTP/1.1 connections at the close', () => {
  for (const tls of [false, true]) {
    test(`an upload answered 401 before its body is read, during the lame duck: node's keep-alive Agent reads every answer (${TRIES} tries, ${tls ? 'https' : 'http'})`, async (t) => {
      const app = await startApp({ options: { drainDelay: 60_000 }, https: tls })
      t.after(() => app.child.kill('SIGKILL'))
      const port = tls ? (app.httpsPort as number) : app.port
      const agent = new (tls ? https : http).Agent({ keepAlive: true })
      t.after(() => agent.destroy())
      app.signal('SIGTERM')
      await app.state('draining')
      const failures: string[] = []
      for (let i = 0; i < TRIES; i++) {
        try {
          const answer = await within(`upload ${i}`, upload(port, `/reject?try=${i}`, agent, tls))
          assert.equal(answer.status, 401)
          assert.equal(answer.body, 'unauthorized')
          assert.equal(answer.connection, 'close')
        } catch (error) {
          failures.push(`${i}: ${(error as Error).message}`)
        }
      }
      assert.deepEqual(failures, [])
    })
  }

  test(`an upload answered 401 before its body is read, during the lame duck: fetch reads every answer (${TRIES} tries)`, async (t) => {
    const app = await startApp({ options: { drainDelay: 60_000 } })
    t.after(() => app.child.kill('SIGKILL'))
    app.signal('SIGTERM')
    await app.state('draining')
    const failures: string[] = []
    for (let i = 0; i < TRIES; i++) {
      try {
        const response = await within(
          `fetch upload ${i}`,
          fetch(`http://127.0.0.1:${app.port}/reject?try=${i}`, {
            method: 'POST',
            body: Buffer.alloc(UPLOAD_BYTES, 'u'),
          }),
        )
        assert.equal(response.status, 401)
        assert.equal(await response.text(), 'unauthorized')
      } catch (error) {
        const cause = (error as { cause?: Error }).cause
        failures.push(`${i}: ${(error as Error).message} ${cause?.message ?? ''}`)
      }
    }
    assert.deepEqual(failures, [])
  })

  test('the lingering close is bounded: a client that keeps its side open after the answer is closed after LINGER_MS, not forced at the deadline: exit 0', async (t) => {
    const app = await startApp({ options: { drainDelay: 500, shutdownTimeout: 30_000 } })
    t.after(() => app.child.kill('SIGKILL'))
    app.signal('SIGTERM')
    await app.state('draining')
    // allowHalfOpen: the client's side stays open after the server's FIN, as a client that
    // is still sending would keep it.
    const socket = net.connect({ port: app.port, host: '127.0.0.1', allowHalfOpen: true })
    socket.on('error', () => {})
    let data = ''
    let ended = false
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      data += chunk
    })
    socket.once('end', () => {
      ended = true
    })
    await within('connect', new Promise((resolve) => socket.once('connect', resolve)))
    socket.write(
      `POST /reject HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${UPLOAD_BYTES}\r\n\r\n`,
    )
    socket.write('u'.repeat(64 * 1024))
    await within('the FIN after the answer', new Promise((resolve) => socket.once('end', resolve)))
    const [answer] = parseResponses(data)
    assert.equal(answer?.status, 401)
    assert.equal(answer?.body, 'unauthorized')
    assert.equal(answer?.headers.connection, 'close')
    // More of the body after the answer: read and discarded. The client then sends nothing
    // and never closes its side: the server closes the connection after LINGER_MS, and the
    // close phase ends without being forced.
    socket.write('u'.repeat(64 * 1024))
    assert.ok(ended)
    const exit = await app.exit(10_000)
    socket.destroy()
    assert.equal(exit.code, 0)
    assert.equal(stopped(app)?.forced, undefined)
  })

  test('an app whose own SIGTERM handler calls server.close(): a keep-alive connection that goes idle in the lame duck is closed in the close phase, exit 0', async (t) => {
    // keepAliveTimeout 60 s (as behind a cloud load balancer): node's own keep-alive timeout
    // does not close the connection before the deadline; lameduck closes it after
    // NEW_CONNECTION_GRACE_MS (1 s).
    const app = await startApp({
      appCloses: true,
      serverOptions: { keepAliveTimeout: 60_000 },
      options: { drainDelay: 500, shutdownTimeout: 8_000 },
    })
    t.after(() => app.child.kill('SIGKILL'))
    const connection = new RawConnection(app.port)
    connection.request('/stream?chunks=3&interval=100')
    await connection.waitFor('chunk 0')
    app.signal('SIGTERM')
    await app.waitFor('app closes its server')
    await connection.waitFor('done\n')
    await within('the close phase to close the idle connection', connection.closed, 10_000)
    const [streamed] = parseResponses(connection.data)
    assert.equal(streamed?.headers.connection, 'keep-alive', 'its headers went out before')
    const exit = await app.exit(10_000)
    assert.equal(exit.code, 0)
    assert.equal(stopped(app)?.forced, undefined)
    assert.equal(stopped(app)?.listenerClosedByApp, true)
  })

  for (const order of ['after', 'first'] as const) {
    test(`an app whose own SIGTERM handler (registered ${order === 'first' ? 'before' : 'after'} lameduck()) calls server.close(): a keep-alive connection idle at the signal is not closed at once, and a request sent on it in the lame duck is answered with Connection: close, exit 0`, async (t) => {
      const app = await startApp({
        appCloses: order === 'first' ? 'first' : true,
        options: { drainDelay: 1_000, shutdownTimeout: 8_000 },
      })
      t.after(() => app.child.kill('SIGKILL'))
      const connection = new RawConnection(app.port)
      connection.request('/?before=signal')
      await connection.waitFor('GET / 0')
      connection.data = ''
      app.signal('SIGTERM')
      await app.waitFor('app closes its server')
      await app.state('draining')
      assert.equal(connection.socket.destroyed, false)
      connection.request('/?in=lame-duck')
      await within('the connection to close after its answer', connection.closed, 10_000)
      const [answer] = parseResponses(connection.data)
      assert.equal(answer?.status, 200, `answered: ${JSON.stringify(connection.data)}`)
      assert.equal(answer?.headers.connection, 'close')
      const exit = await app.exit(10_000)
      assert.equal(exit.code, 0)
      assert.equal(stopped(app)?.listenerClosedByApp, true)
    })
  }

  for (const appCloses of [false, true]) {
    test(`headersTimeout keeps applying in the close phase: a client trickling its headers gets the app's 408, exit 0${appCloses ? ' (the app closed the listener itself)' : ''}`, async (t) => {
      const app = await startApp({
        appCloses,
        serverOptions: {
          headersTimeout: 1_000,
          requestTimeout: 5_000,
          connectionsCheckingInterval: 100,
        },
        options: { drainDelay: 300, shutdownTimeout: 20_000 },
      })
      t.after(() => app.child.kill('SIGKILL'))
      // Its headers start just before the signal (an app that closes its listener refuses
      // connections from then on) and would last past headersTimeout into the close phase.
      const connection = new RawConnection(app.port)
      // A first request answered first: from Node 26 on, node's own close() (the app's)
      // counts a connection whose first request is still incomplete as idle and closes it.
      connection.request('/?first=1')
      await connection.waitFor('GET / 0')
      connection.data = ''
      const stopTrickle = trickleHeaders(connection, t)
      app.signal('SIGTERM')
      await app.state('stopping')
      await within('the 408 and the close', connection.closed, 10_000)
      stopTrickle()
      assert.match(connection.data, /^HTTP\/1\.1 408 /)
      const exit = await app.exit(10_000)
      assert.equal(exit.code, 0)
      assert.equal(stopped(app)?.forced, undefined)
    })
  }

  test('the close-phase grace is per connection: two keep-alive streams that end 900 ms apart each get it, and a next request on the second is answered with Connection: close', async (t) => {
    const app = await startApp({ options: { drainDelay: 200, shutdownTimeout: 20_000 } })
    t.after(() => app.child.kill('SIGKILL'))
    const early = new RawConnection(app.port)
    const late = new RawConnection(app.port)
    early.request('/stream?chunks=5&interval=100')
    late.request('/stream?chunks=14&interval=100')
    await early.waitFor('chunk 0')
    await late.waitFor('chunk 0')
    app.signal('SIGTERM')
    await app.state('stopping')
    await late.waitFor('done\n', 'the second stream to end')
    // Half the grace after its response: the client reuses its connection.
    await new Promise((resolve) => setTimeout(resolve, 500))
    assert.equal(late.socket.destroyed, false)
    late.request('/?after=late')
    await within('the connection to close after its answer', late.closed, 10_000)
    const responses = parseResponses(late.data)
    assert.equal(responses.length, 2, `both answered: ${JSON.stringify(late.data.slice(-200))}`)
    assert.equal(responses[0]?.headers.connection, 'keep-alive')
    assert.equal(responses[1]?.status, 200)
    assert.equal(responses[1]?.headers.connection, 'close')
    const exit = await app.exit(10_000)
    assert.equal(exit.code, 0)
  })

  test('a keep-alive connection idle when the close phase starts is not closed at that instant: a request its client sends on it then is answered with Connection: close', async (t) => {
    const app = await startApp({ options: { drainDelay: 200 } })
    t.after(() => app.child.kill('SIGKILL'))
    const connection = new RawConnection(app.port)
    connection.request('/?before=signal')
    await connection.waitFor('GET / 0')
    app.signal('SIGTERM')
    await app.state('stopping')
    assert.equal(connection.socket.destroyed, false)
    connection.data = ''
    connection.request('/?in=close-phase')
    await within('the connection to close after its answer', connection.closed)
    const [answer] = parseResponses(connection.data)
    assert.equal(answer?.status, 200)
    assert.equal(answer?.headers.connection, 'close')
    assert.equal((await app.exit()).code, 0)
  })
})
