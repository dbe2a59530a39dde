// Human output: one line per finding with its fix, then each container's timeline as a bar.
import type { CheckResult } from '../check.js'
import type { Finding, Severity } from '../rules/types.js'
import { seconds, type Timeline } from '../timeline.js'

/** Widest timeline bar; longer timelines are scaled down to it. */
export const BAR_WIDTH = 60

export const LEGEND = 'p preStop  d drain  c close  h hooks  m margin  | grace period ends: SIGKILL'

export function formatFinding(f: Finding): string {
  return `${f.file}:${f.line}:${f.column} ${f.severity} ${f.rule} ${f.message}\n  fix: ${f.fix}`
}

/** The bar: one character per second (scaled above BAR_WIDTH), `|` where SIGKILL comes. */
export function timelineBar(t: Timeline): string {
  const preStop = Number.isFinite(t.preStop.seconds) ? t.preStop.seconds : t.grace.seconds + 1
  const parts: [string, number][] = [
    ['p', preStop],
    ['d', t.drain.seconds],
    ['c', t.shutdown.seconds],
    ['h', t.hooks.seconds],
    ['m', t.marginSeconds],
  ]
  const total = parts.reduce((sum, [, s]) => sum + s, 0)
  const span = Math.max(total, t.grace.seconds, 1)
  const scale = span > BAR_WIDTH ? BAR_WIDTH / span : 1
  let bar = t.preStop.known ? '' : '?'
  for (const [char, s] of parts) {
    if (s > 0) bar += char.repeat(Math.max(1, Math.round(s * scale)))
  }
  const grace = Math.round(t.grace.seconds * scale)
  if (bar.length < grace) bar += '.'.repeat(grace - bar.length)
  return `${bar.slice(0, grace)}|${bar.slice(grace)}`
}

export function timelineSums(t: Timeline): string {
  const preStop = t.preStop.known
    ? `${t.preStop.atLeast ? '≥ ' : ''}${seconds(t.preStop.seconds)}`
    : `? s (${t.preStop.kind})`
  const fits = t.totalSeconds <= t.grace.seconds
  return [
    `preStop ${preStop}`,
    `drain ${seconds(t.drain.seconds)}`,
    `close ${seconds(t.shutdown.seconds)}`,
    `hooks ${seconds(t.hooks.seconds)}`,
    `margin ${seconds(t.marginSeconds)}`,
  ]
    .join(' | ')
    .concat(
      ` = ${seconds(t.totalSeconds)} ${fits ? '≤' : '>'} grace ${seconds(t.grace.seconds)}${t.grace.written ? '' : ' (default)'}`,
    )
}

function count(n: number, word: string): string {
  return `${n} ${word}${n === 1 || word === 'info' ? '' : 's'}`
}

export function summary(result: CheckResult): string {
  const by = (severity: Severity) => result.findings.filter((f) => f.severity === severity).length
  return `${count(by('error'), 'error')}, ${count(by('warning'), 'warning')}, ${count(by('info'), 'info')} (${count(result.files.length, 'file')}, ${count(result.objects, 'object')}, ${count(result.workloads, 'workload')})`
}

export function formatText(result: CheckResult): string {
  const lines: string[] = []
  for (const finding of result.findings) lines.push(formatFinding(finding))
  if (result.timelines.length > 0) {
    if (lines.length > 0) lines.push('')
    lines.push(`Termination timelines (${LEGEND})`)
    for (const t of result.timelines) {
      const { line, column } = t.workload.source.locate(t.container.path)
      lines.push(
        `  ${t.workload.kind}/${t.workload.name} › ${t.container.name}  ${t.workload.source.file}:${line}:${column}`,
        `    ${timelineBar(t)}`,
        `    ${timelineSums(t)}`,
      )
      for (const note of t.notes) lines.push(`    note: ${note}`)
    }
  }
  if (lines.length > 0) lines.push('')
  lines.push(summary(result))
  return `${lines.join('\n')}\n`
}
