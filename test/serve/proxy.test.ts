// The proxy of `lameduck serve`, driven through a real `lameduck serve` process whose child
// is a real node:http upstream (test/fixtures/serve/upstream.mjs).
import assert from 'node:assert/strict'
import http from 'node:http'
import type net from 'node:net'
import { after, before, test } from 'node:test'
import { exited, fromRoot, nextEvent, within } from '../helpers.js'
import { RawConnection } from '../http-client.js'
import { names, ready, request, type Serve, seen, startServe } from './serve-helpers.js'

let serve: Serve
const staleFixture = fromRoot('test/fixtures/serve/stale-upstream.mjs')

before(async () => {
  serve = await startServe(['--headers-timeout', '300ms', '--max-header-size', '4096'])
  await ready(serve)
})

after(async () => {
  serve.child.kill('SIGTERM')
  await exited(serve.child, 'lameduck serve to exit').catch((e) => {
    console.log(serve.stderr())
    throw e
  })
})

/** Sends raw bytes on a new connection; resolves with all the proxy sent back before it closed. */
function rawExchange(port: number, bytes: string): Promise<string> {
  const connection = new RawConnection(port)
  connection.send(bytes)
  return within(
    `the proxy to answer and close: ${JSON.stringify(bytes.slice(0, 60))}`,
    connection.closed.then(() => connection.data),
  )
}

test('proxies a request with its body, method, path and end-to-end headers', async () => {
  const reply = await request(serve.port, '/echo?x=1', {
    method: 'POST',
    headers: { 'content-type': 'text/plain', 'x-request-id': 'abc' },
    body: 'hello upstream',
  })
  assert.equal(reply.status, 200)
  const echo = JSON.parse(reply.body)
  assert.equal(echo.method, 'POST')
  assert.equal(echo.url, '/echo?x=1')
  assert.equal(echo.body, 'hello upstream')
  const sent = names(echo.rawHeaders)
  assert.ok(sent.includes('x-request-id'))
  assert.ok(sent.includes('content-length'))
})

test('hop-by-hop request fields, and those named in Connection, do not reach the upstream; X-Forwarded-For/Proto are added', async () => {
  const reply = await request(serve.port, '/echo', {
    headers: [
      'Host',
      'localhost',
      'Connection',
      'keep-alive, X-Hop-Secret',
      'X-Hop-Secret',
      'for this hop',
      'Keep-Alive',
      'timeout=30',
      'TE',
      'trailers',
      'Proxy-Authorization',
      'Basic dXNlcjpwYXNz',
      'Proxy-Connection',
      'keep-alive',
      'X-Forwarded-For',
      '203.0.113.7',
      'X-Kept',
      'yes',
    ],
  })
  const echo = JSON.parse(reply.body)
  const sent = names(echo.rawHeaders)
  for (const hop of [
    'x-hop-secret',
    'keep-alive',
    'te',
    'proxy-authorization',
    'proxy-connection',
  ]) {
    assert.ok(!sent.includes(hop), `${hop} must not be forwarded: ${sent.join(', ')}`)
  }
  assert.ok(sent.includes('x-kept'))
  const field = (name: string) =>
    echo.rawHeaders[echo.rawHeaders.findIndex((h: string) => h.toLowerCase() === name) + 1]
  assert.equal(field('x-forwarded-for'), '203.0.113.7, 127.0.0.1')
  assert.equal(field('x-forwarded-proto'), 'http')
  // The connection to the upstream is the proxy's own keep-alive connection.
  assert.equal(field('connection'), 'keep-alive')
})

test('hop-by-hop response fields, and those named in Connection, do not reach the client', async () => {
  const reply = await request(serve.port, '/hop')
  assert.equal(reply.status, 200)
  assert.equal(reply.body, 'ok')
  assert.equal(reply.headers['x-kept'], 'end to end')
  assert.equal(reply.headers['x-secret'], undefined)
  assert.equal(reply.headers['proxy-authenticate'], undefined)
  assert.notEqual(reply.headers['keep-alive'], 'timeout=5', "the upstream's Keep-Alive is its own")
})

test('trailers are passed on', async () => {
  const reply = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: serve.port, path: '/trailers' }, resolve)
      .on('error', reject)
  })
  reply.resume()
  await nextEvent(reply, 'end', 'the response to end')
  assert.equal(reply.trailers['x-checksum'], 'abc')
})

