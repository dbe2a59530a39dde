// An HTTP/2 server with allowHTTP1 serves HTTP/1.1 clients by the same rules as a node:https
// server: a real process, real signals, TLS sockets that negotiate HTTP/1.1.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import tls from 'node:tls'
import { type AppProcess, startApp } from './app-process.js'
import { within } from './helpers.js'
import { parseResponses, trickleHeaders } from './http-client.js'

function startH1OverH2(
  options: Record<string, unknown>,
  serverOptions: Record<string, unknown> = {},
): Promise<AppProcess> {
  return startApp({
    fixture: 'h2-app',
    options,
    env: { FIXTURE_H2: 'tls-h1', FIXTURE_SERVER_OPTIONS: JSON.stringify(serverOptions) },
  })
}

/** node enforces headersTimeout and requestTimeout on an allowHTTP1 server's HTTP/1.1
 * connections only from Node 24 on (on 20 and 22 a client trickling its headers is never
 * answered 408, shutdown or not). */
const h1TimeoutsEnforced = Number(process.versions.node.split('.')[0]) >= 24

function stopped(app: AppProcess): Record<string, unknown> | undefined {
  return app.logs().find((line) => line.event === 'state' && line.state === 'stopped')
}

/** A TLS connection that negotiates HTTP/1.1 and records every byte. */
class RawTls {
  readonly socket: tls.TLSSocket
  data = ''
  readonly closed: Promise<void>
  readonly #waiters = new Set<() => void>()

  constructor(port: number) {
    this.socket = tls.connect({
      port,
      host: '127.0.0.1',
      rejectUnauthorized: false,
      ALPNProtocols: ['http/1.1'],
    })
    this.socket.on('error', () => {})
    this.socket.setEncoding('utf8').on('data', (chunk: string) => {
      this.data += chunk
      for (const waiter of this.#waiters) waiter()
    })
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()))
  }

  get(path: string): string {
    return `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n`
  }

  send(text: string): void {
    this.socket.write(text)
  }

  waitFor(text: string): Promise<void> {
    return within(
      `a response containing ${JSON.stringify(text)}`,
      new Promise<void>((resolve) => {
        const check = () => {
          if (!this.data.includes(text)) return
          this.#waiters.delete(check)
          resolve()
        }
        this.#waiters.add(check)
        check()
      }),
    )
  }
}

describe('HTTP/1.1 on an allowHTTP1 HTTP/2 server follows the HTTP/1.1 rule set', () => {
  test('an app-set Connection: keep-alive is overridden during the lame duck, and the connection closes after the response', async (t) => {
    const app = await startH1OverH2({ drainDelay: 60_000 })
    t.after(() => app.child.kill('SIGKILL'))
    app.signal('SIGTERM')
    await app.state('draining')
    const connection = new RawTls(app.port)
    connection.send(connection.get('/keepalive'))
    await within('the connection to close', connection.closed)
    const [response] = parseResponses(connection.data)
    assert.equal(response?.body, 'kept')
    assert.equal(response?.headers.connection, 'close')
  })

  test('a keep-alive connection that goes idle in the close phase is closed after its grace: exit 0, nothing forced', async (t) => {
    const app = await startH1OverH2({ drainDelay: 200, shutdownTimeout: 3_000 })
    t.after(() => app.child.kill('SIGKILL'))
    const connection = new RawTls(app.port)
    connection.send(connection.get('/stream?chunks=8&interval=100'))
    await connection.waitFor('chunk 0')
    app.signal('SIGTERM')
    await app.state('stopping')
    await connection.waitFor('done\n')
    await within('the close phase to close the idle connection', connection.closed, 10_000)
    assert.equal(parseResponses(connection.data)[0]?.headers.connection, 'keep-alive')
    const exit = await app.exit(10_000)
    assert.equal(exit.code, 0)
    assert.equal(stopped(app)?.forced, undefined)
  })

  test(
    h1TimeoutsEnforced
      ? "headersTimeout keeps applying in the close phase: a client trickling its headers gets node's 408, exit 0"
      : 'node does not enforce headersTimeout on an allowHTTP1 server before Node 24: a client trickling its headers holds the close phase until shutdownTimeout, forced, exit 1',
    async (t) => {
      const app = await startH1OverH2(
        { drainDelay: 300, shutdownTimeout: h1TimeoutsEnforced ? 20_000 : 1_500 },
        { headersTimeout: 1_000, requestTimeout: 5_000, connectionsCheckingInterval: 100 },
      )
      t.after(() => app.child.kill('SIGKILL'))
      const connection = new RawTls(app.port)
      connection.send(connection.get('/?first=1'))
      await connection.waitFor('GET / 0')
      connection.data = ''
      const stopTrickle = trickleHeaders(connection, t)
      app.signal('SIGTERM')
      await app.state('stopping')
      await within('the close', connection.closed, 10_000)
      stopTrickle()
      const exit = await app.exit(10_000)
      if (h1TimeoutsEnforced) {
        assert.match(connection.data, /^HTTP\/1\.1 408 /)
        assert.equal(exit.code, 0)
        assert.equal(stopped(app)?.forced, undefined)
      } else {
        assert.equal(connection.data, '')
        assert.equal(exit.code, 1)
        assert.equal(stopped(app)?.forced, 'timeout')
      }
    },
  )

  test('pipelined requests during the lame duck are all answered, in order, the last with Connection: close', async (t) => {
    const app = await startH1OverH2({ drainDelay: 60_000 })
    t.after(() => app.child.kill('SIGKILL'))
    app.signal('SIGTERM')
    await app.state('draining')
    const connection = new RawTls(app.port)
    connection.send(
      connection.get('/?delay=20&pipe=1') +
        connection.get('/?delay=20&pipe=2') +
        connection.get('/?delay=20&pipe=3'),
    )
    await within('the connection to close', connection.closed)
    const responses = parseResponses(connection.data)
    assert.deepEqual(
      responses.map((r) => r.body),
      ['GET / 20', 'GET / 20', 'GET / 20'],
    )
    assert.deepEqual(
      responses.map((r) => r.headers.connection),
      ['keep-alive', 'keep-alive', 'close'],
    )
  })
})
