// The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched).
// The chart shares one time axis across four panels: request rate, failures (one tick per
// failed request, so a single one is visible), Service endpoints against ready pods, and one
// lifecycle band per pod. Rolling updates are shaded across all of them.
import { formatDuration } from '../options.js'
import { type FailureClass, OUTCOME_LABELS, OUTCOMES } from '../recorder.js'
import { failuresByClass, type LabResult, type PodSummary } from '../result.js'
import { count, latency, podEnd, rate, seconds, span } from './format.js'
import { headroomLine, settingsLines, verdictLine } from './text.js'

/** Failed requests listed in the table (all are in the JSON). */
const FAILURES_IN_TABLE = 100

// Okabe & Ito's palette, distinct for the common colour-vision deficiencies; failures never
// differ from ok by red/green alone, and an endpoint of an exited pod is dark grey, not the
// vermillion of "connection refused".
export const COLORS = {
  ok: '#009E73',
  http_5xx: '#000000',
  refused: '#D55E00',
  reset: '#E69F00',
  hang_up: '#CC79A7',
  timeout: '#7A7A7A',
  other: '#0072B2',
  starting: '#DADADA',
  ready: '#A6DBCB',
  preStop: '#F0E442',
  terminating: '#A9D3F0',
  exited: '#4D4D4D',
  routed: '#000000',
  sigkill: '#000000',
  inFlight: '#0072B2',
  rollout: '#F2F2F2',
  grid: '#E6E6E6',
  axis: '#808080',
  text: '#1A1A1A',
  bad: '#B34700',
} as const

/** Line colours of the latency panel, one per request shape. */
const SERIES = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000']

// The chart is drawn for this width and scales with the page; at 800 px its text stays at
// 10 px or more, and below 720 px the figure scrolls instead of shrinking further.
const WIDTH = 960
/** The page's widest content: at 1280 px the tables get the room they need. */
const PAGE_WIDTH = 1_200
const MIN_WIDTH = 720
const LEFT = 180
const RIGHT = 16
const PLOT = WIDTH - LEFT - RIGHT

export function escapeHtml(text: string): string {
  return text
    .replaceAll('&', '&amp;')
    .replaceAll('<', '&lt;')
    .replaceAll('>', '&gt;')
    .replaceAll('"', '&quot;')
    .replaceAll("'", '&#39;')
}

const e = escapeHtml
const r1 = (n: number) => Math.round(n * 10) / 10

/** A "nice" step for about `target` ticks over `span`. */
function niceStep(span: number, target: number): number {
  const raw = span / Math.max(1, target)
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  for (const m of [1, 2, 5, 10]) if (raw <= m * magnitude) return m * magnitude
  return 10 * magnitude
}

/** The random suffix of a pod name: the template hash is the same for a whole revision. */
function shortPod(name: string): string {
  return name.split('-').at(-1) ?? name
}

