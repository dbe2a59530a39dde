// Diagnosis: each failed request is put in the one cluster whose mechanism explains it (the
// first rule that matches, in the order below), and each cluster becomes one sentence that
// names the mechanism, gives the numbers and says what fixes it.
//
//   1. kept-alive  SIGKILLed at the grace period, on a pod that kept answering requests on
//                  its kept-alive connections long after SIGTERM (after the Service stopped
//                  routing to it, into the second half of the grace period): it never closed
//                  them, so it never exited (a bare server.close() does this)
//   1b. sigkill    the pod was SIGKILLed at the grace period while the request was in flight
//   2. refused     routed to a pod whose listener had closed, before the Service stopped routing
//   3. no-endpoint the Service had no ready endpoint
//   4. keep-alive  a request sent on a reused keep-alive connection the pod closed
//   5. cut         in flight when the pod's process exited
//   5b. ws-cut     a WebSocket cut without a close frame (or closed with an unclean code)
//                  by a pod after its SIGTERM
//   6. http-5xx    an error status from a pod after SIGTERM
//   7. overload    timed out on a pod that was not being deleted: not a shutdown failure, but
//                  the pods (or the lab) could not keep up with the rate on this machine
//   8. timeout     no complete response within --timeout, around a pod's shutdown
//   8b. unreachable sent to the address of a pod whose network namespace was gone, while the
//                  Service still routed to it (--service iptables: no RST comes back)
//   9. other       whatever is left, by outcome
//
// Behind an ingress (--ingress), a 502/503/504 the proxy answered itself (or a client
// connection it closed without an answer) is the proxy's answer, not the pod's: it goes first
// into one of the ingress clusters, by what the proxy logged of the pod, and its sentence says
// so (e.g. "nginx answered 502: the pod closed the connection before answering"):
//   0a. ingress-connect     the proxy could not connect to the pod (refused, or gone)
//   0b. ingress-closed      the pod closed or reset the connection before answering
//   0c. ingress-timeout     the pod did not answer within the proxy's timeout
//   0d. ingress-no-endpoint the proxy had no endpoint to send the request to
//   0e. ingress-no-live     nginx had marked every endpoint failed after earlier errors
//   0g. ingress-reload      dropped by a reload of the lab's nginx (its own failure)
//   0h. ingress-retrying    timed out at the client while the proxy, whose first attempts
//                           failed, was still trying pods (it logs only the last one tried)
//   0f. ingress-other       any other error the proxy answered itself
import type { PodRecord } from './kubelet.js'
import { formatDuration } from './options.js'
import { OUTCOME_LABELS, type RequestRecord } from './recorder.js'

export type Mechanism =
  | 'ingress-connect'
  | 'ingress-closed'
  | 'ingress-timeout'
  | 'ingress-no-endpoint'
  | 'ingress-no-live'
  | 'ingress-other'
  | 'ingress-reload'
  | 'ingress-retrying'
  | 'kept-alive'
  | 'sigkill'
  | 'refused'
  | 'no-endpoint'
  | 'keep-alive'
  | 'cut'
  | 'ws-cut'
  | 'http-5xx'
  | 'overload'
  | 'timeout'
  | 'unreachable'
  | 'other'

export interface Diagnosis {
  mechanism: Mechanism
  /** Failed requests in this cluster. */
  count: number
  /** Of those, POSTs: a client must not retry them, so each is an error seen by a user. */
  posts: number
  /** Pods the cluster's requests were routed to. */
  pods: string[]
  /** One sentence: the mechanism, the numbers, then `→` and the fix. */
  sentence: string
}

/** The pod timestamps the diagnosis reads, with when the Service stopped routing to it. */
export interface DiagnosedPod extends PodRecord {
  endpointRemovedAt?: number
}

export interface DiagnosisContext {
  pods: readonly DiagnosedPod[]
  propagationDelayMs: number
  propagationJitterMs: number
  gracePeriodMs: number
  preStopSleepMs: number
  timeoutMs: number
}

/** A request ending this close to a pod's exit (or SIGKILL) was ended by it. */
const EXIT_PROXIMITY_MS = 250
/** Margin added to the propagation delay plus jitter in the advised drain delay. */
const DRAIN_MARGIN_MS = 250

