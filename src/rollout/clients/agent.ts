// Node's http.Agent with keep-alive, as a typical Node service calls another: the global
// agent's settings since Node 19 (keepAlive, 5 s idle socket timeout), with LIFO scheduling
// (Node's default: the most recently used idle socket first, so a light load stays on one
// connection) or FIFO (the least recently used first, so every pooled connection stays busy).
import http from 'node:http'
import type { Socket } from 'node:net'
import type { ClientContext, ClientKind, LoadClient } from './types.js'

/** Node's global agent keeps idle sockets this long (v19+), less when the server hints less. */
const AGENT_FREE_SOCKET_TIMEOUT_MS = 5_000

export function agentClient(context: ClientContext, scheduling: 'lifo' | 'fifo'): LoadClient {
  const agent = new http.Agent({
    keepAlive: true,
    scheduling,
    timeout: AGENT_FREE_SOCKET_TIMEOUT_MS,
    maxSockets: context.connections,
  })
  return {
    send(spec, attempt) {
      return nodeRequest(context, spec, attempt, agent)
    },
    close() {
      agent.destroy()
    },
  }
}

/**
 * Sockets that have carried a request. Node's Agent sets `request.reusedSocket` only when it
 * hands a request an idle socket, not when a queued request gets a socket that has just freed
 * up, which is just as much a reused connection (and as exposed to a server closing it).
 */
const carried = new WeakSet<Socket>()

/** One request with node:http; shared by the Agent kinds and the new-connection kind. */
export function nodeRequest(
  context: ClientContext,
  spec: Parameters<LoadClient['send']>[0],
  attempt: Parameters<LoadClient['send']>[1],
  agent: http.Agent | false,
): () => void {
  const headers: http.OutgoingHttpHeaders = {}
  if (spec.body !== undefined) {
    headers['content-type'] = 'application/octet-stream'
    headers['content-length'] = spec.body.length
  }
  if (agent === false) headers.connection = 'close'
  const request = http.request({
    host: context.host,
    port: context.port,
    method: spec.method,
    path: spec.path,
    agent,
    headers,
  })
  let responded = false
  request.on('socket', (socket: Socket) => {
    const reused = request.reusedSocket || carried.has(socket)
    carried.add(socket)
    // connect() has been called by now, so the local port is known even while the socket
    // connects; the Service model may reset the connection before 'connect'.
    if (socket.localPort !== undefined) attempt.socket(socket.localPort, reused)
    else socket.once('connect', () => attempt.socket(socket.localPort!, reused))
  })
  request.on('response', (response) => {
    responded = true
    attempt.response(response.statusCode ?? 0)
    response.resume()
    response.on('end', () => attempt.end())
    response.on('error', (error: NodeJS.ErrnoException) =>
      attempt.error({ message: error.message, code: error.code, duringResponse: true }),
    )
    response.on('close', () => {
      if (!response.complete) {
        attempt.error({
          message: 'connection closed during the response',
          code: undefined,
          duringResponse: true,
        })
      }
    })
  })
  request.on('error', (error: NodeJS.ErrnoException) =>
    attempt.error({ message: error.message, code: error.code, duringResponse: responded }),
  )
  request.end(spec.body)
  return () => request.destroy()
}

export const AGENT_LIFO: ClientKind = {
  name: 'agent-lifo',
  description: "node:http Agent, keep-alive, LIFO (Node's default)",
  protocol: 'http',
  pooled: true,
  queues: true,
  create: (context) => agentClient(context, 'lifo'),
}

export const AGENT_FIFO: ClientKind = {
  name: 'agent-fifo',
  description: 'node:http Agent, keep-alive, FIFO (every pooled connection kept busy)',
  protocol: 'http',
  pooled: true,
  queues: true,
  create: (context) => agentClient(context, 'fifo'),
}