test('streams both ways: the upstream sees each request chunk before the client sends the next', async () => {
  const req = http.request({
    host: '127.0.0.1',
    port: serve.port,
    path: '/duplex',
    method: 'POST',
    headers: { 'transfer-encoding': 'chunked' },
  })
  const [res] = await (() => {
    req.write('first;')
    return nextEvent<[http.IncomingMessage]>(req, 'response', 'the response head')
  })()
  res.setEncoding('utf8')
  let received = ''
  const until = (text: string) =>
    within(
      `echo of ${text}`,
      new Promise<void>((resolve) => {
        const check = () => {
          if (received.includes(text)) {
            res.off('data', onData)
            resolve()
          }
        }
        const onData = (chunk: string) => {
          received += chunk
          check()
        }
        res.on('data', onData)
        check()
      }),
    )
  await until('first;')
  req.write('second;')
  await until('second;')
  req.end()
  await nextEvent(res, 'end', 'the duplex response to end')
  assert.equal(received, 'first;second;')
})

test('a streamed response arrives chunk by chunk', async () => {
  const reply = await request(serve.port, '/stream?chunks=4&ms=10')
  assert.equal(reply.body, 'chunk 0\nchunk 1\nchunk 2\nchunk 3\n')
  assert.equal(reply.headers['transfer-encoding'], 'chunked')
})

test('Expect: 100-continue is passed through: 100 when the upstream asks for the body, its final answer when it does not', async () => {
  const accepted = http.request({
    host: '127.0.0.1',
    port: serve.port,
    path: '/echo',
    method: 'PUT',
    headers: { expect: '100-continue', 'content-length': '4' },
  })
  let continued = false
  accepted.once('continue', () => {
    continued = true
    accepted.end('body')
  })
  const [res] = await nextEvent<[http.IncomingMessage]>(accepted, 'response', 'the PUT response')
  let body = ''
  res.setEncoding('utf8').on('data', (chunk: string) => {
    body += chunk
  })
  await nextEvent(res, 'end', 'the PUT response body')
  assert.ok(continued, '100 Continue reached the client')
  assert.equal(JSON.parse(body).body, 'body')

  const rejected = http.request({
    host: '127.0.0.1',
    port: serve.port,
    path: '/expect-reject',
    method: 'PUT',
    headers: { expect: '100-continue', 'content-length': '4' },
  })
  let rejectedContinued = false
  rejected.once('continue', () => {
    rejectedContinued = true
  })
  rejected.on('error', () => {})
  const [final] = await nextEvent<[http.IncomingMessage]>(rejected, 'response', 'the 417')
  final.resume()
  assert.equal(final.statusCode, 417)
  assert.equal(rejectedContinued, false, 'no 100 Continue when the upstream answered first')
  assert.equal(final.headers.connection, 'close')
  rejected.destroy()
})

test('an upgrade (WebSocket-style) is passed through and bytes flow both ways', async () => {
  const req = http.request({
    host: '127.0.0.1',
    port: serve.port,
    path: '/ws',
    headers: { connection: 'Upgrade', upgrade: 'echo' },
  })
  req.end()
  const [res, socket] = await nextEvent<[http.IncomingMessage, net.Socket]>(
    req,
    'upgrade',
    'the 101',
  )
  assert.equal(res.statusCode, 101)
  assert.equal(res.headers['x-upgraded'], 'yes')
  socket.write('ping')
  const [data] = await nextEvent<[Buffer]>(socket, 'data', 'the echoed bytes')
  assert.equal(data.toString(), 'ping')
  socket.destroy()
})

test('pooled keep-alive connections to the upstream: sequential requests share one', async () => {
  const before = (await seen(serve.port)).connections
  for (let i = 0; i < 10; i++) await request(serve.port, `/pooled/${i}`)
  const afterwards = (await seen(serve.port)).connections
  assert.ok(
    afterwards - before <= 1,
    `${afterwards - before} new upstream connections for 11 requests`,
  )
})

test('an upstream that fails before anything was sent gives 502; one that fails mid-stream cuts the response', async () => {
  const before = await request(serve.port, '/die-before')
  assert.equal(before.status, 502)
  assert.match(before.body, /Bad Gateway/)
  // A small Content-Length body is held until complete, so a failure in it is still a 502.
  const small = await request(serve.port, '/die-mid')
  assert.equal(small.status, 502)

  const mid = await rawExchange(
    serve.port,
    'GET /die-mid-stream HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n',
  )
  assert.match(mid, /^HTTP\/1\.1 200 OK/)
  assert.match(mid, /transfer-encoding: chunked/i)
  assert.match(
    mid,
    /0123456789\r\n$/,
    'the chunk sent, then the connection closed without the last chunk',
  )
  await serve.waitFor('"event":"upstream-aborted"', 'the mid-response failure to be logged')
})

