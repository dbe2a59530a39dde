// The global fetch() of Node (undici), with its default dispatcher, as most new Node code
// calls other services. undici opens a connection per concurrent request and keeps them alive
// (4 s, or what the server's Keep-Alive header says). fetch() does not expose the connection;
// undici's diagnostics channel 'undici:client:sendHeaders' does, with the request's headers,
// so each request carries an id header to find its connection.
import diagnostics from 'node:diagnostics_channel'
import type { Socket } from 'node:net'
import type { ClientKind, LoadClient } from './types.js'

const ID_HEADER = 'x-lameduck-lab-request'

/** Connection callbacks by request id, for the requests in flight. */
const pending = new Map<string, (socket: Socket) => void>()
let subscribed = false

interface SendHeadersMessage {
  request: { headers: unknown }
  socket: Socket
}

function requestId(headers: unknown): string | undefined {
  // undici keeps request headers as a flat [name, value, ...] array (a raw string in old
  // versions).
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === ID_HEADER) return String(headers[i + 1])
    }
    return undefined
  }
  if (typeof headers === 'string') {
    return new RegExp(`^${ID_HEADER}: *(\\S+)`, 'im').exec(headers)?.[1]
  }
  return undefined
}

function subscribe(): void {
  if (subscribed) return
  subscribed = true
  diagnostics.subscribe('undici:client:sendHeaders', (message) => {
    const { request, socket } = message as SendHeadersMessage
    const id = requestId(request.headers)
    if (id === undefined) return
    pending.get(id)?.(socket)
  })
}

interface FetchError extends Error {
  code?: string
  cause?: FetchError
}

/** fetch() wraps the network error in a TypeError ('fetch failed', 'terminated'). */
function unwrap(error: FetchError): { message: string; code: string | undefined } {
  const cause = error.cause
  if (cause instanceof Error) {
    return { message: `${error.message}: ${cause.message}`, code: cause.code }
  }
  return { message: error.message, code: error.code }
}

function fetchClient(context: { host: string; port: number }): LoadClient {
  subscribe()
  const used = new WeakSet<Socket>()
  return {
    send(spec, attempt) {
      const id = `${process.pid}-${spec.id}`
      const controller = new AbortController()
      let abandoned = false
      pending.set(id, (socket) => {
        const reused = used.has(socket)
        used.add(socket)
        if (socket.localPort !== undefined) attempt.socket(socket.localPort, reused)
      })
      let responded = false
      const run = async () => {
        try {
          const init: RequestInit = {
            method: spec.method,
            headers: { [ID_HEADER]: id },
            signal: controller.signal,
          }
          if (spec.body !== undefined) {
            init.body = spec.body
            init.headers = { [ID_HEADER]: id, 'content-type': 'application/octet-stream' }
          }
          const response = await fetch(`http://${context.host}:${context.port}${spec.path}`, init)
          responded = true
          attempt.response(response.status)
          await response.arrayBuffer()
          attempt.end()
        } catch (error) {
          if (abandoned) return
          const { message, code } = unwrap(error as FetchError)
          attempt.error({ message, code, duringResponse: responded })
        } finally {
          pending.delete(id)
        }
      }
      void run()
      return () => {
        abandoned = true
        pending.delete(id)
        controller.abort()
      }
    },
    close() {
      // The global dispatcher is shared by the process; its idle connections close on their
      // own after the keep-alive timeout, and the Service model closes the rest at the end.
    },
  }
}

export const FETCH: ClientKind = {
  name: 'fetch',
  description: 'the global fetch() (undici), its default dispatcher',
  protocol: 'http',
  pooled: false,
  // undici's default dispatcher opens as many connections as there are requests.
  queues: false,
  create: fetchClient,
}
