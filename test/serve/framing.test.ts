// What the proxy of `lameduck serve` forwards must mean what the client sent, and every
// request gets an answer: header-field limits, Host on the HTTP/1.1 hop, upstreams that
// answer nothing usable. A real `lameduck serve`, its real upstream, raw sockets.
import assert from 'node:assert/strict'
import net from 'node:net'
import { after, before, test } from 'node:test'
import { exited, within } from '../helpers.js'
import { parseResponses, RawConnection } from '../http-client.js'
import { names, ready, request, type Serve, seen, startServe } from './serve-helpers.js'

let serve: Serve

before(async () => {
  serve = await startServe(['--max-header-size', '65536'])
  await ready(serve)
})

after(async () => {
  serve.child.kill('SIGTERM')
  await exited(serve.child, 'lameduck serve to exit')
})

/** Sends raw bytes on a new connection; resolves with what came back before the close. */
function rawExchange(bytes: string): Promise<string> {
  const connection = new RawConnection(serve.port)
  connection.send(bytes)
  return within(
    `the proxy to answer and close: ${JSON.stringify(bytes.slice(0, 60))}`,
    connection.closed.then(() => connection.data),
  )
}

function fields(count: number, name = 'X-Filler'): string {
  let text = ''
  for (let i = 0; i < count; i++) text += `${name}-${i}: ${i}\r\n`
  return text
}

async function upstreamRequests(marker: string): Promise<number> {
  const { requests } = await seen(serve.port)
  return requests.filter((r) => r.url.includes(marker)).length
}

test('past 1,000 header fields the request gets 431 and nothing reaches the upstream, a Content-Length or a second Host after them included', async () => {
  const withLength = await rawExchange(
    `POST /echo?m=cl HTTP/1.1\r\nHost: localhost\r\n${fields(1_000)}Content-Length: 5\r\n\r\nhello`,
  )
  // The proxy's own 431, or (Node 26, whose parser refuses past its limit instead
  // of dropping the rest) node's.
  assert.match(withLength, /^HTTP\/1\.1 431 /)
  const secondHost = await rawExchange(
    `GET /echo?m=host HTTP/1.1\r\nHost: localhost\r\n${fields(1_000)}Host: evil.test\r\n\r\n`,
  )
  assert.match(secondHost, /^HTTP\/1\.1 431 /)
  assert.equal(await upstreamRequests('m=cl'), 0)
  assert.equal(await upstreamRequests('m=host'), 0)
})

test('a request with 1,000 header fields is forwarded with every field and its body', async () => {
  // Host + 998 fillers + Content-Length = 1,000 fields.
  const answer = await rawExchange(
    `POST /echo?m=full HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${fields(997)}Content-Length: 5\r\n\r\nhello`,
  )
  const [reply] = parseResponses(answer)
  assert.equal(reply?.status, 200)
  const echo = JSON.parse(reply?.body ?? '{}')
  assert.equal(echo.body, 'hello')
  const sent = names(echo.rawHeaders)
  assert.equal(sent.filter((name) => name.startsWith('x-filler-')).length, 997)
  assert.ok(sent.includes('content-length'))
})

test('an HTTP/1.0 request without Host reaches the upstream with a Host; Connection: host does not strip it', async () => {
  const answer = await rawExchange('GET /echo?m=http10 HTTP/1.0\r\n\r\n')
  const [reply] = parseResponses(answer)
  assert.equal(reply?.status, 200)
  const echo = JSON.parse(reply?.body ?? '{}')
  const host = echo.rawHeaders[names(echo.rawHeaders).indexOf('host') * 2 + 1]
  assert.match(String(host), /^127\.0\.0\.1:\d+$/)

  const named = await request(serve.port, '/echo?m=connection-host', {
    headers: ['Host', 'app.example', 'Connection', 'host, keep-alive'],
  })
  const raw: string[] = JSON.parse(named.body).rawHeaders
  assert.equal(raw[names(raw).indexOf('host') * 2 + 1], 'app.example')
})

test('an upstream that answers 101 to a plain GET, or closes without an answer, gives the client a 502 at once', async () => {
  const switched = await request(serve.port, '/switch')
  assert.equal(switched.status, 502)
  const silent = await request(serve.port, '/close-silently')
  assert.equal(silent.status, 502)
  // The proxy still serves afterwards.
  assert.equal((await request(serve.port, '/echo')).status, 200)
})

test('a chunked body refused mid-way: the chunks before the error may reach the upstream, on a connection that is then reset and never completes a request', async () => {
  const marker = `partial-${Date.now()}`
  const answer = await rawExchange(
    `POST /echo?m=${marker} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n${marker.length.toString(16)}\r\n${marker}\r\nzz\r\nGET /echo?m=smuggled-${marker} HTTP/1.1\r\nHost: a\r\n\r\n`,
  )
  assert.doesNotMatch(answer, /^HTTP\/1\.1 200/)
  const after = await seen(serve.port)
  assert.equal(after.requests.filter((r) => r.url.includes(marker)).length, 0)
  assert.doesNotMatch(after.raw, new RegExp(`smuggled-${marker}`))
})

