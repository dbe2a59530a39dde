// The text summary printed at the end of a run.
import { formatDuration } from '../options.js'
import { OUTCOME_LABELS, OUTCOMES } from '../recorder.js'
import type { LabResult, PodSummary } from '../result.js'
import { count, latency, podEnd, rate, seconds, span } from './format.js'

export function settingsLines(result: LabResult): string[] {
  const s = result.settings
  const paths = s.paths.map(
    (p) =>
      `${s.paths.length === 1 ? '' : `${p.weight}:`}${p.method === 'POST' ? 'POST ' : ''}${p.path}`,
  )
  const clients = s.clients.map((c) => (s.clients.length === 1 ? c.kind : `${c.weight}:${c.kind}`))
  return [
    `${s.replicas} replicas, ${s.rollouts} rolling update${s.rollouts === 1 ? '' : 's'}, maxSurge ${s.maxSurge} (${s.resolved.maxSurge}), maxUnavailable ${s.maxUnavailable} (${s.resolved.maxUnavailable}), minReady ${formatDuration(s.minReadyMs)}`,
    `grace period ${formatDuration(s.gracePeriodMs)}, preStop sleep ${formatDuration(s.preStopSleepMs)}, readiness GET ${s.readiness.path} every ${formatDuration(s.readiness.periodMs)}, propagation ${formatDuration(s.propagationDelayMs)} ± ${formatDuration(s.propagationJitterMs)}`,
    `${count(s.rate)} req/s, requests ${paths.join(' ')}, timeout ${formatDuration(s.timeoutMs)}`,
    `clients ${clients.join(' ')}; ${s.pools} pool${s.pools === 1 ? '' : 's'} of up to ${s.connections} keep-alive connections per pooled kind`,
    ...(result.dataPath === undefined ? [] : [`service ${result.dataPath}`]),
    ...(result.ingress === undefined ? [] : [ingressLine(result.ingress)]),
    ...(s.from === undefined ? [] : [fromLine(s.from)]),
  ]
}

function fromLine(from: NonNullable<LabResult['settings']['from']>): string {
  const by = new Map<string, string[]>()
  for (const [setting, origin] of Object.entries(from.origins)) {
    const kind = origin === 'default' ? 'default' : origin.startsWith('--') ? 'flags' : 'manifest'
    by.set(kind, [...(by.get(kind) ?? []), kind === 'manifest' ? `${setting} ${origin}` : setting])
  }
  const part = (kind: string, label: string) =>
    by.has(kind) ? [`${label}: ${by.get(kind)!.join(', ')}`] : []
  return `from ${from.file}: ${[...part('manifest', 'manifest'), ...part('flags', 'flags'), ...part('default', 'defaults')].join('; ')}`
}

function ingressLine(ingress: NonNullable<LabResult['ingress']>): string {
  const head = `ingress ${ingress.kind}: ${count(ingress.retriedOk)} requests retried by the ingress on another pod and ok; ${count(ingress.passedOn)} failures answered 502/503/504 by the ingress (${count(ingress.passedOnAfterRetry)} after it tried another pod)`
  if (ingress.updates === 'runtime-api') {
    return `${head}; ${count(ingress.closedUnlogged ?? 0)} client connections closed by the ingress without an answer or a log line (a pod closed the connection under a request that was not the first on it); endpoint changes by its runtime API, no reload`
  }
  return `${head}; ${count(ingress.atReload ?? 0)} failures at a reload, not logged by ${ingress.kind} (client connections dropped at the switch of workers, or closed by old workers shutting down: the lab's ingress's own); ${count(ingress.reloads)} reloads`
}

export function verdictLine(result: LabResult): string {
  const { verdict } = result
  const failed = `${count(verdict.failed)} failed request${verdict.failed === 1 ? '' : 's'}`
  if (result.interrupted === true) return `INTERRUPTED: ${failed} until then`
  if (result.error !== undefined) return `FAIL: the run stopped early (${failed} until then)`
  if (verdict.status === 'inconclusive') {
    const n = verdict.unexercisedPods.length
    const reasons: string[] = []
    if (n > 0) {
      // Kinds that hold few long-lived connections (h2, ws) reach more pods with more pools.
      const advice = result.settings.clients.every((c) => c.kind === 'h2' || c.kind === 'ws')
        ? 'raise --rate or --pools'
        : 'raise --rate or add --client new-connection'
      reasons.push(
        `${n} deleted pod${n === 1 ? '' : 's'} carried no request across ${n === 1 ? 'its' : 'their'} shutdown (${verdict.unexercisedPods.join(', ')}); ${advice}`,
      )
    }
    if (verdict.undelivered > 0) {
      reasons.push(
        `the lab could not deliver ${count(verdict.undelivered)} request${verdict.undelivered === 1 ? '' : 's'} (its own process was too busy to accept the connections); lower --rate or use a less busy machine`,
      )
    }
    return `INCONCLUSIVE: ${failed}, but ${reasons.join('; and ')}`
  }
  return verdict.pass
    ? `PASS: ${failed} (--max-failures ${verdict.maxFailures})`
    : `FAIL: ${failed}, more than --max-failures ${verdict.maxFailures}`
}

/** PASS only: the smallest headroom, the time between the Service's last routed connection and the exit. */
export function headroomLine(result: LabResult): string | undefined {
  const pods = result.pods.filter((p) => p.headroomMs !== undefined)
  if (!result.verdict.pass || pods.length === 0) return undefined
  const least = pods.reduce((a, b) => (a.headroomMs! <= b.headroomMs! ? a : b))
  return `every deleted pod exited after the Service stopped routing to it; least headroom ${seconds(least.headroomMs)} s (${least.name})`
}

