// The lab's result: one JSON-able object every report is rendered from.
import { type Diagnosis, diagnose } from './diagnosis.js'
import type { IngressKind, IngressSummary } from './drivers/ingress.js'
import type { ServiceKind } from './drivers/types.js'
import type { PodRecord } from './kubelet.js'
import type { LoadSummary } from './load.js'
import {
  type FromSummary,
  type IntOrPercent,
  type LabOptions,
  resolveFenceposts,
} from './options.js'
import {
  BUCKET_MS,
  FAILURE_CLASSES,
  type FailureClass,
  type LabEvent,
  type Outcome,
  type Recorder,
  type RequestRecord,
  type Sample,
} from './recorder.js'

/** At most this many failed requests are listed one by one (all are counted). */
export const MAX_FAILURES_LISTED = 5_000

export const RESULT_VERSION = 2

export interface Settings {
  name: string
  replicas: number
  rollouts: number
  maxSurge: string
  maxUnavailable: string
  /** maxSurge / maxUnavailable as pod counts, after Kubernetes rounding. */
  resolved: { maxSurge: number; maxUnavailable: number }
  minReadyMs: number
  progressDeadlineMs: number
  gracePeriodMs: number
  preStopSleepMs: number
  readiness: {
    path: string
    periodMs: number
    timeoutMs: number
    failureThreshold: number
    successThreshold: number
  }
  portEnv: string
  probePortEnv?: string
  env: Record<string, string>
  /** The data path (--service); absent from results written before there was a choice. */
  service?: ServiceKind
  ingress?: IngressKind
  /** With --from: the manifest, and where each setting it can give came from. */
  from?: FromSummary
  propagationDelayMs: number
  propagationJitterMs: number
  rate: number
  connections: number
  pools: number
  paths: { path: string; weight: number; method: 'GET' | 'POST' }[]
  clients: { kind: string; weight: number }[]
  wsPath: string
  timeoutMs: number
  maxRequests: number
  maxDurationMs: number
  maxFailures: number
}

export interface PodSummary extends PodRecord {
  /** When the Service model started / stopped routing new connections to it. */
  endpointAddedAt?: number
  endpointRemovedAt?: number
  /** Connections the Service model pinned to it. */
  connections: number
  ok: number
  failed: number
  /** ms from SIGTERM to exit */
  timeToExitMs?: number
  /** For a pod deleted during the run: the traffic that crossed its shutdown. */
  shutdown?: PodShutdown
  /**
   * ms from the moment the Service stopped routing new connections to the pod to its exit:
   * how much later than strictly needed it exited. Negative: it exited while still routed.
   */
  headroomMs?: number
}

export interface PodShutdown {
  /** Requests on connections to the pod that were in flight at its SIGTERM. */
  inFlightAtSigterm: number
  /** Requests the pod answered (ok) that were sent after its SIGTERM: its lame duck. */
  servedInLameDuck: number
  /** Requests sent to the pod after its SIGTERM that failed. */
  failedAfterSigterm: number
  /** Long-lived connections the pod asked to move after its SIGTERM (WebSockets closed with
   * 1000/1001, HTTP/2 sessions sent a GOAWAY): their clients went elsewhere. */
  connectionsMoved: number
  /** With an ingress: requests the ingress sent to the pod at or after its SIGTERM that failed
   * there and that it sent to another pod (its retries hid the pod's shutdown). */
  retriedAway?: number
  /** Any request in flight at SIGTERM or sent after it, or any connection it moved after
   * SIGTERM, or any request an ingress retried away from it: the shutdown was exercised. */
  exercised: boolean
}

/** Sent and failed requests for one client kind or one request shape. */
export interface Breakdown {
  key: string
  sent: number
  failed: number
}

export type VerdictStatus = 'pass' | 'fail' | 'inconclusive'

export interface Verdict {
  status: VerdictStatus
  /** status === 'pass' */
  pass: boolean
  failed: number
  maxFailures: number
  /** Deleted pods that carried no request across their shutdown (inconclusive when any). */
  unexercisedPods: string[]
  /** Requests the lab could not deliver (its own overload; inconclusive when any). */
  undelivered: number
}

/** One 100 ms bucket: what the requests did in it, and the lab's state at its end. */
export interface Bucket extends Sample {
  sent: number
  ok: number
  failed: Partial<Record<FailureClass, number>>
}

/** Latency of the ok requests of one request shape, per bucket (by completion time); null: none completed. */
export interface LatencySeries {
  request: string
  p50: (number | null)[]
  p99: (number | null)[]
}

export interface RolloutSummary {
  index: number
  startedAt: number
  completedAt?: number
}

