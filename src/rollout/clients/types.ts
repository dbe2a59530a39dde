// The interface every client kind of the load generator implements. One module per kind
// (agent.ts, fetch.ts, new-connection.ts); a kind is added by registering it in index.ts.
// A client only sends and observes: the load generator schedules requests, enforces their
// deadlines and classifies how each one ended.

/** What to send. A client never retries: one request is one attempt. */
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
}

export interface ClientFailure {
  message: string
  code: string | undefined
  /** The response had started (status received) when it failed. */
  duringResponse: boolean
}

export interface LoadClient {
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
}

export interface ClientKind {
  name: string
  /** One line for the help text and the reports. */
  description: string
  /** Whether `--pools` creates several independent instances (separate connection pools). */
  pooled: boolean
  /**
   * Whether a request may wait in the client for a free connection before it is sent (a
   * bounded pool). For a kind that never waits, a request with no connection at its deadline
   * was never delivered: its connect did not complete.
   */
  queues: boolean
  create(context: ClientContext): LoadClient
}
