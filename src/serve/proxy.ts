// The HTTP/1.1 reverse proxy of `lameduck serve` (proxy mode): node:http in front, a
// keep-alive pool of node:http client connections behind.
//
// Framing is never passed through: node's parser (llhttp, strict) reads each request, and
// node's client writes a fresh one to the upstream, with the body re-framed by a
// Content-Length or chunked encoding that node itself produces. A request whose framing is
// ambiguous never gets that far: llhttp answers 400 for Content-Length with
// Transfer-Encoding, duplicate or invalid Content-Length, an unknown or non-final chunked
// coding, obsolete line folding, bare CR or LF and invalid bytes in names and values; this
// file adds the two checks llhttp leaves to the application (several Host fields, and
// Transfer-Encoding in an HTTP/1.0 request, RFC 9112 §3.2 and §6.1).
import {
  Agent,
  type ClientRequest,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import { createConnection, type NetConnectOpts, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { LoggerLike } from '../options.js'
import { lingerAfter } from '../trackers/http1-rules.js'
import type { Upstream } from './upstream.js'

/** Pooled upstream connections idle longer than this are closed by us. Below the 5 s
 * keep-alive timeout of uvicorn, node:http and many others, so the pool does not reuse a
 * connection the upstream is closing at that moment. */
export const UPSTREAM_IDLE_MS = 4_000
/** How long a request with `Expect: 100-continue` waits for the upstream's 100 before the
 * body is sent anyway (RFC 9110 §10.1.1 allows it; curl waits 1 s). */
export const EXPECT_CONTINUE_TIMEOUT_MS = 1_000
/** Responses with a Content-Length up to this size are sent whole, head and body at once. */
export const BUFFERED_BODY_MAX_BYTES = 64 * 1024
/** Seconds a client is told to wait (Retry-After) when the upstream refuses connections. */
const RETRY_AFTER_S = '1'
/** A request with more header fields than this gets 431, and a response with more gets
 * 502. Past `maxHeadersCount` fields (1,000 by default) node 20's parser drops the rest of a
 * message silently, a Content-Length or a second Host among them, where node 26's
 * refuses it: the proxy sets node's limit one above this one and refuses a message past it
 * whole instead of forwarding it cut. */
export const MAX_HEADER_FIELDS = 1_000

/**
 * Hop-by-hop fields (RFC 9110 §7.6.1), plus the proxy-authentication fields that belong to
 * the hop that asked for them. Fields named in `Connection` are dropped too. The request's
 * Transfer-Encoding is restored after the filter: node re-frames the body but keeps the
 * codings the client declared.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
])
/** Replaced by the proxy's own value (the received one plus the client's address). */
const REPLACED = new Set(['x-forwarded-for'])
/** Methods a request may be retried with once, on a fresh connection, when a pooled
 * connection turned out to be closed before it answered (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])
/** Errors that mean the upstream is not accepting connections (not started, or gone). */
const REFUSED = new Set(['ECONNREFUSED', 'ENOENT', 'EADDRNOTAVAIL'])
/** Errors a pooled connection closed by the upstream produces on its next use. */
const STALE = new Set(['ECONNRESET', 'EPIPE'])

/** How long an upstream connection whose write failed is still read, for the answer the
 * upstream may have sent before closing it. */
export const EARLY_ANSWER_WAIT_MS = 1_000
/** Emitted on an upstream socket when a write to it failed while it can still be read. */
const WRITE_FAILED = 'lameduck:write-failed'

/** Upstream sockets a write to failed: never put back in the pool. */
const writeFailed = new WeakSet<Socket>()

/**
 * An upstream that answers a request before reading its body (401 or 413 to an upload) and
 * closes the connection makes its kernel reset it, unread body and all: the proxy's next
 * write fails (EPIPE, ECONNRESET) while the answer waits, unread, in the socket. A failed
 * write errors the socket's readable side too, so node stopped reading: the answer was
 * lost and the client got 502. Here a failed write on a socket that can still be read is
 * not passed on: the socket emits WRITE_FAILED, later writes are dropped, and reading goes
 * on, so the parser gets the answer, then the read side's end or error closes the socket
 * as before (or EARLY_ANSWER_WAIT_MS does, with the write's error).
 */
function readPastWriteError(socket: Socket): Socket {
  type Callback = (error?: Error | null) => void
  const settle = (error: Error | null | undefined, callback: Callback): void => {
    if (
      error == null ||
      (error as NodeJS.ErrnoException).syscall !== 'write' ||
      !socket.readable ||
      socket.destroyed
    ) {
      callback(error)
      return
    }
    if (!writeFailed.has(socket)) {
      writeFailed.add(socket)
      const timer = setTimeout(() => socket.destroy(error), EARLY_ANSWER_WAIT_MS)
      timer.unref()
      socket.once('close', () => clearTimeout(timer))
      socket.emit(WRITE_FAILED)
    }
    callback()
  }
  const write = socket._write
  socket._write = function (this: Socket, chunk, encoding, callback: Callback) {
    if (writeFailed.has(this)) return callback()
    write.call(this, chunk, encoding, (error?: Error | null) => settle(error, callback))
  }
  const writev = socket._writev
  if (writev !== undefined) {
    socket._writev = function (this: Socket, chunks, callback: Callback) {
      if (writeFailed.has(this)) return callback()
      writev.call(this, chunks, (error?: Error | null) => settle(error, callback))
    }
  }
  return socket
}

/** Requests that arrived with `Expect: 100-continue` and have not been told to continue. */
const expectsContinue = new WeakSet<IncomingMessage>()

export interface ProxyOptions {
  upstream: Upstream
  logger: LoggerLike | false
}

/** Counters, for logs and tests. */
export interface ProxyStats {
  requests: number
  /** Answered by the proxy itself: 400 (framing), 502 (upstream failed), 503 (refused). */
  rejected: number
  badGateway: number
  unavailable: number
  /** Responses cut because the upstream failed after their headers were sent. */
  aborted: number
  retried: number
  upgrades: number
}

/** Names of fields listed in a Connection header value, lower-cased. */
function connectionTokens(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined
  const text = Array.isArray(value) ? value.join(',') : value
  const tokens = new Set<string>()
  for (const token of text.split(',')) {
    const name = token.trim().toLowerCase()
    // Host is end to end whatever Connection says: the next hop needs it (RFC 9112 §3.2).
    if (name !== '' && name !== 'host') tokens.add(name)
  }
  return tokens
}

/** The raw header list without hop-by-hop fields and the fields named in `Connection`. */
function endToEnd(
  raw: readonly string[],
  named: Set<string> | undefined,
  out: string[],
  replaced?: Set<string>,
): void {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower) || named?.has(lower) || replaced?.has(lower)) continue
    out.push(name, raw[i + 1] as string)
  }
}