export interface LabResult {
  version: typeof RESULT_VERSION
  command: string[]
  settings: Settings
  /** What carried the traffic: the data path driver, in one line. */
  dataPath?: string
  /** With --ingress: what the ingress retried and passed on. */
  ingress?: IngressSummary
  /** wall-clock start, ISO 8601; every other time is ms since then */
  startedAt: string
  durationMs: number
  load: LoadSummary | undefined
  requests: number
  outcomes: Record<Outcome, number>
  failed: number
  /** ok / requests, 1 when no request was sent */
  successRate: number
  /** Requests sent again because the server had not processed them (an HTTP/2 stream
   * refused, a WebSocket message unanswered when its WebSocket closed), whatever their
   * outcome. Absent from results written before it was counted. */
  retried?: number
  /** latency of the ok requests */
  latencyMs: { p50: number; p99: number; max: number } | undefined
  rollouts: RolloutSummary[]
  pods: PodSummary[]
  events: LabEvent[]
  failures: RequestRecord[]
  timeSeries: { bucketMs: number; buckets: Bucket[]; latency: LatencySeries[] }
  warnings: string[]
  /** Sent and failed requests by client kind, and by request shape (method and path). */
  byClient: Breakdown[]
  byRequest: Breakdown[]
  /** One sentence per cluster of failures: mechanism, numbers, fix. */
  diagnosis: Diagnosis[]
  /** Set when the run stopped early (a pod crashed, a rollout made no progress). */
  error?: string
  /** Set when the run was interrupted (Ctrl-C): the result covers the run up to then. */
  interrupted?: boolean
  verdict: Verdict
}

export function describeIntOrPercent(value: IntOrPercent): string {
  return value.kind === 'percent' ? `${value.value}%` : String(value.value)
}

export function settingsOf(options: LabOptions): Settings {
  return {
    name: options.name,
    replicas: options.replicas,
    rollouts: options.rollouts,
    maxSurge: describeIntOrPercent(options.maxSurge),
    maxUnavailable: describeIntOrPercent(options.maxUnavailable),
    resolved: resolveFenceposts(options.replicas, options.maxSurge, options.maxUnavailable),
    minReadyMs: options.minReadyMs,
    progressDeadlineMs: options.progressDeadlineMs,
    gracePeriodMs: options.gracePeriodMs,
    preStopSleepMs: options.preStopSleepMs,
    readiness: {
      path: options.readinessPath,
      periodMs: options.readinessPeriodMs,
      timeoutMs: options.readinessTimeoutMs,
      failureThreshold: options.readinessFailureThreshold,
      successThreshold: options.readinessSuccessThreshold,
    },
    portEnv: options.portEnv,
    ...(options.probePortEnv === undefined ? {} : { probePortEnv: options.probePortEnv }),
    env: options.env,
    service: options.service,
    ...(options.from === undefined ? {} : { from: options.from }),
    ...(options.ingress === 'none' ? {} : { ingress: options.ingress }),
    propagationDelayMs: options.propagationDelayMs,
    propagationJitterMs: options.propagationJitterMs,
    rate: options.rate,
    connections: options.connections,
    pools: options.pools,
    paths: options.paths.map((p) => ({
      path: p.path,
      weight: p.weight,
      method: p.method ?? 'GET',
    })),
    clients: options.clients,
    wsPath: options.wsPath,
    timeoutMs: options.timeoutMs,
    maxRequests: options.maxRequests,
    maxDurationMs: options.maxDurationMs,
    maxFailures: options.maxFailures,
  }
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[Math.min(sorted.length, rank) - 1]!
}

