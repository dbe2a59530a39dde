// The interface every client kind of the load generator implements. One module per kind
// (agent.ts, fetch.ts, new-connection.ts, h2.ts, ws.ts); a kind is added by registering it
// in index.ts. A client only sends and observes: the load generator schedules requests,
// enforces their deadlines and classifies how each one ended.

/**
 * What to send. A client sends a request again only where its protocol says the server did
 * not process it (an HTTP/2 stream refused unprocessed, a WebSocket message unanswered when
 * its WebSocket closed), and says so with `Attempt.retry`.
 */
export interface RequestSpec {
  id: number
  method: 'GET' | 'POST'
  path: string
  /** The request body (POST), sent with a Content-Length. */
  body: Buffer | undefined
}

/** What a client reports about one request, in order; `end` or `error` comes exactly once. */
export interface Attempt {
  /** The connection the request went out on: its local port, and whether it carried a request before. */
  socket(localPort: number, reused: boolean): void
  /** The response's status line and headers arrived. */
  response(status: number): void
  /** The response body arrived complete. */
  end(): void
  /** The request or its response failed; `code` is Node's error code when there is one. */
  error(failure: ClientFailure): void
  /** The request is sent again (on another connection), for this reason. */
  retry(reason: string): void
}

export interface ClientFailure {
  message: string
  code: string | undefined
  /** The response had started (status received) when it failed. */
  duringResponse: boolean
}

/** A long-lived connection that failed by itself (a WebSocket cut or not opened). */
export interface ConnectionFailure {
  /** Cut without a close frame, closed with a code that is not a clean one, or not opened. */
  how: 'cut' | 'closed' | 'not-opened'
  message: string
  code: string | undefined
  /** The HTTP status the server answered instead of opening the connection. */
  status: number | undefined
}

export interface LoadClient {
  /** Resolves when the client can send at once (a helper process has started). */
  ready?: Promise<void>
  /** Sends one request; the returned function abandons it (its deadline passed). */
  send(spec: RequestSpec, attempt: Attempt): () => void
  /** Closes every connection the client holds. */
  close(): void
}

export interface ClientContext {
  host: string
  port: number
  /** Connections one pool may hold (keep-alive pool size). */
  connections: number
  /** The path WebSocket clients connect to. */
  wsPath: string
  /**
   * Reports a failure of a long-lived connection that no request's outcome shows; the load
   * generator counts it as one failed request. `localPort` is the connection's, when known.
   */
  lost(failure: ConnectionFailure, localPort: number | undefined): void
  /**
   * Reports a long-lived connection the server asked to move, cleanly: a WebSocket close
   * frame with 1000 or 1001, an HTTP/2 GOAWAY with NO_ERROR. Not a failure; it shows the
   * pod's shutdown was exercised.
   */
  movedAway(localPort: number | undefined): void
}

export interface ClientKind {
  name: string
  /** One line for the help text and the reports. */
  description: string
  /**
   * What a request is: an HTTP request of the load's shapes (`--path`, `--post`), or a
   * message on a WebSocket to `--ws-path` (recorded as method WS).
   */
  protocol: 'http' | 'websocket'
  /** Whether `--pools` creates several independent instances (separate connection pools). */
  pooled: boolean
  /**
   * Whether a request may wait in the client for a free connection before it is sent (a
   * bounded pool). For a kind that never waits, a request with no connection at its deadline
   * was never delivered: its connect did not complete.
   */
  queues: boolean
  create(context: ClientContext): LoadClient
  /**
   * Makes the kind ready once, before the load (a helper written, a program built); rejects
   * with a sentence naming what is missing, and the lab then skips the kind with a warning.
   */
  prepare?(): Promise<void>
  /**
   * Checks once, before the load starts, that the service speaks this kind's protocol;
   * rejects with a sentence saying what is wrong and what to change. A kind that any HTTP
   * server answers has none.
   */
  preflight?(target: PreflightTarget): Promise<void>
}

/** Where a preflight check connects: the Service model, and the path WebSockets use. */
export interface PreflightTarget {
  host: string
  port: number
  wsPath: string
}

/** How long a preflight check may take before it reports the service as silent. */
export const PREFLIGHT_TIMEOUT_MS = 3_000
