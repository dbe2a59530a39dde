// Small HTTP/1.1 clients for tests: a keep-alive request over node's Agent, and a raw
// socket that shows exactly what the server sent and when it closed the connection.
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import { within } from './helpers.js'

export interface Response {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

/** One request; resolves with the whole body, rejects on any socket error. */
export function get(
  port: number,
  path = '/',
  options: { agent?: http.Agent | false; method?: string; tls?: boolean } = {},
): Promise<Response> {
  const client = options.tls ? https : http
  return new Promise((resolve, reject) => {
    const req = client.request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        agent: options.agent ?? false,
        rejectUnauthorized: false,
      },
      (res) => {
        let body = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => {
          body += chunk
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end()
  })
}

/**
 * Starts a request whose headers never end on `connection`: its request line now, one more
 * header line every 200 ms until the connection closes. Returns the function that stops
 * it; it also stops when the test ends.
 */
export function trickleHeaders(
  connection: { send(text: string): void; socket: net.Socket },
  t: { after(fn: () => void): void },
): () => void {
  connection.send('GET /?trickle=1 HTTP/1.1\r\nHost: localhost\r\n')
  const trickle = setInterval(() => {
    if (!connection.socket.destroyed) connection.send('X-Trickle: 1\r\n')
  }, 200)
  const stop = () => clearInterval(trickle)
  t.after(stop)
  return stop
}

/** A raw TCP connection that records every byte and when the server closed it. */
export class RawConnection {
  readonly socket: net.Socket
  data = ''
  readonly closed: Promise<void>
  readonly connected: Promise<void>
  #waiters = new Set<() => void>()

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1')
    this.socket.setEncoding('utf8')
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve)
      this.socket.once('error', reject)
    })
    this.socket.on('error', () => {})
    this.socket.on('data', (chunk: string) => {
      this.data += chunk
      for (const waiter of this.#waiters) waiter()
    })
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()))
  }

  send(text: string): void {
    this.socket.write(text)
  }

  /** Sends a keep-alive GET. */
  request(path: string): void {
    this.send(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n`)
  }

  /** Waits until the received bytes contain `text`. */
  waitFor(text: string, label = `response containing ${JSON.stringify(text)}`): Promise<void> {
    return within(
      label,
      new Promise<void>((resolve) => {
        const check = () => {
          if (this.data.includes(text)) {
            this.#waiters.delete(check)
            resolve()
          }
        }
        this.#waiters.add(check)
        check()
      }),
    )
  }
}

/** Resolves when a new TCP connection to `port` is refused. */
export function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'))
  })
}

export interface RawResponse {
  status: number
  /** Header names lower-cased; a repeated header keeps its last value. */
  headers: Record<string, string>
  body: string
}

/**
 * Splits the bytes a RawConnection received into whole HTTP/1.1 responses (content-length,
 * chunked, or no body for 1xx/204/304 and HEAD-less empty bodies). Interim 1xx responses
 * are returned too. A trailing partial response is left out.
 */
export function parseResponses(data: string): RawResponse[] {
  const out: RawResponse[] = []
  let rest = data
  for (;;) {
    const end = rest.indexOf('\r\n\r\n')
    if (end === -1) break
    const lines = rest.slice(0, end).split('\r\n')
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1])
    const headers: Record<string, string> = {}
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':')
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
    }
    let body = ''
    let next = end + 4
    if (status >= 200 && status !== 204 && status !== 304) {
      if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
        let complete = false
        while (next < rest.length) {
          const lineEnd = rest.indexOf('\r\n', next)
          if (lineEnd === -1) break
          const size = Number.parseInt(rest.slice(next, lineEnd), 16)
          if (size === 0) {
            if (rest.length < lineEnd + 4) break
            next = lineEnd + 4
            complete = true
            break
          }
          if (rest.length < lineEnd + 2 + size + 2) break
          body += rest.slice(lineEnd + 2, lineEnd + 2 + size)
          next = lineEnd + 2 + size + 2
        }
        if (!complete) break
      } else {
        const length = Number(headers['content-length'] ?? 0)
        if (rest.length < next + length) break
        body = rest.slice(next, next + length)
        next += length
      }
    }
    out.push({ status, headers, body })
    rest = rest.slice(next)
  }
  return out
}
