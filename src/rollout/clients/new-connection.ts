// A new connection per request, closed after the response (`Connection: close`), as curl,
// a shell script or a client without a pool does. Every request is routed afresh, so this
// kind reaches every endpoint the Service routes to, including pods in their lame duck.
import { nodeRequest } from './agent.js'
import type { ClientKind } from './types.js'

export const NEW_CONNECTION: ClientKind = {
  name: 'new-connection',
  description: 'a new connection per request, Connection: close (curl-like)',
  protocol: 'http',
  pooled: false,
  queues: false,
  create: (context) => ({
    send: (spec, attempt) => nodeRequest(context, spec, attempt, false),
    close() {
      // Nothing is pooled: each connection closes with its response.
    },
  }),
}
