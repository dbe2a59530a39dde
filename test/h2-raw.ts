// A bare HTTP/2 (h2c) client that writes frames itself, for what no conforming client
// library does on purpose: opening a stream after it received a GOAWAY, or holding back a
// PING's ack. It records every frame the server sends.
import net from 'node:net'
import { within } from './helpers.js'

export const FRAME = {
  DATA: 0x0,
  HEADERS: 0x1,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
} as const
const END_STREAM = 0x1
const END_HEADERS = 0x4
const ACK = 0x1
const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'

export interface Frame {
  type: number
  flags: number
  stream: number
  payload: Buffer
}

function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9)
  header.writeUIntBE(payload.length, 0, 3)
  header[3] = type
  header[4] = flags
  header.writeUInt32BE(stream, 5)
  return Buffer.concat([header, payload])
}

/** A string literal in HPACK (RFC 7541 §5.2), without Huffman coding (short values only). */
function literal(text: string): Buffer {
  const bytes = Buffer.from(text)
  if (bytes.length > 126) throw new Error('header value too long for this client')
  return Buffer.concat([Buffer.from([bytes.length]), bytes])
}

export class RawH2 {
  readonly socket: net.Socket
  readonly frames: Frame[] = []
  readonly closed: Promise<void>
  /** Answer PINGs at once (otherwise the test calls ackPings()). */
  autoAckPing = true
  #pendingPings: Buffer[] = []
  #buffer = Buffer.alloc(0)
  #waiters = new Set<() => void>()

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1')
    this.socket.on('error', () => {})
    this.socket.write(
      Buffer.concat([Buffer.from(PREFACE), frame(FRAME.SETTINGS, 0, 0, Buffer.alloc(0))]),
    )
    this.socket.on('data', (chunk: Buffer) => this.#read(chunk))
    this.closed = new Promise((resolve) => this.socket.once('close', () => resolve()))
  }

  /** Opens stream `id` with a GET of `path` and no body. */
  get(id: number, path: string): void {
    const block = Buffer.concat([
      Buffer.from([0x82, 0x86]), // :method GET, :scheme http (static table)
      Buffer.from([0x04]), // :path, literal value without indexing
      literal(path),
      Buffer.from([0x01]), // :authority
      literal('localhost'),
    ])
    this.socket.write(frame(FRAME.HEADERS, END_STREAM | END_HEADERS, id, block))
  }

  ackPings(): void {
    for (const payload of this.#pendingPings) this.socket.write(frame(FRAME.PING, ACK, 0, payload))
    this.#pendingPings = []
  }

  /** The GOAWAY frames so far, as their last-stream-ids. */
  goaways(): number[] {
    return this.frames
      .filter((f) => f.type === FRAME.GOAWAY)
      .map((f) => f.payload.readUInt32BE(0) & 0x7fffffff)
  }

  /** The DATA of `stream` so far, as text. */
  body(stream: number): string {
    return this.frames
      .filter((f) => f.type === FRAME.DATA && f.stream === stream)
      .map((f) => f.payload.toString())
      .join('')
  }

  /** True once `stream` received a frame with END_STREAM. */
  ended(stream: number): boolean {
    return this.frames.some(
      (f) =>
        f.stream === stream &&
        (f.type === FRAME.DATA || f.type === FRAME.HEADERS) &&
        (f.flags & END_STREAM) !== 0,
    )
  }

  /** Resolves once `predicate` holds for the frames received. */
  until(label: string, predicate: () => boolean, ms?: number): Promise<void> {
    return within(
      label,
      new Promise<void>((resolve) => {
        const check = () => {
          if (predicate()) {
            this.#waiters.delete(check)
            resolve()
          }
        }
        this.#waiters.add(check)
        check()
      }),
      ms,
    )
  }

  close(): void {
    this.socket.destroy()
  }

  #read(chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk])
    while (this.#buffer.length >= 9) {
      const length = this.#buffer.readUIntBE(0, 3)
      if (this.#buffer.length < 9 + length) break
      const received: Frame = {
        type: this.#buffer[3] as number,
        flags: this.#buffer[4] as number,
        stream: this.#buffer.readUInt32BE(5) & 0x7fffffff,
        payload: this.#buffer.subarray(9, 9 + length),
      }
      this.#buffer = this.#buffer.subarray(9 + length)
      this.frames.push(received)
      if (received.type === FRAME.SETTINGS && (received.flags & ACK) === 0) {
        this.socket.write(frame(FRAME.SETTINGS, ACK, 0, Buffer.alloc(0)))
      } else if (received.type === FRAME.PING && (received.flags & ACK) === 0) {
        this.#pendingPings.push(Buffer.from(received.payload))
        if (this.autoAckPing) this.ackPings()
      }
    }
    for (const waiter of this.#waiters) waiter()
  }
}