export function buildResult(input: {
  options: LabOptions
  recorder: Recorder
  pods: PodRecord[]
  connectionsPerPod: ReadonlyMap<string, number>
  dataPath?: string
  ingress?: IngressSummary
  load: LoadSummary | undefined
  rollouts: RolloutSummary[]
  warnings: string[]
  error: string | undefined
  interrupted?: boolean
}): LabResult {
  const { options, recorder, load } = input
  const requests = recorder.requests
  const failed = recorder.failed()
  const latencies = Float64Array.from(
    requests.filter((r) => r.outcome === 'ok').map((r) => r.end - r.start),
  ).sort()
  const round = (n: number) => Math.round(n * 10) / 10

  const perPod = new Map<string, { ok: number; failed: number }>()
  for (const request of requests) {
    if (request.pod === undefined) continue
    const entry = perPod.get(request.pod) ?? { ok: 0, failed: 0 }
    if (request.outcome === 'ok') entry.ok++
    else entry.failed++
    perPod.set(request.pod, entry)
  }
  const pods: PodSummary[] = input.pods.map((record) => {
    const summary: PodSummary = {
      ...record,
      connections: input.connectionsPerPod.get(record.name) ?? 0,
      ok: perPod.get(record.name)?.ok ?? 0,
      failed: perPod.get(record.name)?.failed ?? 0,
    }
    const added = recorder.events.find((e) => e.type === 'endpoint-added' && e.pod === record.name)
    const removed = recorder.events.find(
      (e) => e.type === 'endpoint-removed' && e.pod === record.name,
    )
    if (added !== undefined) summary.endpointAddedAt = added.t
    if (removed !== undefined) summary.endpointRemovedAt = removed.t
    if (record.sigtermAt !== undefined && record.exitedAt !== undefined && !record.stoppedByLab) {
      summary.timeToExitMs = round(record.exitedAt - record.sigtermAt)
      if (summary.endpointRemovedAt !== undefined) {
        summary.headroomMs = round(record.exitedAt - summary.endpointRemovedAt)
      }
    }
    if (record.sigtermAt !== undefined && !record.stoppedByLab) {
      summary.shutdown = shutdownOf(record.name, record.sigtermAt, requests, recorder.moves)
    }
    return summary
  })

  // A pod the Service never routed to before its SIGTERM could not carry traffic across its
  // shutdown, and cannot lose any: only routed pods count.
  const unexercisedPods = pods
    .filter(
      (pod) =>
        pod.shutdown !== undefined &&
        !pod.shutdown.exercised &&
        pod.endpointAddedAt !== undefined &&
        pod.endpointAddedAt < (pod.sigtermAt ?? Number.POSITIVE_INFINITY),
    )
    .map((pod) => pod.name)
  const status: VerdictStatus =
    failed > options.maxFailures || input.error !== undefined
      ? 'fail'
      : unexercisedPods.length > 0 || recorder.undelivered.length > 0
        ? 'inconclusive'
        : 'pass'
  const durationMs = recorder.clock.now()
  const result: LabResult = {
    version: RESULT_VERSION,
    command: options.command,
    ...(input.dataPath === undefined ? {} : { dataPath: input.dataPath }),
    ...(input.ingress === undefined ? {} : { ingress: input.ingress }),
    settings: settingsOf(options),
    startedAt: recorder.clock.startedAt.toISOString(),
    durationMs,
    load,
    requests: requests.length,
    outcomes: { ...recorder.counts },
    failed,
    successRate: requests.length === 0 ? 1 : recorder.counts.ok / requests.length,
    retried: requests.filter((r) => (r.retries ?? 0) > 0).length,
    latencyMs:
      latencies.length === 0
        ? undefined
        : {
            p50: round(percentile(latencies, 50)),
            p99: round(percentile(latencies, 99)),
            max: round(latencies[latencies.length - 1]!),
          },
    rollouts: input.rollouts,
    pods,
    events: recorder.events,
    failures: requests.filter((r) => r.outcome !== 'ok').slice(0, MAX_FAILURES_LISTED),
    timeSeries: {
      bucketMs: BUCKET_MS,
      buckets: buckets(recorder, durationMs),
      latency: latencySeries(recorder.requests, durationMs),
    },
    warnings: input.warnings,
    byClient: breakdown(requests, (r) => r.client),
    byRequest: breakdown(requests, requestLabel),
    diagnosis: diagnose(requests, {
      pods,
      propagationDelayMs: options.propagationDelayMs,
      propagationJitterMs: options.propagationJitterMs,
      gracePeriodMs: options.gracePeriodMs,
      preStopSleepMs: options.preStopSleepMs,
      timeoutMs: options.timeoutMs,
    }),
    verdict: {
      status,
      pass: status === 'pass',
      failed,
      maxFailures: options.maxFailures,
      unexercisedPods,
      undelivered: recorder.undelivered.length,
    },
  }
  if (input.error !== undefined) result.error = input.error
  if (input.interrupted === true) result.interrupted = true
  return result
}

