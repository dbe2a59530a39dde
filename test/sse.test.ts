// Server-sent events ended at the lame duck with a `retry:` hint: a real process, real
// signals, and a reader that follows the EventSource processing model.
import assert from 'node:assert/strict'
import http from 'node:http'
import { describe, test } from 'node:test'
import { eventStreams, lameduck } from 'lameduck'
import { type AppProcess, startApp } from './app-process.js'
import { within } from './helpers.js'
import { parseResponses, RawConnection } from './http-client.js'

interface StreamRead {
  status: number
  data: string[]
  retry: number | undefined
  /** The response ended with its full body (not cut). */
  ended: boolean
}

/** Reads one event stream the way EventSource parses it (data and retry fields; events end
 * at a blank line); resolves when the server ends it, rejects if it is cut. */
function readStream(port: number, onData?: (data: string) => void): Promise<StreamRead> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      {
        host: '127.0.0.1',
        port,
        path: '/events',
        agent: false,
        headers: { accept: 'text/event-stream' },
      },
      (res) => {
        const read: StreamRead = {
          status: res.statusCode ?? 0,
          data: [],
          retry: undefined,
          ended: false,
        }
        let buffer = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          buffer += chunk
          let end = buffer.indexOf('\n\n')
          while (end !== -1) {
            for (const line of buffer.slice(0, end).split('\n')) {
              const colon = line.indexOf(':')
              const field = colon === -1 ? line : line.slice(0, colon)
              const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '')
              if (field === 'data') {
                read.data.push(value)
                onData?.(value)
              } else if (field === 'retry' && /^\d+$/.test(value)) read.retry = Number(value)
            }
            buffer = buffer.slice(end + 2)
            end = buffer.indexOf('\n\n')
          }
        })
        res.on('end', () => {
          read.ended = true
          resolve(read)
        })
        res.on('error', reject)
      },
    )
    req.on('error', reject)
  })
}

function stopped(app: AppProcess) {
  const line = app.logs().find((l) => l.event === 'state' && l.state === 'stopped')
  return line as { exitCode: number; connections: { closed: number; forced: number } } | undefined
}

describe('server-sent events', () => {
  test('at the lame duck a stream gets retry: and ends; a stream opened during the lame duck gets the same at once; exit 0', async (t) => {
    const app = await startApp({ fixture: 'realtime-app', options: { drainDelay: 300 } })
    t.after(() => app.child.kill('SIGKILL'))
    let ticked: () => void = () => {}
    const ticking = new Promise<void>((resolve) => {
      ticked = resolve
    })
    const open = readStream(app.port, (data) => {
      if (data === 'tick 2') ticked()
    })
    await within('the stream to carry events', ticking)

    app.signal('SIGTERM')
    await app.state('draining')
    const ended = await within('the stream to end at the lame duck', open)
    assert.equal(ended.status, 200)
    assert.equal(ended.retry, 1000)
    assert.equal(ended.ended, true)
    assert.deepEqual(ended.data.slice(0, 3), ['hello', 'tick 1', 'tick 2'])

    // The EventSource reconnects after `retry` ms; during the lame duck it is served and ended.
    const again = await within('the stream opened during the lame duck', readStream(app.port))
    assert.deepEqual(again.data, ['hello'])
    assert.equal(again.retry, 1000)
    assert.equal(again.ended, true)

    assert.deepEqual(await app.exit(), { code: 0, signal: null })
    assert.deepEqual(stopped(app)?.connections, { closed: 2, forced: 0 })
  })

  test('eventStreams() rejects a bad retry and what is not a response', async (t) => {
    const ld = lameduck(http.createServer(), { signals: [], exit: false, logger: false })
    t.after(() => ld.shutdown())
    assert.throws(() => eventStreams(ld, { retry: -1 }), /`retry` option .* got `-1`/)
    assert.throws(() => eventStreams(ld).add({} as never), /Expected a streamed response/)
  })

  test('on HTTP/1.1 a stream ended at the lame duck keeps its keep-alive connection: the reconnection sent on it gets retry: at once, with Connection: close', async (t) => {
    const app = await startApp({ fixture: 'realtime-app', options: { drainDelay: 60_000 } })
    t.after(() => app.child.kill('SIGKILL'))
    const connection = new RawConnection(app.port)
    const events = 'GET /events HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n'
    connection.send(events)
    await connection.waitFor('data: tick 1')
    app.signal('SIGTERM')
    await connection.waitFor('retry: 1000')
    await connection.waitFor('\r\n0\r\n\r\n', 'the stream to end (its last chunk)')
    const [ended] = parseResponses(connection.data)
    assert.equal(ended?.headers.connection, 'keep-alive', 'its headers went out before')
    assert.equal(connection.socket.destroyed, false)
    connection.data = ''
    connection.send(events)
    await within('the connection to close after the second answer', connection.closed)
    const [again] = parseResponses(connection.data)
    assert.equal(again?.status, 200)
    assert.equal(again?.headers.connection, 'close')
    assert.match(again?.body ?? '', /retry: 1000/)
  })
})