test('a client that sends its requests and shuts down its write side still gets every answer, then the close', async () => {
  // Two pipelined requests, the first answered only after an upstream round trip of 100 ms,
  // then a half-close (FIN) before any answer has arrived.
  const connection = new RawConnection(serve.port)
  await connection.connected
  connection.socket.end(
    'GET /slow?ms=100 HTTP/1.1\r\nHost: localhost\r\n\r\nPOST /echo?m=half-close HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello',
  )
  await within('the proxy to answer and close', connection.closed)
  const replies = parseResponses(connection.data)
  assert.deepEqual(
    replies.map((r) => r.status),
    [200, 200],
    JSON.stringify(connection.data),
  )
  assert.equal(JSON.parse(replies[0]?.body ?? '{}').slow, 100)
  assert.equal(JSON.parse(replies[1]?.body ?? '{}').body, 'hello')
})

test('CONNECT gets 501 and its connection closes; nothing reaches the upstream', async () => {
  const answer = await rawExchange(
    'CONNECT connect-target.test:443 HTTP/1.1\r\nHost: connect-target.test:443\r\n\r\n',
  )
  assert.match(answer, /^HTTP\/1\.1 501 /)
  const upstream = await seen(serve.port)
  assert.doesNotMatch(upstream.raw, /connect-target/)
})

test('request targets: absolute form sets Host, OPTIONS * passes; another scheme, user info or * with GET gets 400 and never reaches the upstream', async () => {
  const absolute = parseResponses(
    await rawExchange(
      'GET http://app.example:81/echo?m=absolute HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n',
    ),
  )[0]
  assert.equal(absolute?.status, 200)
  const echo = JSON.parse(absolute?.body ?? '{}')
  assert.equal(echo.url, '/echo?m=absolute')
  assert.equal(echo.rawHeaders[names(echo.rawHeaders).indexOf('host') * 2 + 1], 'app.example:81')
  const star = await rawExchange(
    'OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
  )
  assert.match(star, /^HTTP\/1\.1 200 /)

  const refused = {
    'another scheme': 'GET file:///echo?m=target-file HTTP/1.1\r\nHost: a\r\n\r\n',
    'user info': 'GET http://user:pw@a/echo?m=target-userinfo HTTP/1.1\r\nHost: a\r\n\r\n',
    '* with GET': 'GET * HTTP/1.1\r\nHost: a\r\nX-Marker: target-star\r\n\r\n',
    'an upgrade with another scheme':
      'GET file:///echo?m=target-upgrade HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n',
  }
  for (const [what, bytes] of Object.entries(refused)) {
    assert.match(await rawExchange(bytes), /^HTTP\/1\.1 400 /, what)
  }
  const upstream = await seen(serve.port)
  assert.doesNotMatch(upstream.raw, /target-(file|userinfo|star|upgrade)/)
})

test('an upgrade request with a body gets 400: the body never reaches the upstream, as a request body or as tunnel bytes', async () => {
  const body = 'GET /echo?m=upgrade-body HTTP/1.1\r\nHost: a\r\n\r\n'
  for (const framing of [`Content-Length: ${body.length}`, 'Transfer-Encoding: chunked']) {
    const sent = framing.startsWith('Content')
      ? body
      : `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`
    const answer = await rawExchange(
      `GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: echo\r\n${framing}\r\n\r\n${sent}`,
    )
    assert.match(answer, /^HTTP\/1\.1 400 /, framing)
  }
  const upstream = await seen(serve.port)
  assert.doesNotMatch(upstream.raw, /upgrade-body/)
})

/** Sends a POST head declaring `size` bytes and then the body as fast as the proxy takes
 * it, until the proxy closes; resolves with what came back and whether the proxy ended the
 * connection (its FIN) without the client ending its side. */
function upload(path: string, size: number, sent = size): Promise<{ data: string }> {
  return within(
    `the answer to an upload to ${path}`,
    new Promise((resolve) => {
      const socket = net.connect(serve.port, '127.0.0.1')
      let data = ''
      socket.setEncoding('latin1')
      socket.on('data', (chunk: string) => {
        data += chunk
      })
      socket.on('error', () => {})
      socket.on('close', () => resolve({ data }))
      // The proxy's FIN: it will read (and drop) the rest, but the client is done.
      socket.on('end', () => socket.destroy())
      socket.write(`POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${size}\r\n\r\n`)
      const chunk = Buffer.alloc(64 * 1024, 97)
      let written = 0
      const pump = () => {
        while (written < sent && !socket.destroyed) {
          written += chunk.length
          if (!socket.write(chunk)) {
            socket.once('drain', pump)
            return
          }
        }
      }
      pump()
    }),
    10_000,
  )
}

test('an upstream that answers an upload before reading it and closes: the client gets that answer, not 502', async () => {
  // The upstream's kernel resets the connection under the unread body, so the proxy's next
  // write of the body fails while the answer is still unread in its socket.
  for (let i = 0; i < 5; i++) {
    const { data } = await upload('/early-answer?close', 16 * 1024 * 1024)
    assert.match(data, /^HTTP\/1\.1 401 /, `upload ${i}: ${JSON.stringify(data.slice(0, 80))}`)
    assert.match(data, /\r\n\r\nnope$/)
  }
})

test('an answer that comes before the whole body: the client connection closes after it instead of waiting on the body', async () => {
  // The client sends 256 KiB of the 8 MiB it declared, then waits. The upstream answered
  // 401 without reading: the proxy says Connection: close and ends the connection, so
  // neither side waits for the rest (which it would read and drop, were it sent).
  const { data } = await upload('/early-answer', 8 * 1024 * 1024, 256 * 1024)
  assert.match(data, /^HTTP\/1\.1 401 /)
  assert.match(data, /\r\nConnection: close\r\n/i)
})
