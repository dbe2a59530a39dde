// A node:http2 client session for tests that records every GOAWAY it receives.
import http2 from 'node:http2'
import { within } from './helpers.js'

export interface H2Response {
  status: number
  headers: http2.IncomingHttpHeaders
  body: string
}

export interface Goaway {
  code: number
  lastStreamID: number
}

export class H2Session {
  readonly session: http2.ClientHttp2Session
  readonly goaways: Goaway[] = []
  readonly closed: Promise<void>
  readonly connected: Promise<void>
  #waiters = new Set<() => void>()

  constructor(port: number, options: { tls?: boolean } = {}) {
    const scheme = options.tls ? 'https' : 'http'
    this.session = http2.connect(`${scheme}://127.0.0.1:${port}`, { rejectUnauthorized: false })
    this.session.on('error', () => {})
    this.session.on('goaway', (code: number, lastStreamID: number) => {
      this.goaways.push({ code, lastStreamID })
      for (const waiter of this.#waiters) waiter()
    })
    this.connected = new Promise((resolve, reject) => {
      this.session.once('connect', () => resolve())
      this.session.once('error', reject)
    })
    this.closed = new Promise((resolve) => this.session.once('close', () => resolve()))
  }

  /** One request on this session; resolves with the whole body, rejects on a stream error. */
  request(path: string, method = 'GET'): Promise<H2Response> {
    return new Promise((resolve, reject) => {
      let stream: http2.ClientHttp2Stream
      try {
        stream = this.session.request({ ':path': path, ':method': method })
      } catch (error) {
        reject(error)
        return
      }
      stream.end()
      let status = 0
      let headers: http2.IncomingHttpHeaders = {}
      let body = ''
      stream.setEncoding('utf8')
      stream.on('response', (h) => {
        headers = h
        status = Number(h[':status'])
      })
      stream.on('data', (chunk: string) => {
        body += chunk
      })
      stream.on('end', () => {
        if (status === 0)
          reject(new Error(`stream ended without a response (rstCode ${stream.rstCode})`))
        else resolve({ status, headers, body })
      })
      stream.on('error', reject)
    })
  }

  /** Resolves once `count` GOAWAY frames have arrived. */
  waitForGoaways(count: number, label = `${count} GOAWAY frame(s)`): Promise<Goaway[]> {
    return within(
      label,
      new Promise<Goaway[]>((resolve) => {
        const check = () => {
          if (this.goaways.length >= count) {
            this.#waiters.delete(check)
            resolve(this.goaways)
          }
        }
        this.#waiters.add(check)
        check()
      }),
    )
  }

  close(): void {
    this.session.destroy()
  }
}