function buckets(recorder: Recorder, durationMs: number): Bucket[] {
  const count = Math.max(1, Math.ceil(durationMs / BUCKET_MS))
  const out: Bucket[] = []
  for (let i = 0; i < count; i++) {
    out.push({
      t: i * BUCKET_MS,
      sent: 0,
      ok: 0,
      failed: {},
      inFlight: 0,
      endpoints: 0,
      endpointsTerminating: 0,
      endpointsGone: 0,
      readyPods: 0,
      runningPods: 0,
    })
  }
  const at = (t: number) => out[Math.min(count - 1, Math.max(0, Math.floor(t / BUCKET_MS)))]!
  for (const request of recorder.requests) {
    at(request.start).sent++
    const bucket = at(request.end)
    if (request.outcome === 'ok') bucket.ok++
    else bucket.failed[request.outcome] = (bucket.failed[request.outcome] ?? 0) + 1
  }
  // Each sample describes the state at the end of the bucket it falls in; a bucket without
  // one (the sampler ran late on a busy machine) keeps the state of the bucket before it.
  const sampled = new Set<number>()
  for (const sample of recorder.samples) {
    sampled.add(Math.min(count - 1, Math.max(0, Math.floor((sample.t - 1) / BUCKET_MS))))
    const bucket = at(sample.t - 1)
    bucket.inFlight = sample.inFlight
    bucket.endpoints = sample.endpoints
    bucket.endpointsTerminating = sample.endpointsTerminating
    bucket.endpointsGone = sample.endpointsGone
    bucket.readyPods = sample.readyPods
    bucket.runningPods = sample.runningPods
  }
  const firstSampled = Math.min(...sampled)
  for (let i = firstSampled + 1; i < count; i++) {
    if (sampled.has(i)) continue
    const previous = out[i - 1]!
    const bucket = out[i]!
    bucket.inFlight = previous.inFlight
    bucket.endpoints = previous.endpoints
    bucket.endpointsTerminating = previous.endpointsTerminating
    bucket.endpointsGone = previous.endpointsGone
    bucket.readyPods = previous.readyPods
    bucket.runningPods = previous.runningPods
  }
  return out
}

function latencySeries(requests: readonly RequestRecord[], durationMs: number): LatencySeries[] {
  const count = Math.max(1, Math.ceil(durationMs / BUCKET_MS))
  const byRequest = new Map<string, number[][]>()
  for (const request of requests) {
    if (request.outcome !== 'ok') continue
    const label = requestLabel(request)
    let slots = byRequest.get(label)
    if (slots === undefined) {
      slots = Array.from({ length: count }, () => [])
      byRequest.set(label, slots)
    }
    const i = Math.min(count - 1, Math.max(0, Math.floor(request.end / BUCKET_MS)))
    slots[i]!.push(request.end - request.start)
  }
  const round = (n: number) => Math.round(n * 10) / 10
  return [...byRequest].map(([request, slots]) => {
    const sorted = slots.map((values) => Float64Array.from(values).sort())
    return {
      request,
      p50: sorted.map((v) => (v.length === 0 ? null : round(percentile(v, 50)))),
      p99: sorted.map((v) => (v.length === 0 ? null : round(percentile(v, 99)))),
    }
  })
}

/** Failed requests by class, classes with none left out. */
export function failuresByClass(result: LabResult): [FailureClass, number][] {
  return FAILURE_CLASSES.map((c) => [c, result.outcomes[c]] as [FailureClass, number]).filter(
    ([, n]) => n > 0,
  )
}

/** `GET /stream?chunks=5`, `POST /echo`: a request shape as the reports name it. */
export function requestLabel(request: { method?: string; path: string }): string {
  return `${request.method ?? 'GET'} ${request.path}`
}

function breakdown(
  requests: readonly RequestRecord[],
  key: (request: RequestRecord) => string,
): Breakdown[] {
  const rows = new Map<string, Breakdown>()
  for (const request of requests) {
    const k = key(request)
    const row = rows.get(k) ?? { key: k, sent: 0, failed: 0 }
    row.sent++
    if (request.outcome !== 'ok') row.failed++
    rows.set(k, row)
  }
  return [...rows.values()].sort((a, b) => b.sent - a.sent)
}

/** The traffic that crossed one pod's SIGTERM. */
function shutdownOf(
  pod: string,
  sigtermAt: number,
  requests: readonly RequestRecord[],
  moves: Recorder['moves'],
): PodShutdown {
  const connectionsMoved = moves.filter((c) => c.pod === pod && c.t >= sigtermAt).length
  let inFlightAtSigterm = 0
  let servedInLameDuck = 0
  let failedAfterSigterm = 0
  let retriedAway = 0
  for (const request of requests) {
    if (request.pod !== pod) {
      const tried = request.ingress?.pods ?? []
      if (tried.includes(pod) && request.end > sigtermAt) retriedAway++
      continue
    }
    if (request.start < sigtermAt && request.end > sigtermAt) inFlightAtSigterm++
    else if (request.start >= sigtermAt) {
      if (request.outcome === 'ok') servedInLameDuck++
      else failedAfterSigterm++
    }
  }
  return {
    inFlightAtSigterm,
    servedInLameDuck,
    failedAfterSigterm,
    connectionsMoved,
    ...(retriedAway > 0 ? { retriedAway } : {}),
    exercised:
      inFlightAtSigterm + servedInLameDuck + failedAfterSigterm + connectionsMoved + retriedAway >
      0,
  }
}