function chart(result: LabResult): string {
  const duration = Math.max(result.durationMs, 1)
  const x = (t: number) => r1(LEFT + (Math.min(Math.max(t, 0), duration) / duration) * PLOT)
  const { buckets, bucketMs } = result.timeSeries
  const perSecond = 1_000 / bucketMs
  const parts: string[] = []
  let y = 26

  // Panel 1: requests per second.
  const rateHeight = 170
  const rateTop = y + 18
  const maxRate = Math.max(
    1,
    ...buckets.map(
      (b) => (b.ok + Object.values(b.failed).reduce((s, n) => s + (n ?? 0), 0)) * perSecond,
    ),
  )
  const rateStep = niceStep(maxRate, 4)
  const rateMax = Math.ceil(maxRate / rateStep) * rateStep
  const yRate = (v: number) => r1(rateTop + rateHeight - (v / rateMax) * rateHeight)
  parts.push(panelTitle(y, 'Requests per second, by outcome, as they ended (100 ms buckets)'))
  for (let v = 0; v <= rateMax; v += rateStep) {
    parts.push(gridLine(yRate(v), String(v)))
  }
  const okPath = buckets
    .map(
      (b, i) =>
        `${i === 0 ? 'M' : 'L'}${x(b.t)},${yRate(b.ok * perSecond)}L${x(b.t + bucketMs)},${yRate(b.ok * perSecond)}`,
    )
    .join('')
  parts.push(
    `<path d="M${x(0)},${yRate(0)}${okPath.replace(/^M/, 'L')}L${x(duration)},${yRate(0)}Z" fill="${COLORS.ok}" fill-opacity="0.35" stroke="${COLORS.ok}" stroke-width="1"><title>ok requests per second</title></path>`,
  )
  for (const b of buckets) {
    let base = b.ok * perSecond
    for (const cls of Object.keys(b.failed) as FailureClass[]) {
      const n = b.failed[cls] ?? 0
      if (n === 0) continue
      const top = base + n * perSecond
      parts.push(
        `<rect x="${x(b.t)}" y="${yRate(top)}" width="${Math.max(1.5, r1(x(b.t + bucketMs) - x(b.t)))}" height="${Math.max(1.5, r1(yRate(base) - yRate(top)))}" fill="${COLORS[cls]}"><title>${seconds(b.t, 1)} s: ${n} ${e(OUTCOME_LABELS[cls])}</title></rect>`,
      )
      base = top
    }
  }
  y = rateTop + rateHeight + 14
  y = latencyPanel(result, parts, x, y)

  // Panel 2: one tick per failed request, a row per failure class.
  const classes = failuresByClass(result).map(([cls]) => cls)
  parts.push(
    panelTitle(
      y,
      classes.length === 0
        ? 'Failed requests: none'
        : 'Failed requests (one tick each, when the client saw it fail)',
    ),
  )
  y += 18
  const tickRow = 16
  for (const cls of classes) {
    parts.push(
      `<text x="${LEFT - 8}" y="${y + 11}" text-anchor="end" class="label" fill="${COLORS[cls]}">${e(OUTCOME_LABELS[cls])} (${count(result.outcomes[cls])})</text>`,
      `<line x1="${LEFT}" x2="${LEFT + PLOT}" y1="${y + tickRow / 2}" y2="${y + tickRow / 2}" stroke="${COLORS.grid}"/>`,
    )
    for (const f of result.failures.filter((f) => f.outcome === cls)) {
      parts.push(
        `<line x1="${x(f.end)}" x2="${x(f.end)}" y1="${y + 2}" y2="${y + tickRow - 2}" stroke="${COLORS[cls]}" stroke-width="1.5"><title>${seconds(f.end)} s ${e(OUTCOME_LABELS[cls])}: ${f.method} ${e(f.path)} (${e(f.client)}, pod ${e(f.pod ?? '-')}) ${e(f.message ?? '')}</title></line>`,
      )
    }
    y += tickRow
  }
  y += 14

  // Panel 3: the endpoints the Service model routes new connections to, by the state of their
  // pod: a connection routed to a pod that has exited is refused.
  // At least 24 px a step: a change of one endpoint must read at a glance at 800 px.
  const stepTop = y + 18
  const maxPods = Math.max(1, ...buckets.map((b) => b.endpoints))
  const stepHeight = Math.max(120, 24 * maxPods)
  const yPods = (v: number) => r1(stepTop + stepHeight - (v / maxPods) * stepHeight)
  parts.push(
    panelTitle(y, 'Endpoints the Service routes new connections to, by the state of their pod'),
  )
  parts.push('<g class="endpoints">')
  for (let v = 0; v <= maxPods; v++) parts.push(gridLine(yPods(v), String(v)))
  const layers: [string, (b: (typeof buckets)[number]) => number, string][] = [
    [COLORS.ready, (b) => b.endpoints - b.endpointsTerminating - b.endpointsGone, 'ready pod'],
    [COLORS.terminating, (b) => b.endpointsTerminating, 'deleted pod, still running'],
    [COLORS.exited, (b) => b.endpointsGone, 'pod already exited: connections refused'],
  ]
  for (const b of buckets) {
    let base = 0
    for (const [color, value, what] of layers) {
      const n = value(b)
      if (n <= 0) continue
      parts.push(
        `<rect x="${x(b.t)}" y="${yPods(base + n)}" width="${r1(x(b.t + bucketMs) - x(b.t)) + 0.3}" height="${r1(yPods(base) - yPods(base + n))}" fill="${color}"><title>${seconds(b.t, 1)} s: ${n} endpoint${n === 1 ? '' : 's'} of a ${what}</title></rect>`,
      )
      base += n
    }
  }
  parts.push('</g>')
  y = stepTop + stepHeight + 14

  const flightHeight = 44
  const flightTop = y + 18
  const maxFlight = Math.max(1, ...buckets.map((b) => b.inFlight))
  const yFlight = (v: number) => r1(flightTop + flightHeight - (v / maxFlight) * flightHeight)
  parts.push(panelTitle(y, `Requests in flight (max ${maxFlight})`))
  parts.push(gridLine(yFlight(0), '0'), gridLine(yFlight(maxFlight), String(maxFlight)))
  parts.push(
    `<path d="${buckets.map((b, i) => `${i === 0 ? 'M' : 'L'}${x(b.t + bucketMs)},${yFlight(b.inFlight)}`).join('')}" fill="none" stroke="${COLORS.inFlight}" stroke-width="1.5"/>`,
  )
  y = flightTop + flightHeight + 14

  // Panel 4: pod lifecycles.
  parts.push(
    panelTitle(
      y,
      'Pods: starting, ready, preStop, after SIGTERM; the dark line is when the Service routes to it',
    ),
  )
  y += 20
  const row = 22
  const bandsTop = y
  result.pods.forEach((pod, i) => {
    parts.push(podBand(pod, bandsTop + i * row, x, duration, result))
  })
  y += result.pods.length * row
  const bandsBottom = y

  // Rolling updates, shaded behind everything (inserted first).
  const shades = result.rollouts.map(
    (ro) =>
      `<rect x="${x(ro.startedAt)}" y="22" width="${Math.max(2, r1(x(ro.completedAt ?? duration) - x(ro.startedAt)))}" height="${bandsBottom - 22}" fill="${COLORS.rollout}"/><text x="${x(ro.startedAt) + 3}" y="${bandsBottom + 14}" class="small" fill="#1864ab">update ${ro.index}</text>`,
  )
  const load = result.load
  const loadMarks =
    load === undefined
      ? ''
      : `<line x1="${x(load.startedAt)}" x2="${x(load.startedAt)}" y1="22" y2="${bandsBottom}" stroke="${COLORS.axis}" stroke-dasharray="3 3"/><line x1="${x(load.stoppedAt)}" x2="${x(load.stoppedAt)}" y1="22" y2="${bandsBottom}" stroke="${COLORS.axis}" stroke-dasharray="3 3"/><text x="${x(load.startedAt)}" y="16" class="small" text-anchor="middle">load on</text><text x="${x(load.stoppedAt)}" y="16" class="small" text-anchor="end">load stopped</text>`

  // Time axis.
  y = bandsBottom + 22
  const tStep = niceStep(duration / 1_000, 12) * 1_000
  const axis: string[] = [
    `<line x1="${LEFT}" x2="${LEFT + PLOT}" y1="${y}" y2="${y}" stroke="${COLORS.axis}"/>`,
  ]
  for (let t = 0; t <= duration; t += tStep) {
    axis.push(
      `<line x1="${x(t)}" x2="${x(t)}" y1="${y}" y2="${y + 5}" stroke="${COLORS.axis}"/><text x="${x(t)}" y="${y + 18}" text-anchor="middle" class="small">${r1(t / 1_000)} s</text>`,
      `<line x1="${x(t)}" x2="${x(t)}" y1="${bandsTop}" y2="${bandsBottom}" stroke="${COLORS.grid}" stroke-width="0.5"/>`,
    )
  }
  y += 30
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${y}" style="width:100%;min-width:${MIN_WIDTH}px;height:auto" role="img" aria-label="time series of the run">${shades.join('')}${loadMarks}${parts.join('')}${axis.join('')}</svg>`
}