const s1 = (ms: number) => (ms / 1_000).toFixed(1)

function range(values: number[]): string {
  if (values.length === 0) return '?'
  const low = Math.min(...values)
  const high = Math.max(...values)
  return s1(low) === s1(high) ? `${s1(low)} s` : `${s1(low)}–${s1(high)} s`
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`
}

/** The drain delay advised: above the propagation delay plus jitter, rounded up to 0.5 s. */
export function advisedDrainMs(context: DiagnosisContext): number {
  const needed = context.propagationDelayMs + context.propagationJitterMs + DRAIN_MARGIN_MS
  return Math.ceil(needed / 500) * 500
}

/** What a pod answered on the connections it kept, for telling a pod that never closed its
 * kept-alive connections from one busy with long requests when SIGKILL came. */
interface AfterSigterm {
  /** ok requests sent after SIGTERM and after the Service stopped routing new connections to
   * the pod: only connections opened before can have carried them */
  onKeptConnections: number
  /** end of the last of those */
  lastEnd: number
}

function answeredOnKeptConnections(
  requests: readonly RequestRecord[],
  pods: ReadonlyMap<string, DiagnosedPod>,
): Map<string, AfterSigterm> {
  const out = new Map<string, AfterSigterm>()
  for (const r of requests) {
    if (r.outcome !== 'ok' || r.pod === undefined) continue
    const pod = pods.get(r.pod)
    if (pod?.sigtermAt === undefined) continue
    if (r.start < Math.max(pod.sigtermAt, pod.endpointRemovedAt ?? pod.sigtermAt)) continue
    const entry = out.get(r.pod) ?? { onKeptConnections: 0, lastEnd: 0 }
    entry.onKeptConnections++
    entry.lastEnd = Math.max(entry.lastEnd, r.end)
    out.set(r.pod, entry)
  }
  return out
}

/** SIGKILLed, and still answering on kept-alive connections in the second half of its grace. */
function keptServing(pod: DiagnosedPod, after: AfterSigterm | undefined): boolean {
  if (pod.sigkillAt === undefined || pod.sigtermAt === undefined || after === undefined) {
    return false
  }
  const halfway = pod.sigtermAt + (pod.sigkillAt - pod.sigtermAt) / 2
  return after.onKeptConnections > 0 && after.lastEnd >= halfway
}

function classifyOne(
  f: RequestRecord,
  pod: DiagnosedPod | undefined,
  after: AfterSigterm | undefined,
): Mechanism {
  if (f.ingress?.error !== undefined) return `ingress-${f.ingress.error}`
  if (f.ingress?.reload === true) return 'ingress-reload'
  if (f.outcome === 'timeout' && (f.ingress?.tried ?? 0) > 1) return 'ingress-retrying'
  if (f.outcome === 'refused' && f.pod === undefined) return 'no-endpoint'
  if (f.outcome === 'refused' && /no ready endpoint/.test(f.message ?? '')) return 'no-endpoint'
  if (pod === undefined) return f.outcome === 'timeout' ? 'timeout' : 'other'
  if (
    pod.sigkillAt !== undefined &&
    f.start < pod.sigkillAt &&
    f.end >= pod.sigkillAt - 1 &&
    f.end <= pod.sigkillAt + EXIT_PROXIMITY_MS
  ) {
    // A request sent before SIGTERM and still running at SIGKILL is a long request; one sent
    // after it reached the pod only because the pod kept its connections.
    const sentAfterSigterm = pod.sigtermAt !== undefined && f.start >= pod.sigtermAt
    return sentAfterSigterm && keptServing(pod, after) ? 'kept-alive' : 'sigkill'
  }
  if (f.outcome === 'refused') return 'refused'
  if (/EHOSTUNREACH/.test(f.message ?? '') && pod.exitedAt !== undefined && f.end >= pod.exitedAt) {
    return 'unreachable'
  }
  const terminating = pod.sigtermAt !== undefined && f.end >= pod.sigtermAt
  if (terminating && (f.websocket === 'cut' || f.websocket === 'closed')) return 'ws-cut'
  if ((f.outcome === 'hang_up' || f.outcome === 'reset') && terminating) {
    // No response had started on a connection that had carried requests before: the pod
    // closed a keep-alive connection the client had just sent a request on.
    if (f.reused === true && f.status === undefined && f.start >= pod.sigtermAt!) {
      return 'keep-alive'
    }
    if (pod.exitedAt !== undefined && Math.abs(f.end - pod.exitedAt) <= EXIT_PROXIMITY_MS) {
      return 'cut'
    }
    if (f.reused === true && f.status === undefined) return 'keep-alive'
    return 'cut'
  }
  if (f.outcome === 'http_5xx' && terminating) return 'http-5xx'
  if (f.outcome === 'timeout' && (pod.deletedAt === undefined || f.end < pod.deletedAt)) {
    return 'overload'
  }
  if (f.outcome === 'timeout') return 'timeout'
  return 'other'
}

/** Clusters the failed requests and writes one sentence per cluster, largest first. */
export function diagnose(
  requests: readonly RequestRecord[],
  context: DiagnosisContext,
): Diagnosis[] {
  const pods = new Map(context.pods.map((pod) => [pod.name, pod]))
  const okLatencies = requests
    .filter((r) => r.outcome === 'ok')
    .map((r) => r.end - r.start)
    .sort((a, b) => a - b)
  const p99 = okLatencies[Math.max(0, Math.ceil(okLatencies.length * 0.99) - 1)] ?? 0
  const after = answeredOnKeptConnections(requests, pods)
  const clusters = new Map<Mechanism, RequestRecord[]>()
  for (const request of requests) {
    if (request.outcome === 'ok') continue
    const mechanism = classifyOne(
      request,
      request.pod === undefined ? undefined : pods.get(request.pod),
      request.pod === undefined ? undefined : after.get(request.pod),
    )
    const list = clusters.get(mechanism) ?? []
    list.push(request)
    clusters.set(mechanism, list)
  }
  const out: Diagnosis[] = []
  for (const [mechanism, failures] of clusters) {
    const podNames = [...new Set(failures.flatMap((f) => (f.pod === undefined ? [] : [f.pod])))]
    const clusterPods = podNames.map((name) => pods.get(name)!).filter((p) => p !== undefined)
    const posts = failures.filter((f) => f.method === 'POST').length
    let sentence = sentenceFor(mechanism, failures, clusterPods, { ...context, p99, after })
    if (posts > 0) {
      sentence = sentence.replace(
        ' →',
        `; ${posts} of them POST${posts === 1 ? '' : 's'}, which no client may retry →`,
      )
    }
    out.push({ mechanism, count: failures.length, posts, pods: podNames, sentence })
  }
  return out.sort((a, b) => b.count - a.count)
}

/** Outcomes of a cluster, e.g. "socket hang up" or "5 socket hang up, 2 connection reset". */
function outcomes(failures: readonly RequestRecord[]): string {
  const counts = new Map<string, number>()
  for (const f of failures) counts.set(f.outcome, (counts.get(f.outcome) ?? 0) + 1)
  if (counts.size === 1) return `${failures.length} ${OUTCOME_LABELS[failures[0]!.outcome]}`
  return [...counts]
    .map(([o, n]) => `${n} ${OUTCOME_LABELS[o as keyof typeof OUTCOME_LABELS]}`)
    .join(', ')
}

function sentenceFor(
  mechanism: Mechanism,
  failures: readonly RequestRecord[],
  pods: readonly DiagnosedPod[],
  context: DiagnosisContext & { p99: number; after: ReadonlyMap<string, AfterSigterm> },
): string {
  const n = failures.length
  const onPods = plural(pods.length, 'pod')
  switch (mechanism) {
    case 'ingress-connect':
    case 'ingress-closed':
    case 'ingress-timeout':
    case 'ingress-no-endpoint':
    case 'ingress-no-live':
    case 'ingress-other':
      return ingressSentence(mechanism, failures, pods, context)
    case 'ingress-retrying': {
      const proxy = failures[0]?.ingress?.proxy ?? 'the ingress'
      const how =
        proxy === 'haproxy'
          ? 'haproxy retries a failed connection up to 3 times, min(timeout connect, 1 s) apart, the last on another pod'
          : `${proxy} tries the next pod at once, but waits up to its connect timeout for an address that does not answer`
      return `${n} timed out at the client (no complete response within ${formatDuration(context.timeoutMs)}) while ${proxy} was still trying pods: its first attempts failed — refused, or no answer from the address of a pod whose sandbox was gone (no reset comes back) — and ${how}; its log names only the last pod tried → keep the listener open and serving for longer than the propagation delay to the ingress (drainDelay ≥ ${formatDuration(advisedDrainMs(context))} here: ${formatDuration(context.propagationDelayMs)} ± ${formatDuration(context.propagationJitterMs)} plus a margin)`
    }
    case 'ingress-reload':
      return `${outcomes(failures)} at reloads of the lab's nginx, which never logged them: client connections it dropped at the switch of workers, or closed as an old worker shut down — the lab's ingress's own failures, not the service's (ingress-nginx does not reload for endpoint changes; --ingress haproxy applies them without a reload) → nothing to change in the service for these`
    case 'kept-alive': {
      const answered = pods.map((p) => context.after.get(p.name)?.onKeptConnections ?? 0)
      const lastBeforeKill = pods.flatMap((p) => {
        const last = context.after.get(p.name)?.lastEnd
        return last === undefined || p.sigkillAt === undefined
          ? []
          : [Math.max(0, p.sigkillAt - last)]
      })
      const grace = formatDuration(context.gracePeriodMs)
      return `SIGKILL at the grace period (${grace}) cut ${plural(n, 'request')} on ${onPods} still serving on kept-alive connections after SIGTERM: they answered ${answered.join(', ')} requests sent after the Service had stopped routing to them, on connections opened before, the last ${range(lastBeforeKill)} before SIGKILL; they never closed those connections, so they never exited (a bare server.close() stops the listener but leaves busy keep-alive connections open) → a longer grace period would not help: during the drain send \`Connection: close\` on every response and close idle keep-alive connections (server.closeIdleConnections()), then exit once the last connection is gone — lameduck does both`
    }
    case 'sigkill': {
      const after = pods.flatMap((p) =>
        p.sigkillAt !== undefined && p.sigtermAt !== undefined ? [p.sigkillAt - p.sigtermAt] : [],
      )
      return `SIGKILL at the grace period cut ${plural(n, 'request')} on ${onPods}, ${range(after)} after SIGTERM → finish the shutdown within terminationGracePeriodSeconds (${formatDuration(context.gracePeriodMs)}, preStop included), or raise it above the drain delay plus the longest request`
    }
    case 'refused': {
      // Per pod: its first refused connection (the listener was closed by then) and how long
      // the Service kept routing new connections to it afterwards.
      const closed: number[] = []
      const routed: number[] = []
      for (const pod of pods) {
        const first = Math.min(...failures.filter((f) => f.pod === pod.name).map((f) => f.end))
        if (pod.sigtermAt !== undefined) closed.push(Math.max(0, first - pod.sigtermAt))
        if (pod.endpointRemovedAt !== undefined) {
          routed.push(Math.max(0, pod.endpointRemovedAt - first))
        }
      }
      const drain = formatDuration(advisedDrainMs(context))
      return `${n} refused: sent to ${onPods} whose listener had closed ${range(closed)} after SIGTERM while the Service still routed new connections to them for ${range(routed)} more → keep the listener open and serving for longer than the propagation delay (drainDelay ≥ ${drain} here: ${formatDuration(context.propagationDelayMs)} ± ${formatDuration(context.propagationJitterMs)} plus a margin)`
    }
    case 'no-endpoint': {
      const times = failures.map((f) => f.end)
      return `${n} refused: the Service had no ready endpoint at ${range(times)} → keep enough pods ready during the update (maxUnavailable below replicas, readiness that passes as soon as the pod serves)`
    }
    case 'keep-alive': {
      const after: number[] = []
      let whileRouted = 0
      for (const f of failures) {
        const pod = pods.find((p) => p.name === f.pod)
        if (pod?.sigtermAt !== undefined) after.push(f.end - pod.sigtermAt)
        if (pod?.endpointRemovedAt === undefined || f.end < pod.endpointRemovedAt) whileRouted++
      }
      const head = `${outcomes(failures)} on reused keep-alive connections that ${onPods} closed ${range(after)} after SIGTERM just as the client sent a request on them`
      if (failures.every((f) => f.client === 'h2')) {
        return `${head} → send every HTTP/2 session a graceful GOAWAY at SIGTERM (NO_ERROR, last stream id 2^31−1, then the real one after a PING) so clients open new sessions elsewhere, and keep serving until the Service stops routing to the pod`
      }
      if (whileRouted > 0) {
        return `${head}, ${whileRouted} while the Service still routed to the pod → send \`Connection: close\` on every response during the drain and keep serving until the Service stops routing to the pod`
      }
      return `${head}, after the Service stopped routing to the pod: closing a connection the client may reuse races with its next request → send \`Connection: close\` on every response during the drain so clients stop reusing connections, and close a connection that stayed idle only once it has been idle longer than the keep-alive timeout the server advertises (Keep-Alive: timeout=N), so the client drops it first`
    }
    case 'cut': {
      const exits = pods.flatMap((p) =>
        p.exitedAt !== undefined && p.sigtermAt !== undefined ? [p.exitedAt - p.sigtermAt] : [],
      )
      const responding = failures.filter((f) => f.status !== undefined).length
      const detail = responding > 0 ? `, ${responding} of them mid-response (streamed or slow)` : ''
      return `${outcomes(failures)}: in flight when ${onPods} exited ${range(exits)} after SIGTERM${detail} → stop accepting new connections first, then wait for every in-flight request, streamed responses included, before exiting`
    }
    case 'ws-cut': {
      const cut = failures.filter((f) => f.websocket === 'cut').length
      const closed = n - cut
      const what = [
        cut > 0 ? `${plural(cut, 'WebSocket')} cut without a close frame` : '',
        closed > 0 ? `${plural(closed, 'WebSocket')} closed with a code other than 1000/1001` : '',
      ]
        .filter(Boolean)
        .join(', ')
      const after = failures.flatMap((f) => {
        const pod = pods.find((p) => p.name === f.pod)
        return pod?.sigtermAt === undefined ? [] : [f.end - pod.sigtermAt]
      })
      return `${what} by ${onPods}, ${range(after)} after SIGTERM → at SIGTERM close every WebSocket with 1001 "going away" so its client reconnects through the Service (lameduck: webSockets(ld, wss)), and wait for the close handshakes before exiting`
    }
    case 'http-5xx':
      return `${n} HTTP 5xx answered by ${onPods} after SIGTERM → keep answering requests normally during the drain; only the readiness probe should answer 503`
    case 'overload':
      return `${n} timed out on ${onPods} that ${pods.length === 1 ? 'was' : 'were'} not being deleted (no complete response within ${formatDuration(context.timeoutMs)}; p99 latency of the ok requests ${s1(context.p99)} s): not a shutdown failure — the pods or the lab could not keep up with the rate on this machine → lower --rate, or run on a less busy machine`
    case 'timeout':
      return `${n} timed out: no complete response within ${formatDuration(context.timeoutMs)} (--timeout)${pods.length > 0 ? ` from ${onPods}` : ''} → a pod that stops reading or answering without closing leaves clients waiting; close connections you will not serve`
    case 'unreachable': {
      const routed = pods.flatMap((p) =>
        p.endpointRemovedAt !== undefined && p.exitedAt !== undefined
          ? [Math.max(0, p.endpointRemovedAt - p.exitedAt)]
          : [],
      )
      const drain = formatDuration(advisedDrainMs(context))
      return `${outcomes(failures)} with EHOSTUNREACH: sent to the address of ${onPods} that had exited (their network namespace gone, so no reset came back) while the Service still routed new connections to them for ${range(routed)} more → keep the listener open and serving for longer than the propagation delay (drainDelay ≥ ${drain} here: ${formatDuration(context.propagationDelayMs)} ± ${formatDuration(context.propagationJitterMs)} plus a margin)`
    }
    case 'other':
      return `${outcomes(failures)} not explained by a pod's shutdown (${failures
        .slice(0, 2)
        .map((f) => f.message ?? f.outcome)
        .join('; ')}) → see the failed requests below`
  }
}

