// WebSockets drained end to end: a real process, real signals, clients from the `ws` package.
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { describe, test } from 'node:test'
import { lameduck, webSockets } from 'lameduck'
import { WebSocket, WebSocketServer } from 'ws'
import { type AppProcess, startApp } from './app-process.js'
import { within } from './helpers.js'

interface Closed {
  code: number
  reason: string
  messages: string[]
}

/** A `ws` client; `closed` resolves with the close code the server sent (1006 when the
 * connection was cut without a close frame). */
function connect(port: number) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`)
  const messages: string[] = []
  ws.on('message', (data) => messages.push(String(data)))
  ws.on('error', () => {})
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve())
    ws.once('error', reject)
  })
  const welcomed = new Promise<void>((resolve) => ws.once('message', () => resolve()))
  const closed = new Promise<Closed>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: String(reason), messages })),
  )
  return { ws, opened, welcomed, closed, messages }
}

function stopped(app: AppProcess) {
  const line = app.logs().find((l) => l.event === 'state' && l.state === 'stopped')
  return line as { exitCode: number; connections: { closed: number; forced: number } } | undefined
}

describe('WebSockets (the ws package)', () => {
  test('at the lame duck every client gets 1001; a client connecting during it is accepted and closed the same way; exit 0', async (t) => {
    const app = await startApp({ fixture: 'realtime-app', options: { drainDelay: 300 } })
    t.after(() => app.child.kill('SIGKILL'))
    const first = connect(app.port)
    const second = connect(app.port)
    await within('the first client to be welcomed', first.welcomed)
    await within('the second client to be welcomed', second.welcomed)
    first.ws.send('echo me')

    app.signal('SIGTERM')
    await app.state('draining')
    for (const client of [first, second]) {
      const closed = await within('a client to get its close frame', client.closed)
      assert.equal(closed.code, 1001)
      assert.equal(closed.reason, 'server going away')
    }
    assert.deepEqual(first.messages, ['welcome', 'echo me'])

    const during = connect(app.port)
    await within('the client connecting during the lame duck to open', during.opened)
    const closed = await within('the late client to get its close frame', during.closed)
    assert.equal(closed.code, 1001)
    assert.deepEqual(closed.messages, ['welcome'], 'the application saw the connection first')

    assert.deepEqual(await app.exit(), { code: 0, signal: null })
    assert.deepEqual(stopped(app)?.connections, { closed: 3, forced: 0 })
  })

  test('a client that never answers the close frame is destroyed at the deadline: exit 1, counted as forced', async (t) => {
    const app = await startApp({ fixture: 'realtime-app', options: { shutdownTimeout: 200 } })
    t.after(() => app.child.kill('SIGKILL'))
    // A raw upgrade that reads nothing after the handshake, so it never sends a close frame.
    const socket = net.connect(app.port, '127.0.0.1')
    socket.on('error', () => {})
    let received = ''
    socket.setEncoding('latin1').on('data', (chunk: string) => {
      received += chunk
    })
    socket.write(
      'GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    )
    await app.waitFor('ws open 1')
    const cut = new Promise<void>((resolve) => socket.once('close', () => resolve()))
    app.signal('SIGTERM')
    assert.equal((await app.exit()).code, 1)
    await within('the silent client to be cut', cut)
    assert.match(received, /^HTTP\/1\.1 101/)
    // A close frame: FIN + opcode 8, length, then the code 1001 (0x03e9) and the reason.
    const closeFrame = `\x88${String.fromCharCode(19)}\x03\xe9server going away`
    assert.ok(received.includes(closeFrame), 'it was sent a close frame 1001 first')
    assert.deepEqual(stopped(app)?.connections, { closed: 0, forced: 1 })
  })
})

describe('webSockets() input', () => {
  test('rejects what is not a WebSocketServer, one on its own port or on an unmanaged server, and bad codes', async (t) => {
    const server = http.createServer()
    const ld = lameduck(server, { signals: [], exit: false, logger: false })
    t.after(() => ld.shutdown())
    const invalid = (fn: () => unknown, pattern: RegExp) =>
      assert.throws(fn, (error: Error & { code?: string }) => {
        assert.equal(error.code, 'LAMEDUCK_ERR_INVALID_OPTION')
        assert.match(error.message, pattern)
        return true
      })
    invalid(() => webSockets(ld, {} as never), /Expected a WebSocketServer from the ws package/)
    const own = new WebSocketServer({ port: 0, host: '127.0.0.1' })
    t.after(() => own.close())
    invalid(() => webSockets(ld, own), /on its own port \d+/)
    const unmanaged = new WebSocketServer({ server: http.createServer() })
    invalid(() => webSockets(ld, unmanaged), /passed to lameduck\(\) first/)
    const wss = new WebSocketServer({ server })
    invalid(() => webSockets(ld, wss, { code: 1006 }), /`code` option .* got `1006`/)
    invalid(() => webSockets(ld, wss, { reason: 'x'.repeat(124) }), /`reason` option/)
    webSockets(ld, wss, { code: 4001, reason: 'moving' })
  })
})