/** Latency of the ok requests per request shape, p50 solid and p99 dashed, on a log scale. */
function latencyPanel(
  result: LabResult,
  parts: string[],
  x: (t: number) => number,
  top: number,
): number {
  const { latency, bucketMs } = result.timeSeries
  if (latency === undefined || latency.length === 0) return top
  const values = latency
    .flatMap((series) => [...series.p50, ...series.p99])
    .filter((v) => v !== null)
  const height = 130
  const plotTop = top + 18
  const lowExp = Math.floor(Math.log10(Math.max(0.1, Math.min(...values, 1))))
  const highExp = Math.max(lowExp + 1, Math.ceil(Math.log10(Math.max(...values, 1))))
  const y = (ms: number) =>
    r1(
      plotTop +
        height -
        ((Math.log10(Math.max(ms, 10 ** lowExp)) - lowExp) / (highExp - lowExp)) * height,
    )
  parts.push(
    panelTitle(
      top,
      'Latency of ok requests per request, p50 (solid) and p99 (dashed), per 100 ms, log scale',
    ),
  )
  for (let exp = lowExp; exp <= highExp; exp++) {
    const ms = 10 ** exp
    parts.push(gridLine(y(ms), ms >= 1_000 ? `${ms / 1_000} s` : `${ms} ms`))
  }
  const path = (points: (number | null)[]) => {
    let d = ''
    let pen = false
    points.forEach((v, i) => {
      if (v === null) {
        pen = false
        return
      }
      d += `${pen ? 'L' : 'M'}${x(i * bucketMs + bucketMs / 2)},${y(v)}`
      pen = true
    })
    return d
  }
  latency.forEach((series, i) => {
    const color = SERIES[i % SERIES.length]!
    parts.push(
      `<path d="${path(series.p99)}" fill="none" stroke="${color}" stroke-width="1.2" stroke-dasharray="4 3"><title>${e(series.request)} p99</title></path>`,
      `<path d="${path(series.p50)}" fill="none" stroke="${color}" stroke-width="1.8"><title>${e(series.request)} p50</title></path>`,
    )
  })
  // The key, under the plot: one swatch per request shape.
  let keyX = LEFT
  let keyY = plotTop + height + 18
  for (const [i, series] of latency.entries()) {
    const label = series.request.length > 40 ? `${series.request.slice(0, 39)}…` : series.request
    const width = 28 + label.length * 7.2
    if (keyX + width > LEFT + PLOT) {
      keyX = LEFT
      keyY += 16
    }
    parts.push(
      `<line x1="${keyX}" x2="${keyX + 20}" y1="${keyY - 4}" y2="${keyY - 4}" stroke="${SERIES[i % SERIES.length]}" stroke-width="2.5"/><text x="${keyX + 24}" y="${keyY}" class="small">${e(label)}</text>`,
    )
    keyX += width + 12
  }
  return keyY + 16
}

