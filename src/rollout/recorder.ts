// Everything the lab observed, on one clock: lab and pod events, every request's start, end
// and outcome, and a sample of the system's state every bucket. Reports are built from it.
import { EventEmitter } from 'node:events'
import type { Clock } from './clock.js'

/** How a request ended. Every request gets exactly one. */
export type Outcome = 'ok' | 'http_5xx' | 'refused' | 'reset' | 'hang_up' | 'timeout' | 'other'

export const OUTCOMES: readonly Outcome[] = [
  'ok',
  'http_5xx',
  'refused',
  'reset',
  'hang_up',
  'timeout',
  'other',
]

export type FailureClass = Exclude<Outcome, 'ok'>

export const FAILURE_CLASSES = OUTCOMES.filter((o): o is FailureClass => o !== 'ok')

export const OUTCOME_LABELS: Record<Outcome, string> = {
  ok: 'ok',
  http_5xx: 'HTTP 5xx',
  refused: 'connection refused',
  reset: 'connection reset',
  hang_up: 'socket hang up',
  timeout: 'timeout',
  other: 'other',
}

export type LabEventType =
  | 'pod-created'
  | 'pod-ready'
  | 'pod-not-ready'
  | 'pod-deleted'
  | 'sigterm'
  | 'sigkill'
  | 'pod-exited'
  | 'endpoint-added'
  | 'endpoint-removed'
  | 'load-started'
  | 'load-stopped'
  | 'rollout-started'
  | 'rollout-complete'
  | 'warning'

export interface LabEvent {
  /** ms since the lab started */
  t: number
  type: LabEventType
  pod?: string
  detail?: string
}

export interface RequestRecord {
  id: number
  /** WS: a message on a WebSocket, or a WebSocket that failed by itself (see `message`). */
  method: 'GET' | 'POST' | 'WS'
  path: string
  /** The client kind that sent it (clients/index.ts). */
  client: string
  /** ms since the lab started, when the request was issued */
  start: number
  end: number
  outcome: Outcome
  /** The pod its connection was pinned to, when the Service model accepted the connection. */
  pod?: string
  /** Whether its connection had carried a request before (a reused keep-alive connection). */
  reused?: boolean
  status?: number
  /** Error message or status line of a failed request. */
  message?: string
  /** Times it was sent again because the server had not processed it (clients/types.ts). */
  retries?: number
  /** For a WS record that is a WebSocket's own failure: how it failed. */
  websocket?: 'cut' | 'closed' | 'not-opened'
  /** The client's local port of the connection it went out on. */
  localPort?: number
  /** With an ingress: what the ingress logged (the upstreams it tried, and their statuses). */
  ingress?: {
    /** The proxy that logged it (absent for a failure it never logged, at a reload). */
    proxy?: 'nginx' | 'haproxy'
    upstreamStatus: string
    /** Attempts the proxy made (pods may list only the last one: haproxy logs only it). */
    tried: number
    pods: string[]
    reload?: boolean
    /**
     * Set when the proxy answered 502/503/504 itself, or closed the client's connection without
     * an answer: why it got no response from a pod.
     */
    error?: IngressError
    /** The proxy closed the client's connection without answering or logging the request. */
    unlogged?: boolean
  }
}

/**
 * Why an ingress answered a request itself: it could not connect to the pod (refused, or the
 * address was gone), the pod closed or reset the connection before answering, the pod did not
 * answer in time, there was no endpoint to send it to, or every endpoint had been marked failed
 * after earlier errors (nginx's passive health check: "no live upstreams").
 */
export type IngressError = 'connect' | 'closed' | 'timeout' | 'no-endpoint' | 'no-live' | 'other'

/** The state of the lab at the end of one bucket. */
export interface Sample {
  t: number
  inFlight: number
  /** Endpoints the Service model routes new connections to. */
  endpoints: number
  /** Of those, endpoints whose pod was deleted but still runs. */
  endpointsTerminating: number
  /** Of those, endpoints whose pod has exited: new connections to them are refused. */
  endpointsGone: number
  /** Pods whose readiness probe passes, terminating ones excluded. */
  readyPods: number
  /** Pod processes alive, terminating ones included. */
  runningPods: number
}

export const BUCKET_MS = 100

export class Recorder extends EventEmitter {
  readonly events: LabEvent[] = []
  readonly requests: RequestRecord[] = []
  readonly samples: Sample[] = []
  /**
   * Requests whose connection never reached the Service model before their deadline: the
   * lab's own process could not accept it in time (its accept queue overflowed). Not the
   * service's failures, and not counted among the requests.
   */
  readonly undelivered: RequestRecord[] = []
  /** Long-lived connections a pod asked to move cleanly (WebSocket close, HTTP/2 GOAWAY):
   * when, and which pod. */
  readonly moves: { t: number; pod: string | undefined }[] = []
  readonly counts: Record<Outcome, number> = {
    ok: 0,
    http_5xx: 0,
    refused: 0,
    reset: 0,
    hang_up: 0,
    timeout: 0,
    other: 0,
  }
  constructor(readonly clock: Clock) {
    super()
  }

  event(type: LabEventType, pod?: string, detail?: string): LabEvent {
    const event: LabEvent = { t: this.clock.now(), type }
    if (pod !== undefined) event.pod = pod
    if (detail !== undefined) event.detail = detail
    this.events.push(event)
    this.emit('event', event)
    return event
  }

  request(record: RequestRecord): void {
    this.requests.push(record)
    this.counts[record.outcome]++
  }

  failed(): number {
    return this.requests.length - this.counts.ok
  }

  sample(sample: Omit<Sample, 't'>): void {
    this.samples.push({ t: this.clock.now(), ...sample })
  }
}