/** What each proxy resends on its own, for the sentence of a failure it passed on. */
const PROXY_RETRIES: Record<string, string> = {
  nginx:
    'nginx resends a request whose pod failed before answering to another pod only when the request is idempotent (proxy_next_upstream error timeout: never a POST once sent)',
  haproxy:
    'haproxy resends a request only when its connection to the pod failed before the request was sent (retry-on conn-failure, its default), never one the pod closed under it, GET or POST',
}

/** The sentence of a failure an ingress answered itself: the proxy's answer, and why. */
function ingressSentence(
  mechanism: Mechanism,
  failures: readonly RequestRecord[],
  pods: readonly DiagnosedPod[],
  context: DiagnosisContext,
): string {
  const proxy =
    failures.find((f) => f.ingress?.proxy !== undefined)?.ingress?.proxy ?? 'the ingress'
  const answered = failures.filter((f) => f.status !== undefined)
  const statuses = [...new Set(answered.map((f) => f.status))].sort().join('/')
  const closedQuietly = failures.length - answered.length
  const parts: string[] = []
  if (answered.length > 0)
    parts.push(`${proxy} answered ${statuses} to ${plural(answered.length, 'request')}`)
  if (closedQuietly > 0) {
    parts.push(
      `${proxy} closed the client's connection without an answer under ${plural(closedQuietly, 'request')} (what it does, instead of a 502, when the pod closes the connection under a request that was not the first on it)`,
    )
  }
  const head = parts.join(', and ')
  const onPods = plural(pods.length, 'pod')
  const afterSigterm = (f: RequestRecord) => {
    const pod = pods.find((p) => p.name === f.pod)
    return pod?.sigtermAt === undefined ? [] : [Math.max(0, f.end - pod.sigtermAt)]
  }
  const drain = formatDuration(advisedDrainMs(context))
  switch (mechanism) {
    case 'ingress-connect':
      return `${head}: it could not connect to ${onPods} (their listener had closed, or their address was gone) ${range(failures.flatMap(afterSigterm))} after SIGTERM while it still routed requests to them, and its retries found no other pod → keep the listener open and serving for longer than the propagation delay to the ingress (drainDelay ≥ ${drain} here: ${formatDuration(context.propagationDelayMs)} ± ${formatDuration(context.propagationJitterMs)} plus a margin)`
    case 'ingress-closed':
      return `${head}: ${pods.length > 0 ? onPods : 'the pods'} closed or reset the connection before answering${pods.length > 0 ? `, ${range(failures.flatMap(afterSigterm))} after SIGTERM` : ''} (in flight when the pod exited, or sent on a kept-alive connection the pod closed); ${PROXY_RETRIES[proxy] ?? 'the ingress did not resend them'} → wait for every in-flight request before exiting, and during the drain answer with \`Connection: close\` rather than closing the ingress's kept-alive connections under it`
    case 'ingress-timeout':
      return `${head}: ${onPods} did not answer within the ingress's timeout → answer or close every request; a pod that stops answering without closing leaves the ingress waiting`
    case 'ingress-no-endpoint':
      return `${head}: it had no ready endpoint to send them to → keep enough pods ready during the update (maxUnavailable below replicas, readiness that passes as soon as the pod serves)`
    case 'ingress-no-live':
      return `${head}: it had no pod left to try, having marked every pod of its upstream failed after an earlier error (nginx's passive health check: max_fails 1 within fail_timeout 10 s, its defaults) → these follow from the pods' other failures in this diagnosis: fix those and these go with them`
    default: {
      const states = [...new Set(failures.map((f) => f.ingress?.upstreamStatus ?? ''))]
        .filter(Boolean)
        .slice(0, 3)
        .join(', ')
      return `${head} for another reason (${states || 'not logged'}) → see the failed requests below`
    }
  }
}