function panelTitle(y: number, text: string): string {
  return `<text x="${LEFT}" y="${y + 12}" class="panel">${e(text)}</text>`
}

function gridLine(y: number, label: string): string {
  return `<line x1="${LEFT}" x2="${LEFT + PLOT}" y1="${y}" y2="${y}" stroke="${COLORS.grid}"/><text x="${LEFT - 6}" y="${y + 4}" text-anchor="end" class="small">${e(label)}</text>`
}

function podBand(
  pod: PodSummary,
  y: number,
  x: (t: number) => number,
  duration: number,
  result: LabResult,
): string {
  const end = pod.exitedAt ?? duration
  const out: string[] = []
  const segment = (
    from: number | undefined,
    to: number | undefined,
    color: string,
    what: string,
  ) => {
    if (from === undefined || to === undefined || to <= from) return
    out.push(
      `<rect x="${x(from)}" y="${y + 3}" width="${Math.max(1, r1(x(to) - x(from)))}" height="12" fill="${color}"><title>${e(pod.name)}: ${what} ${span(from, to)}</title></rect>`,
    )
  }
  const readyEnd = pod.deletedAt ?? end
  segment(pod.startedAt, pod.readyAt ?? readyEnd, COLORS.starting, 'starting')
  segment(pod.readyAt, readyEnd, COLORS.ready, 'ready')
  segment(pod.deletedAt, pod.sigtermAt ?? end, COLORS.preStop, 'deleted, preStop')
  segment(pod.sigtermAt, end, COLORS.terminating, 'after SIGTERM')
  if (pod.endpointAddedAt !== undefined) {
    const routedEnd = pod.endpointRemovedAt ?? duration
    out.push(
      `<line x1="${x(pod.endpointAddedAt)}" x2="${x(routedEnd)}" y1="${y + 18}" y2="${y + 18}" stroke="${COLORS.routed}" stroke-width="2.5"><title>${e(pod.name)}: the Service routes new connections to it ${span(pod.endpointAddedAt, routedEnd)}</title></line>`,
    )
  }
  for (const f of result.failures) {
    if (f.pod !== pod.name) continue
    out.push(
      `<line x1="${x(f.end)}" x2="${x(f.end)}" y1="${y}" y2="${y + 18}" stroke="${COLORS[f.outcome as FailureClass]}" stroke-width="1.5"><title>${seconds(f.end)} s ${e(OUTCOME_LABELS[f.outcome])}: ${f.method} ${e(f.path)}</title></line>`,
    )
  }
  if (pod.sigkillAt !== undefined) {
    const cx = x(pod.sigkillAt)
    out.push(
      `<path d="M${cx - 5},${y + 4}L${cx + 5},${y + 14}M${cx + 5},${y + 4}L${cx - 5},${y + 14}" stroke="${COLORS.sigkill}" stroke-width="2.5"/><text x="${cx - 8}" y="${y + 13}" text-anchor="end" class="small" fill="${COLORS.sigkill}">SIGKILL</text>`,
    )
  }
  const label = `rev ${pod.revision} · ${shortPod(pod.name)}`
  const failed = pod.failed > 0 ? ` <tspan fill="${COLORS.bad}">✖${pod.failed}</tspan>` : ''
  out.unshift(
    `<text x="${LEFT - 8}" y="${y + 13}" text-anchor="end" class="label"><title>${e(pod.name)}: ${e(podEnd(pod))}</title>${e(label)}${failed}</text>`,
  )
  return out.join('')
}