function clientAddress(req: IncomingMessage): string {
  const address = req.socket.remoteAddress ?? ''
  return address.startsWith('::ffff:') ? address.slice(7) : address
}

interface Problem {
  status: 400 | 431
  reason: string
}

/** Why this request is refused, beyond what node's parser already refuses. */
function framingProblem(req: IncomingMessage): Problem | undefined {
  if (req.rawHeaders.length > 2 * MAX_HEADER_FIELDS) {
    return { status: 431, reason: `more than ${MAX_HEADER_FIELDS} header fields` }
  }
  if (req.httpVersionMinor === 0 && req.headers['transfer-encoding'] !== undefined) {
    return { status: 400, reason: 'Transfer-Encoding in an HTTP/1.0 request' }
  }
  const raw = req.rawHeaders
  let hosts = 0
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++
  }
  return hosts > 1 ? { status: 400, reason: 'more than one Host field' } : undefined
}

/**
 * The path to send upstream, and the Host the target's authority replaces (absolute form,
 * RFC 9112 §3.2.2); or why the target is refused. Origin form passes as it is; asterisk
 * form only with OPTIONS (§3.2.4); absolute form only for http and https with a host and
 * no user info (RFC 9110 §4.2.4): anything else would reach the upstream as a target it
 * never meant to serve, or with an empty Host.
 */
function requestTarget(req: IncomingMessage): { path: string; host?: string } | string {
  const url = req.url ?? '/'
  if (url.charCodeAt(0) === 47 /* '/' */) return { path: url }
  if (url === '*') {
    return req.method === 'OPTIONS' ? { path: url } : `'*' as the target of ${req.method}`
  }
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return 'invalid request target'
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    return `request target with the scheme '${parsed.protocol}' (expected http: or https:)`
  }
  if (parsed.host === '') return 'request target without a host'
  if (parsed.username !== '' || parsed.password !== '') {
    return 'request target with user info'
  }
  return { path: `${parsed.pathname}${parsed.search}`, host: parsed.host }
}