function table(rows: string[][], rightAligned: ReadonlySet<number>): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)))
  return rows.map((row) =>
    row
      .map((cell, i) => (rightAligned.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  )
}

export function podRows(pods: PodSummary[]): string[] {
  const rows = [
    [
      'pod',
      'rev',
      'start',
      'ready',
      'delete',
      'SIGTERM',
      'exit',
      'how it ended',
      'exit after',
      'ok',
      'failed',
      'in flight@TERM',
      'lame duck ok',
      'headroom',
    ],
    ...pods.map((pod) => [
      pod.name,
      String(pod.revision),
      seconds(pod.startedAt),
      seconds(pod.readyAt),
      seconds(pod.deletedAt),
      seconds(pod.sigtermAt),
      seconds(pod.exitedAt),
      podEnd(pod),
      pod.timeToExitMs === undefined ? '-' : `${seconds(pod.timeToExitMs)} s`,
      count(pod.ok),
      count(pod.failed),
      pod.shutdown === undefined ? '-' : count(pod.shutdown.inFlightAtSigterm),
      pod.shutdown === undefined ? '-' : lameDuck(pod.shutdown),
      pod.headroomMs === undefined ? '-' : `${seconds(pod.headroomMs)} s`,
    ]),
  ]
  return table(rows, new Set([1, 2, 3, 4, 5, 6, 8, 9, 10, 11, 12, 13]))
}

function lameDuck(shutdown: NonNullable<LabResult['pods'][number]['shutdown']>): string {
  // Results written before moved connections were counted have no such field.
  const moved = shutdown.connectionsMoved ?? 0
  return `${count(shutdown.servedInLameDuck)}${moved > 0 ? ` +${count(moved)} moved` : ''}`
}

/** The whole text report. */
export function renderText(result: LabResult): string {
  const lines: string[] = []
  lines.push(`lameduck rollout — ${result.settings.name}: ${verdictLine(result)}`)
  lines.push('')
  lines.push(`command   ${result.command.join(' ')}`)
  const [first, ...rest] = settingsLines(result)
  lines.push(`settings  ${first}`, ...rest.map((line) => `          ${line}`))
  if (result.load !== undefined) {
    const load = result.load
    lines.push(
      `load      ${count(load.sent)} requests in ${seconds(load.stoppedAt - load.startedAt, 1)} s: ${load.achievedRate} req/s achieved of ${load.targetRate}${load.behind ? ' (BEHIND)' : ''}`,
    )
  }
  lines.push('')
  lines.push('requests')
  const width = Math.max(...OUTCOMES.map((o) => OUTCOME_LABELS[o].length))
  const numberWidth = count(result.requests).length
  for (const outcome of OUTCOMES) {
    lines.push(
      `  ${OUTCOME_LABELS[outcome].padEnd(width)}  ${count(result.outcomes[outcome]).padStart(numberWidth)}`,
    )
  }
  lines.push(`  ${'total'.padEnd(width)}  ${count(result.requests).padStart(numberWidth)}`)
  lines.push(`success rate  ${rate(result.successRate)}`)
  if ((result.retried ?? 0) > 0) {
    lines.push(
      `retried       ${count(result.retried!)} sent again because the server had not processed them (REFUSED_STREAM, a WebSocket closed before the answer); counted by their final outcome`,
    )
  }
  if (result.latencyMs !== undefined) {
    const l = result.latencyMs
    lines.push(
      `latency (ok)  p50 ${latency(l.p50)}   p99 ${latency(l.p99)}   max ${latency(l.max)}`,
    )
  }
  const kinds = (title: string, rows: LabResult['byClient']) => {
    const width = Math.max(...rows.map((r) => r.key.length))
    lines.push(title)
    for (const row of rows) {
      lines.push(
        `  ${row.key.padEnd(width)}  ${count(row.failed).padStart(numberWidth)} failed of ${count(row.sent)}`,
      )
    }
  }
  lines.push('')
  kinds('by client kind', result.byClient)
  kinds('by request', result.byRequest)
  if (result.diagnosis.length > 0) {
    lines.push('')
    lines.push('diagnosis')
    for (const d of result.diagnosis) lines.push(`  - ${d.sentence}`)
  }
  lines.push('')
  lines.push(
    'pods (times in s since the lab started; in flight@TERM: requests in flight at its SIGTERM; lame duck ok: requests sent after SIGTERM it answered, + the WebSockets and HTTP/2 sessions it moved cleanly (close 1001, GOAWAY); headroom: exit minus the moment the Service stopped routing to it)',
  )
  lines.push(...podRows(result.pods).map((line) => `  ${line}`))
  if (result.rollouts.length > 0) {
    lines.push('')
    lines.push(
      `rolling updates  ${result.rollouts
        .map((r) => `${r.index}: ${span(r.startedAt, r.completedAt, 1)}`)
        .join('   ')}`,
    )
  }
  const failures = result.failures.slice(0, 5)
  if (failures.length > 0) {
    lines.push('')
    lines.push(`first failed requests (all ${count(result.failed)} are in --json)`)
    for (const f of failures) {
      lines.push(
        `  ${span(f.start, f.end)}  ${OUTCOME_LABELS[f.outcome]}  ${f.method} ${f.path}  ${f.client}${f.reused ? ' (reused connection)' : ''}  pod ${f.pod ?? '-'}  ${f.message ?? ''}`.trimEnd(),
      )
    }
  }
  for (const warning of result.warnings) lines.push('', `warning: ${warning}`)
  if (result.error !== undefined) lines.push('', `error: ${result.error}`)
  const headroom = headroomLine(result)
  if (headroom !== undefined) lines.push('', headroom)
  lines.push('')
  lines.push(`verdict   ${verdictLine(result)}`)
  return lines.join('\n')
}