function legend(): string {
  const item = (color: string, label: string, kind: 'box' | 'line' = 'box') =>
    `<span class="key"><i class="${kind}" style="background:${color}"></i>${e(label)}</span>`
  return [
    item(COLORS.ok, 'ok'),
    ...OUTCOMES.filter((o) => o !== 'ok').map((o) => item(COLORS[o], OUTCOME_LABELS[o])),
    item(COLORS.exited, 'endpoint of an exited pod'),
    item(COLORS.starting, 'pod starting'),
    item(COLORS.ready, 'ready'),
    item(COLORS.preStop, 'deleted (preStop)'),
    item(COLORS.terminating, 'after SIGTERM'),
    item(COLORS.routed, 'Service routes to it', 'line'),
    item(COLORS.rollout, 'rolling update'),
  ].join('')
}

function breakdownTable(title: string, rows: LabResult['byClient']): string {
  const body = rows
    .map(
      (r) =>
        `<tr><td class="mono">${e(r.key)}</td><td>${count(r.sent)}</td><td class="${r.failed > 0 ? 'bad' : ''}">${count(r.failed)}</td><td>${r.sent === 0 ? '-' : `${((r.failed / r.sent) * 100).toFixed(2)} %`}</td></tr>`,
    )
    .join('')
  return `<div class="scroll"><table><thead><tr><th>${e(title)}</th><th>sent</th><th>failed</th><th>failed share</th></tr></thead><tbody>${body}</tbody></table></div>`
}

function card(title: string, value: string, detail = '', tone = ''): string {
  return `<div class="card ${tone}"><div class="card-title">${e(title)}</div><div class="card-value">${value}</div><div class="card-detail">${detail}</div></div>`
}