/** Client connections closing after an answer that came before their request's body. */
const lingering = new WeakSet<Socket>()

/**
 * The client's connection closes after this answer, the lingering way: its write side is
 * closed once the answer is out, and the rest of the request's body is read and dropped
 * until the client closes its side (or 2 s). Closed at once, with the body still arriving,
 * the kernel would reset it, and a client still sending could lose the answer.
 */
function closeAfter(req: IncomingMessage, res: ServerResponse): void {
  if (res.headersSent) return
  res.shouldKeepAlive = false
  lingerAfter(req, req.socket, lingering)
}

/** Answers a request the proxy refuses itself, and closes the connection after it: its
 * unread body must never be parsed as a next request. */
function refuse(res: ServerResponse, status: number, message: string): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const body = `${message}\n`
  res.shouldKeepAlive = false
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  })
  res.end(body)
}

/**
 * Proxies requests and upgrades to one upstream. Attach with `attach(server)`; the server
 * is expected to be managed by `lameduck()`, which answers probes and sets
 * `Connection: close` while draining before these handlers run.
 */
export class HttpProxy {
  readonly upstream: Upstream
  readonly agent: Agent
  readonly stats: ProxyStats = {
    requests: 0,
    rejected: 0,
    badGateway: 0,
    unavailable: 0,
    aborted: 0,
    retried: 0,
    upgrades: 0,
  }
  readonly #logger: LoggerLike | false
  #refusing = false
  /** Requests not yet answered in full, and upgrades not yet answered. */
  #inFlight = 0
  /** Client sockets of upgraded connections (WebSocket tunnels) still open. */
  readonly #tunnels = new Set<Duplex>()
  readonly #settled = new Set<() => void>()

  constructor(options: ProxyOptions) {
    this.upstream = options.upstream
    this.#logger = options.logger
    this.agent = new Agent({ keepAlive: true, timeout: UPSTREAM_IDLE_MS, scheduling: 'lifo' })
    this.agent.createConnection = (options: NetConnectOpts) =>
      readPastWriteError(createConnection(options))
    const keepSocketAlive = this.agent.keepSocketAlive
    this.agent.keepSocketAlive = function (this: Agent, socket: Socket): boolean {
      if (writeFailed.has(socket)) return false
      return keepSocketAlive.call(this, socket) as unknown as boolean
    }
  }