test('request smuggling vectors get 400 and never reach the upstream', async () => {
  const marker = 'SMUGGLED'
  const smuggled = `GET /${marker} HTTP/1.1\r\nHost: a\r\n\r\n`
  const vectors: Record<string, string> = {
    'CL.TE': `POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: ${5 + smuggled.length}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
    'TE.CL': `POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n${(smuggled.length + 0).toString(16)}\r\n${smuggled}\r\n0\r\n\r\n`,
    'duplicate Content-Length': `POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`,
    'Content-Length list': `POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0, ${smuggled.length}\r\n\r\n${smuggled}`,
    'signed Content-Length': `POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: +${smuggled.length}\r\n\r\n${smuggled}`,
    'space in a field name': `POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n${smuggled}`,
    'obsolete line folding': `POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\nContent-Length: 0\r\n\r\n${smuggled}`,
    'unknown coding': `POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${smuggled}`,
    'chunked not last': `POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${smuggled}`,
    'two Transfer-Encoding fields': `POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n${smuggled}`,
    'Transfer-Encoding in HTTP/1.0': `POST /echo HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
    'bare LF in chunk size': `POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\n\r\n${smuggled}`,
    'NUL in a value': `GET /echo HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n${smuggled}`,
    'bare CR in a value': `GET /echo HTTP/1.1\r\nHost: a\r\nX-A: b\rGET /${marker} HTTP/1.1\r\n\r\n`,
    'two Host fields': `GET /${marker} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n`,
    'oversized head': `GET /${marker} HTTP/1.1\r\nHost: a\r\nX-Big: ${'x'.repeat(5000)}\r\n\r\n`,
  }
  for (const [name, bytes] of Object.entries(vectors)) {
    const answer = await rawExchange(serve.port, bytes)
    assert.match(answer, /^HTTP\/1\.1 4(00|31) /, `${name}: ${JSON.stringify(answer.slice(0, 80))}`)
  }
  const upstream = await seen(serve.port)
  assert.ok(!upstream.raw.includes(marker), 'no smuggled request reached the upstream')
  for (const r of upstream.requests) assert.notEqual(r.url, `/${marker}`)
})

test('slowloris: a client that never finishes its request head is cut at --headers-timeout', async () => {
  const connection = new RawConnection(serve.port)
  await connection.connected
  connection.send('GET /echo HTTP/1.1\r\nHost: a\r\n')
  const started = performance.now()
  await within('the proxy to close the slow connection', connection.closed)
  const waited = performance.now() - started
  assert.ok(waited >= 250, `closed after ${waited} ms, not before the 300 ms headers timeout`)
  assert.match(connection.data, /^(HTTP\/1\.1 408|$)/)
})

test("the probes are the library's, answered by the proxy and never forwarded", async () => {
  for (const [path, status] of [
    ['/readyz', 'ready'],
    ['/livez', 'alive'],
    ['/startupz', 'started'],
  ] as const) {
    const reply = await request(serve.port, path)
    assert.equal(reply.status, 200, path)
    assert.equal(JSON.parse(reply.body).status, status)
  }
  const upstream = await seen(serve.port)
  assert.ok(!upstream.requests.some((r) => r.url.endsWith('z')), 'no probe reached the upstream')
})

test('a pooled connection the upstream closed as it was reused: a GET is retried once on a new connection, a POST gets 502', async () => {
  const stale = await startServe([], [process.execPath, staleFixture])
  try {
    await ready(stale)
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    // (The readiness check's TCP connects are connections too: numbers are relative.)
    const first = Number((await request(stale.port, '/', { agent })).body.split(' ')[1])
    // The proxy reuses that connection, which closes on this second request: the GET is
    // retried on the next one.
    assert.equal((await request(stale.port, '/', { agent })).body, `connection ${first + 1}`)
    const post = await request(stale.port, '/', { agent, method: 'POST', body: 'once' })
    assert.equal(post.status, 502, 'a request with a body is not replayed')
    agent.destroy()
  } finally {
    stale.child.kill('SIGTERM')
    await exited(stale.child, 'the second lameduck serve to exit')
  }
})