export function renderHtml(result: LabResult): string {
  const status = result.interrupted === true ? 'interrupted' : result.verdict.status
  const s = result.settings
  const byClass = failuresByClass(result)
  const load = result.load
  const headline = `${count(result.failed)} of ${count(result.requests)} requests failed during ${result.rollouts.length} rolling update${result.rollouts.length === 1 ? '' : 's'} of ${s.replicas} replica${s.replicas === 1 ? '' : 's'}`
  const cards = [
    card(
      'Requests',
      count(result.requests),
      load === undefined
        ? ''
        : `${load.achievedRate} req/s of ${load.targetRate} target${load.behind ? ' — <b>behind</b>' : ''}`,
    ),
    card(
      'Failed',
      count(result.failed),
      byClass.length === 0
        ? 'none'
        : byClass
            .map(
              ([c, n]) =>
                `<span style="color:${COLORS[c]}">${count(n)} ${e(OUTCOME_LABELS[c])}</span>`,
            )
            .join('<br>'),
      result.failed > 0 ? 'bad' : 'good',
    ),
    card(
      'Success rate',
      rate(result.successRate),
      `max failures allowed: ${count(result.verdict.maxFailures)}`,
    ),
    card(
      'Latency of ok requests',
      result.latencyMs === undefined ? '-' : latency(result.latencyMs.p50),
      result.latencyMs === undefined
        ? ''
        : `p50 · p99 ${latency(result.latencyMs.p99)} · max ${latency(result.latencyMs.max)}`,
    ),
    card(
      'Pods',
      String(result.pods.length),
      `${result.pods.filter((p) => p.sigkillAt !== undefined).length} SIGKILLed · ${result.pods.filter((p) => p.deletedAt !== undefined).length} deleted`,
    ),
  ]
  // Two tables, each narrow enough for an 800 px window: when each pod lived, then what
  // crossed its shutdown.
  const podName = (p: PodSummary) => `<td class="mono">${e(p.name)}</td>`
  const lifeRows = result.pods
    .map(
      (p) =>
        `<tr>${podName(p)}<td>${p.revision}</td><td>${seconds(p.startedAt)}</td><td>${seconds(p.readyAt)}</td><td>${seconds(p.endpointAddedAt)}</td><td>${seconds(p.deletedAt)}</td><td>${seconds(p.endpointRemovedAt)}</td><td>${seconds(p.sigtermAt)}</td><td>${seconds(p.exitedAt)}</td><td class="left text ${p.sigkillAt === undefined ? '' : 'bad'}">${e(podEnd(p))}</td></tr>`,
    )
    .join('')
  const trafficRows = result.pods
    .map(
      (p) =>
        `<tr>${podName(p)}<td>${p.timeToExitMs === undefined ? '-' : `${seconds(p.timeToExitMs)} s`}</td><td>${count(p.ok)}</td><td class="${p.failed > 0 ? 'bad' : ''}">${count(p.failed)}</td><td>${p.shutdown === undefined ? '-' : count(p.shutdown.inFlightAtSigterm)}</td><td class="${p.shutdown !== undefined && !p.shutdown.exercised ? 'bad' : ''}">${p.shutdown === undefined ? '-' : count(p.shutdown.servedInLameDuck)}</td><td class="${p.headroomMs !== undefined && p.headroomMs < 0 ? 'bad' : ''}">${p.headroomMs === undefined ? '-' : `${seconds(p.headroomMs)} s`}</td></tr>`,
    )
    .join('')
  const failureRows = result.failures
    .slice(0, FAILURES_IN_TABLE)
    .map(
      (f) =>
        `<tr><td>${seconds(f.start)}</td><td>${seconds(f.end)}</td><td class="left" style="color:${COLORS[f.outcome as FailureClass]}">${e(OUTCOME_LABELS[f.outcome])}</td><td class="mono words">${f.method} ${e(f.path)}</td><td class="left">${e(f.client)}${f.reused ? ', reused' : ''}</td><td class="mono">${e(f.pod ?? '-')}</td><td class="left text">${e(f.message ?? '')}</td></tr>`,
    )
    .join('')
  const notes = [
    result.interrupted === true
      ? '<p class="warning">interrupted: this report covers the run up to the interruption</p>'
      : '',
    ...result.warnings.map((w) => `<p class="warning">warning: ${e(w)}</p>`),
    result.error === undefined ? '' : `<p class="warning">error: ${e(result.error)}</p>`,
  ].join('')
  const headroom = headroomLine(result)
  const diagnosis =
    result.diagnosis.length === 0
      ? headroom === undefined
        ? ''
        : `<h2>Headroom</h2><p>${e(headroom)}.</p>`
      : `<h2>Diagnosis</h2><ul class="diagnosis">${result.diagnosis
          .map((d) => {
            const [what, fix] = d.sentence.split(' → ')
            return `<li><b>${e(what ?? '')}</b>${fix === undefined ? '' : `<br>→ ${e(fix)}`}</li>`
          })
          .join('')}</ul>`
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>lameduck rollout — ${e(s.name)}: ${status.toUpperCase()}</title>
<style>
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: ${COLORS.text}; background: #f8f9fa; margin: 0; }
  main { max-width: ${PAGE_WIDTH}px; margin: 0 auto; padding: 24px 20px 40px; }
  h1 { font-size: 22px; margin: 0 0 4px; display: flex; align-items: center; gap: 12px; }
  h2 { font-size: 16px; margin: 28px 0 8px; }
  .pill { font-size: 13px; font-weight: 700; padding: 3px 10px; border-radius: 999px; color: white; }
  .pass { background: ${COLORS.ok}; } .fail { background: ${COLORS.bad}; } .inconclusive, .interrupted { background: ${COLORS.timeout}; }
  .diagnosis { background: white; border: 1px solid #dee2e6; border-radius: 8px; padding: 10px 12px 10px 32px; margin: 0 0 16px; }
  .diagnosis li { margin: 4px 0; }
  .sub { color: #495057; margin: 0 0 16px; }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 12px; margin-bottom: 16px; }
  .card { background: white; border: 1px solid #dee2e6; border-radius: 8px; padding: 10px 12px; }
  .card.bad { border-color: ${COLORS.bad}; border-width: 2px; } .card.good { border-color: ${COLORS.ok}; border-width: 2px; }
  .card-title { color: #868e96; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
  .card-value { font-size: 22px; font-weight: 650; white-space: nowrap; }
  .card-detail { color: #495057; font-size: 12px; }
  .figure { background: white; border: 1px solid #dee2e6; border-radius: 8px; padding: 8px 0; overflow-x: auto; }
  svg text { font-family: system-ui, sans-serif; fill: ${COLORS.text}; }
  svg .panel { font-size: 14px; font-weight: 600; }
  svg .label { font-size: 13px; }
  svg .small { font-size: 12.5px; fill: #404040; }
  .scroll { overflow-x: auto; }
  .nowrap { white-space: nowrap; }
  .pair { display: grid; grid-template-columns: repeat(auto-fit, minmax(400px, 1fr)); gap: 12px; }
  .legend { display: flex; flex-wrap: wrap; gap: 4px 16px; padding: 8px ${RIGHT}px 4px ${LEFT}px; font-size: 12px; color: #495057; }
  .key i { display: inline-block; width: 12px; height: 10px; margin-right: 5px; vertical-align: -1px; border-radius: 2px; }
  .key i.line { height: 3px; vertical-align: 3px; }
  table { border-collapse: collapse; width: 100%; background: white; font-size: 12.5px; }
  th, td { border-bottom: 1px solid #e9ecef; padding: 4px 6px; text-align: right; white-space: nowrap; }
  th { background: #f1f3f5; font-weight: 600; white-space: normal; vertical-align: bottom; }
  td.words { white-space: normal; overflow-wrap: break-word; }
  td.text { white-space: normal; overflow-wrap: anywhere; min-width: 12ch; }
  .note { font-size: 12px; color: #495057; margin: 2px ${RIGHT}px 0 ${LEFT}px; }
  dl.run { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; background: white; border: 1px solid #dee2e6; border-radius: 8px; padding: 10px 12px; margin: 0; }
  dl.run dt { color: #495057; }
  dl.run dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; white-space: pre-wrap; overflow-wrap: anywhere; min-width: 0; }
  td:first-child, th:first-child, td.mono, .left { text-align: left; }
  .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
  td.bad { color: ${COLORS.bad}; font-weight: 600; }
  .warning { background: #fff4e6; border-left: 4px solid ${COLORS.reset}; padding: 8px 12px; }
  pre { background: white; border: 1px solid #dee2e6; border-radius: 8px; padding: 10px 12px; overflow-x: auto; }
  footer { color: #868e96; font-size: 12px; margin-top: 24px; }
</style>
</head>
<body>
<main>
<h1>lameduck rollout — ${e(s.name)} <span class="pill ${status}">${status.toUpperCase()}</span></h1>
<p class="sub">${e(headline)}. ${e(verdictLine(result)).replace(/--[a-z-]+/g, (option) => `<span class="nowrap">${option}</span>`)}.</p>
${notes}
<div class="cards">${cards.join('')}</div>
${diagnosis}
<div class="figure">${chart(result)}<div class="legend">${legend()}</div>${load === undefined ? '' : '<p class="note">Requests are counted when they end: the bars after “load stopped” are requests sent before it that were still in flight.</p>'}</div>
<h2>Requests by client kind and by shape</h2>
<div class="pair">${breakdownTable('client kind', result.byClient)}${breakdownTable('request', result.byRequest)}</div>
<h2>Pods <small>(times in seconds since the lab started)</small></h2>
<div class="scroll"><table class="pods"><thead><tr><th>pod</th><th>rev</th><th>start</th><th>ready</th><th title="the Service starts routing new connections to it">routed</th><th>deleted</th><th title="the Service stops routing new connections to it">unrouted</th><th>SIGTERM</th><th>exit</th><th class="left">how it ended</th></tr></thead><tbody>${lifeRows}</tbody></table></div>
<h2>Traffic across each pod's shutdown</h2>
<div class="scroll"><table class="pods"><thead><tr><th>pod</th><th>exit after SIGTERM</th><th>ok</th><th>failed</th><th title="requests in flight on connections to the pod at its SIGTERM">in flight at SIGTERM</th><th title="requests sent to the pod after its SIGTERM that it answered">served in lame duck</th><th title="exit minus the moment the Service stopped routing new connections to it">headroom</th></tr></thead><tbody>${trafficRows}</tbody></table></div>
${
  result.failures.length === 0
    ? ''
    : `<h2>Failed requests <small>(${result.failures.length > FAILURES_IN_TABLE ? `first ${FAILURES_IN_TABLE} of ${count(result.failed)}` : 'all'}; every one is in the JSON report)</small></h2>
<div class="scroll"><table class="failures"><thead><tr><th>sent</th><th>failed</th><th class="left">outcome</th><th class="left">request</th><th class="left">client</th><th class="left">pod</th><th class="left">error</th></tr></thead><tbody>${failureRows}</tbody></table></div>`
}
<h2>Run</h2>
<dl class="run">${[
    ['command', result.command.join(' ')],
    ['settings', settingsLines(result).join('\n')],
    ['started', `${result.startedAt}, ran ${seconds(result.durationMs, 1)} s`],
    [
      'model',
      `propagation ${formatDuration(s.propagationDelayMs)} ± ${formatDuration(s.propagationJitterMs)}; see docs/lab.md in the lameduck package for what the lab models and what it does not`,
    ],
  ]
    .map(([term, value]) => `<dt>${e(term!)}</dt><dd>${e(value!)}</dd>`)
    .join('')}</dl>
<footer>Generated by lameduck rollout. Self-contained: no scripts, nothing loaded from elsewhere.</footer>
</main>
</body>
</html>
`
}