  /** Installs the request, Expect and upgrade handlers on `server`. */
  attach(server: Server): void {
    // One above the limit: a request past it is seen as such, and refused (framingProblem).
    server.maxHeadersCount = MAX_HEADER_FIELDS + 1
    // A client may send its request and shut down its write side (`nc -N`, a script's
    // `shutdown(SHUT_WR)`): HTTP/1.1 allows it. node:http by default aborts the request
    // at that end of input, so an answer that takes an upstream round trip would never be
    // sent; with this (a property node:http has had since 0.x, read in its socketOnEnd)
    // the answers to what was received are written first, then the connection closes.
    ;(server as Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true
    server.on('request', (req: IncomingMessage, res: ServerResponse) => this.handle(req, res))
    // With a 'checkContinue' listener node does not answer 100 Continue by itself; the
    // request goes through 'request' (and so through lameduck's probe and drain handling)
    // and the proxy sends 100 when the upstream does.
    server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
      expectsContinue.add(req)
      server.emit('request', req, res)
    })
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
      this.upgrade(req, socket, head),
    )
    // Without a 'connect' listener node destroys a CONNECT request's connection without a
    // word. This is a reverse proxy with one upstream, not a forward proxy: it answers 501.
    server.on('connect', (req: IncomingMessage, socket: Duplex) => this.connect(req, socket))
  }

  /** A CONNECT request (a tunnel to another host): refused with 501, then closed. */
  connect(req: IncomingMessage, socket: Duplex): void {
    this.stats.requests++
    this.stats.rejected++
    socket.on('error', () => socket.destroy())
    this.#log(
      'warn',
      { event: 'bad-request', status: 501, method: req.method, target: req.url },
      `lameduck serve: 501 for CONNECT ${req.url}: not a forward proxy`,
    )
    socket.end(
      rawResponse(501, 'Not Implemented: CONNECT is not supported (this is a reverse proxy)'),
    )
  }

  /** Closes the pooled upstream connections. */
  close(): void {
    this.agent.destroy()
  }

  /** Exchanges in flight: requests not answered in full, upgrades not answered yet. */
  get inFlight(): number {
    return this.#inFlight
  }

  /** Upgraded connections (WebSocket tunnels) open now. */
  get tunnels(): number {
    return this.#tunnels.size
  }

  /** Calls `listener` each time an exchange ends or a tunnel closes; returns the remover. */
  onSettled(listener: () => void): () => void {
    this.#settled.add(listener)
    return () => this.#settled.delete(listener)
  }

  #begin(): () => void {
    this.#inFlight++
    let open = true
    return () => {
      if (!open) return
      open = false
      this.#inFlight--
      for (const listener of this.#settled) listener()
    }
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    this.stats.requests++
    res.once('close', this.#begin())
    const problem = framingProblem(req)
    if (problem !== undefined) {
      this.stats.rejected++
      this.#log(
        'warn',
        { event: 'bad-request', status: problem.status, reason: problem.reason },
        `lameduck serve: ${problem.status}, ${problem.reason}`,
      )
      refuse(res, problem.status, `${STATUS_TEXT[problem.status]}: ${problem.reason}`)
      return
    }
    const headers: string[] = []
    endToEnd(req.rawHeaders, connectionTokens(req.headers.connection), headers, REPLACED)
    const te = req.headers['transfer-encoding']
    if (te !== undefined) headers.push('Transfer-Encoding', te)
    const forwarded = req.headers['x-forwarded-for']
    const address = clientAddress(req)
    headers.push('X-Forwarded-For', forwarded === undefined ? address : `${forwarded}, ${address}`)
    if (req.headers['x-forwarded-proto'] === undefined) headers.push('X-Forwarded-Proto', 'http')
    // An HTTP/1.0 client may leave Host out; the HTTP/1.1 hop to the upstream must carry it.
    if (req.headers.host === undefined) headers.push('Host', this.#address())

    const target = requestTarget(req)
    if (typeof target === 'string') {
      this.stats.rejected++
      refuse(res, 400, `Bad Request: ${target}`)
      return
    }
    const path = target.path
    if (target.host !== undefined) {
      for (let i = 0; i < headers.length; i += 2) {
        if ((headers[i] as string).toLowerCase() === 'host') headers[i + 1] = target.host
      }
    }
    const hasBody = te !== undefined || (req.headers['content-length'] ?? '0') !== '0'
    const retriable = !hasBody && IDEMPOTENT.has(req.method ?? '')
    this.#send(req, res, path, headers, hasBody, retriable)
  }

  #send(
    req: IncomingMessage,
    res: ServerResponse,
    path: string,
    headers: string[],
    hasBody: boolean,
    retriable: boolean,
  ): void {
    let upReq: ClientRequest
    try {
      upReq = httpRequest({
        host: this.upstream.host,
        port: this.upstream.port,
        method: req.method,
        path,
        headers,
        agent: this.agent,
        setHost: false,
        insecureHTTPParser: false,
      })
    } catch (error) {
      // node refuses a header it would not write (an invalid character): the client's fault.
      this.stats.rejected++
      refuse(res, 400, `Bad Request: ${(error as Error).message}`)
      return
    }
    upReq.maxHeadersCount = MAX_HEADER_FIELDS + 1
    let responded = false
    let failed = false
    /** The upstream's answer, once its head arrived. */
    let answer: IncomingMessage | undefined
    if (hasBody) {
      // The upstream stopped taking the body (it answered early and closed, or failed):
      // the rest of the client's body goes nowhere, and its connection closes after the
      // answer, which may still come (readPastWriteError).
      upReq.once('socket', (socket: Socket) => {
        const stopBody = () => {
          req.unpipe(upReq)
          req.resume()
          closeAfter(req, res)
        }
        socket.once(WRITE_FAILED, stopBody)
        upReq.once('close', () => socket.off(WRITE_FAILED, stopBody))
      })
    }
    const onClose = () => {
      if (!res.writableFinished) upReq.destroy()
    }
    res.once('close', onClose)
    upReq.once('close', () => {
      // node ends some exchanges with 'close' and no 'error' and no 'response': an upstream
      // that answers 101 to a request that asked for no upgrade is one. The client must get
      // an answer all the same.
      if (responded || failed || res.headersSent || res.destroyed) return
      this.stats.badGateway++
      this.#log(
        'warn',
        { event: 'upstream-error', method: req.method, path },
        `lameduck serve: 502 for ${req.method} ${path}: the upstream closed the exchange without a usable answer`,
      )
      refuse(res, 502, 'Bad Gateway: the upstream closed the exchange without a usable answer')
    })

    upReq.once('error', (error: NodeJS.ErrnoException) => {
      failed = true
      res.off('close', onClose)
      if (res.destroyed && !res.writableFinished) return
      // The whole answer arrived before the upstream stopped reading the body: it stands.
      if (answer?.complete) return
      const code = error.code ?? ''
      if (!responded && retriable && upReq.reusedSocket && STALE.has(code)) {
        // A pooled connection the upstream had closed: retry once on a new connection.
        this.stats.retried++
        this.#send(req, res, path, headers, hasBody, false)
        return
      }
      if (responded) {
        this.#abortResponse(req, res, error)
        return
      }
      if (REFUSED.has(code)) {
        this.stats.unavailable++
        if (!this.#refusing) {
          this.#refusing = true
          this.#log(
            'warn',
            { event: 'upstream-refused', code, upstream: this.#address() },
            `lameduck serve: upstream ${this.#address()} refused the connection (${code}); answering 503`,
          )
        }
        res.setHeader('retry-after', RETRY_AFTER_S)
        refuse(res, 503, 'Service Unavailable: the upstream is not accepting connections')
        return
      }
      this.stats.badGateway++
      this.#log(
        'warn',
        { event: 'upstream-error', code, method: req.method, path },
        `lameduck serve: 502 for ${req.method} ${path}: the upstream failed before answering (${code || error.message})`,
      )
      refuse(res, 502, 'Bad Gateway: the upstream failed before answering')
    })

    upReq.once('response', (upRes: IncomingMessage) => {
      responded = true
      answer = upRes
      this.#refusing = false
      if (!bodyStarted) {
        // A final answer before the body was asked for (RFC 9110 §10.1.1): the body is
        // not sent, the upstream connection cannot be reused, and the client's must close.
        clearTimeout(continueTimer)
        res.shouldKeepAlive = false
        upRes.once('end', () => upReq.destroy())
      } else if (hasBody && !req.complete) {
        // An answer that comes while the body is still on its way (401 or 413 to an
        // upload, or an upstream that streams as it reads). Once the answer is complete,
        // the rest of the body has nowhere to go: it is read and dropped, so the client's
        // connection is never left waiting on an upstream that stopped reading, and that
        // upstream connection, cut mid-body, is closed. The client's closes after the
        // answer, as the client may have stopped sending.
        closeAfter(req, res)
        upRes.once('end', () => {
          if (req.complete) return
          req.unpipe(upReq)
          req.resume()
          upReq.destroy()
        })
      }
      if (upRes.rawHeaders.length > 2 * MAX_HEADER_FIELDS) {
        upReq.destroy()
        this.stats.badGateway++
        this.#log(
          'warn',
          { event: 'upstream-invalid', method: req.method, path },
          `lameduck serve: 502 for ${req.method} ${path}: the upstream's response has more than ${MAX_HEADER_FIELDS} header fields`,
        )
        refuse(res, 502, 'Bad Gateway: too many header fields in the upstream response')
        return
      }
      const out: string[] = []
      endToEnd(upRes.rawHeaders, connectionTokens(upRes.headers.connection), out)
      const status = upRes.statusCode ?? 502
      upRes.once('error', (error) => this.#abortResponse(req, res, error))
      upRes.once('aborted', () => this.#abortResponse(req, res, new Error('aborted')))
      const length = Number(upRes.headers['content-length'] ?? Number.NaN)
      if (length <= BUFFERED_BODY_MAX_BYTES) {
        // A small body goes out with its head in one write, once it is complete: whether
        // the connection stays open is decided at that moment, so a drain that starts
        // while the upstream is still sending turns it into `Connection: close` instead of
        // a keep-alive answer whose socket is then closed under the client's next request.
        const chunks: Buffer[] = []
        upRes.on('data', (chunk: Buffer) => chunks.push(chunk))
        upRes.once('end', () => {
          if (this.#head(req, res, upReq, status, upRes.statusMessage, out)) {
            res.end(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks))
          }
        })
        return
      }
      if (!this.#head(req, res, upReq, status, upRes.statusMessage, out)) return
      upRes.once('end', () => {
        if (upRes.rawTrailers.length > 0) {
          const trailers: string[] = []
          endToEnd(upRes.rawTrailers, undefined, trailers)
          const pairs: [string, string][] = []
          for (let i = 0; i < trailers.length; i += 2)
            pairs.push([trailers[i] as string, trailers[i + 1] as string])
          res.addTrailers(pairs)
        }
      })
      upRes.pipe(res)
    })

    let bodyStarted = !expectsContinue.has(req)
    let continueTimer: NodeJS.Timeout | undefined
    if (!hasBody) {
      upReq.end()
      return
    }
    req.once('error', () => upReq.destroy())
    if (bodyStarted) {
      req.pipe(upReq)
      return
    }
    const startBody = () => {
      if (bodyStarted || res.headersSent) return
      bodyStarted = true
      clearTimeout(continueTimer)
      expectsContinue.delete(req)
      res.writeContinue()
      req.pipe(upReq)
    }
    upReq.once('continue', startBody)
    continueTimer = setTimeout(startBody, EXPECT_CONTINUE_TIMEOUT_MS)
    upReq.flushHeaders()
  }

  /** Writes the response head; answers 502 instead when node refuses it (invalid bytes). */
  #head(
    req: IncomingMessage,
    res: ServerResponse,
    upReq: ClientRequest,
    status: number,
    message: string | undefined,
    headers: string[],
  ): boolean {
    if (res.destroyed) return false
    try {
      res.writeHead(status, message, headers)
      return true
    } catch (error) {
      upReq.destroy()
      this.stats.badGateway++
      this.#log(
        'warn',
        { event: 'upstream-invalid', method: req.method, error: (error as Error).message },
        `lameduck serve: 502: the upstream's response head cannot be forwarded (${(error as Error).message})`,
      )
      refuse(res, 502, 'Bad Gateway: invalid response head from the upstream')
      return false
    }
  }

  #abortResponse(req: IncomingMessage, res: ServerResponse, error: Error): void {
    if (res.writableFinished || res.destroyed) return
    if (!res.headersSent) {
      // Nothing of the response went out yet (a small body is held until complete).
      this.stats.badGateway++
      this.#log(
        'warn',
        { event: 'upstream-error', method: req.method, path: req.url, error: error.message },
        `lameduck serve: 502 for ${req.method} ${req.url}: the upstream failed mid-response (${error.message})`,
      )
      refuse(res, 502, 'Bad Gateway: the upstream failed before answering')
      return
    }
    this.stats.aborted++
    this.#log(
      'warn',
      { event: 'upstream-aborted', method: req.method, path: req.url, error: error.message },
      `lameduck serve: the upstream failed mid-response to ${req.method} ${req.url} (${error.message}); closing the client connection`,
    )
    res.destroy()
  }

  /** An upgrade (WebSocket): one fresh upstream connection, then bytes both ways. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.stats.requests++
    const end = this.#begin()
    socket.once('close', end)
    socket.on('error', () => socket.destroy())
    const problem = framingProblem(req)
    if (problem !== undefined) {
      this.stats.rejected++
      socket.end(rawResponse(problem.status, `${STATUS_TEXT[problem.status]}: ${problem.reason}`))
      return
    }
    const target = requestTarget(req)
    if (typeof target === 'string') {
      this.stats.rejected++
      socket.end(rawResponse(400, `Bad Request: ${target}`))
      return
    }
    // node hands an upgrade's body over unparsed, as the first bytes of the tunnel: sent
    // on, the upstream would wait for a body that comes only after its 101, or never (a
    // WebSocket handshake is a GET without one, RFC 6455 §4.1).
    if (
      req.headers['transfer-encoding'] !== undefined ||
      (req.headers['content-length'] ?? '0') !== '0'
    ) {
      this.stats.rejected++
      socket.end(rawResponse(400, 'Bad Request: an upgrade request with a body'))
      return
    }
    const headers: string[] = []
    endToEnd(req.rawHeaders, connectionTokens(req.headers.connection), headers, REPLACED)
    const forwarded = req.headers['x-forwarded-for']
    const address = clientAddress(req)
    headers.push(
      'Connection',
      'Upgrade',
      'Upgrade',
      req.headers.upgrade ?? '',
      'X-Forwarded-For',
      forwarded === undefined ? address : `${forwarded}, ${address}`,
    )
    if (req.headers['x-forwarded-proto'] === undefined) headers.push('X-Forwarded-Proto', 'http')
    if (req.headers.host === undefined) headers.push('Host', this.#address())
    if (target.host !== undefined) {
      for (let i = 0; i < headers.length; i += 2) {
        if ((headers[i] as string).toLowerCase() === 'host') headers[i + 1] = target.host
      }
    }
    let upReq: ClientRequest
    try {
      upReq = httpRequest({
        host: this.upstream.host,
        port: this.upstream.port,
        method: req.method,
        path: target.path,
        headers,
        agent: false,
        setHost: false,
        insecureHTTPParser: false,
      })
    } catch (error) {
      this.stats.rejected++
      socket.end(rawResponse(400, `Bad Request: ${(error as Error).message}`))
      return
    }
    socket.once('close', () => upReq.destroy())
    upReq.once('error', (error: NodeJS.ErrnoException) => {
      if (socket.destroyed) return
      const refused = REFUSED.has(error.code ?? '')
      if (refused) this.stats.unavailable++
      else this.stats.badGateway++
      socket.end(
        refused
          ? rawResponse(503, 'Service Unavailable: the upstream is not accepting connections')
          : rawResponse(502, 'Bad Gateway: the upstream failed before answering'),
      )
    })
    upReq.once('upgrade', (upRes: IncomingMessage, upSocket: Duplex, upHead: Buffer) => {
      this.stats.upgrades++
      if (!socket.destroyed) {
        this.#tunnels.add(socket)
        socket.once('close', () => {
          this.#tunnels.delete(socket)
          for (const listener of this.#settled) listener()
        })
      }
      end()
      upSocket.on('error', () => socket.destroy())
      socket.on('error', () => upSocket.destroy())
      upSocket.once('close', () => socket.destroy())
      socket.once('close', () => upSocket.destroy())
      // node:http leaves both sockets half-open after an upgrade (allowHalfOpen): an end on
      // either side ends the whole tunnel, or a closed client would hold it open forever.
      const endBoth = () => {
        socket.end()
        upSocket.end()
      }
      socket.once('end', endBoth)
      upSocket.once('end', endBoth)
      socket.write(rawHead(upRes, upRes.rawHeaders))
      if (upHead.length > 0) socket.write(upHead)
      if (head.length > 0) upSocket.write(head)
      upSocket.pipe(socket)
      socket.pipe(upSocket)
    })
    upReq.once('response', (upRes: IncomingMessage) => {
      // The upstream declined the upgrade: pass its answer on, then close (the body is
      // written as it comes, delimited by the close).
      const out: string[] = []
      endToEnd(upRes.rawHeaders, connectionTokens(upRes.headers.connection), out)
      out.push('Connection', 'close')
      socket.write(rawHead(upRes, out))
      upRes.pipe(socket)
    })
    upReq.end()
  }

  #address(): string {
    return `${this.upstream.host}:${this.upstream.port}`
  }

  #log(level: 'warn' | 'error', fields: Record<string, unknown>, message: string): void {
    if (this.#logger !== false) this.#logger[level](fields, message)
  }
}

function rawHead(res: IncomingMessage, raw: readonly string[]): string {
  let head = `HTTP/1.1 ${res.statusCode} ${res.statusMessage}\r\n`
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    const lower = name.toLowerCase()
    // The response to a declined upgrade is re-delimited by the connection's close.
    if (res.statusCode !== 101 && (lower === 'content-length' || lower === 'transfer-encoding'))
      continue
    head += `${name}: ${raw[i + 1]}\r\n`
  }
  return `${head}\r\n`
}

const STATUS_TEXT = {
  400: 'Bad Request',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
} as const

function rawResponse(status: keyof typeof STATUS_TEXT, message: string): string {
  const body = `${message}\n`
  const reason = STATUS_TEXT[status]
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
}
