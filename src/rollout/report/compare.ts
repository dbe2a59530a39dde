// Several results of the same experiment side by side (the demo: without and with lameduck).
import { OUTCOME_LABELS, OUTCOMES } from '../recorder.js'
import type { LabResult } from '../result.js'
import { count, latency, rate, span } from './format.js'
import { settingsLines } from './text.js'

export interface Column {
  title: string
  subtitle: string
  result: LabResult
}

function exitTimes(result: LabResult): string {
  const times = result.pods.flatMap((p) => (p.timeToExitMs === undefined ? [] : [p.timeToExitMs]))
  if (times.length === 0) return '-'
  return span(Math.min(...times), Math.max(...times))
}

export function renderComparison(columns: Column[]): string {
  const rows: [string, ...string[]][] = [
    ['', ...columns.map((c) => c.title)],
    ['', ...columns.map((c) => c.subtitle)],
    ['requests', ...columns.map((c) => count(c.result.requests))],
    ...OUTCOMES.map((o): [string, ...string[]] => [
      `  ${OUTCOME_LABELS[o]}`,
      ...columns.map((c) => count(c.result.outcomes[o])),
    ]),
    ['failed', ...columns.map((c) => count(c.result.failed))],
    ['success rate', ...columns.map((c) => rate(c.result.successRate))],
    [
      'ok latency p50 / p99 / max',
      ...columns.map((c) =>
        c.result.latencyMs === undefined
          ? '-'
          : `${latency(c.result.latencyMs.p50)} / ${latency(c.result.latencyMs.p99)} / ${latency(c.result.latencyMs.max)}`,
      ),
    ],
    [
      'rate achieved',
      ...columns.map((c) =>
        c.result.load === undefined ? '-' : `${c.result.load.achievedRate} req/s`,
      ),
    ],
    ['pod exit after SIGTERM', ...columns.map((c) => exitTimes(c.result))],
    [
      'deleted pods with traffic across shutdown',
      ...columns.map((c) => {
        const deleted = c.result.pods.filter((p) => p.shutdown !== undefined)
        return `${deleted.filter((p) => p.shutdown!.exercised).length} / ${deleted.length}`
      }),
    ],
    [
      'pods SIGKILLed',
      ...columns.map((c) => String(c.result.pods.filter((p) => p.sigkillAt !== undefined).length)),
    ],
    ['verdict', ...columns.map((c) => c.result.verdict.status.toUpperCase())],
  ]
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)))
  const lines = rows.map((row) =>
    row
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('   ')
      .trimEnd(),
  )
  const first = columns[0]?.result
  return [...(first === undefined ? [] : settingsLines(first)), '', ...lines].join('\n')
}
