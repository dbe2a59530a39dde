// The client kinds the load generator can mix. Add a kind: write its module (implementing
// ClientKind from types.ts) and list it here.
import { AGENT_FIFO, AGENT_LIFO } from './agent.js'
import { CURL, GO_HTTP, PY_REQUESTS } from './external.js'
import { FETCH } from './fetch.js'
import { H2 } from './h2.js'
import { NEW_CONNECTION } from './new-connection.js'
import type { ClientKind } from './types.js'
import { WS } from './ws.js'

/** Every kind `--client` accepts. The default mix is the HTTP/1.1 kinds (options.ts). */
export const CLIENT_KINDS: readonly ClientKind[] = [
  AGENT_LIFO,
  AGENT_FIFO,
  FETCH,
  NEW_CONNECTION,
  H2,
  WS,
  CURL,
  PY_REQUESTS,
  GO_HTTP,
]

export function clientKind(name: string): ClientKind | undefined {
  return CLIENT_KINDS.find((kind) => kind.name === name)
}

export type {
  Attempt,
  ClientFailure,
  ClientKind,
  ConnectionFailure,
  LoadClient,
  RequestSpec,
} from './types.js'
