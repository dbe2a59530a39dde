// Human output: input errors, then one block per finding (where, what, the fix), the
// rationale of each rule that fired (once), the termination timelines, and a summary.
import type { CheckResult, InputProblem } from '../check.js'
import { RULES } from '../rules/index.js'
import type { Finding, Severity } from '../rules/types.js'
import { seconds, type Timeline } from '../timeline.js'

/** Widest timeline bar; longer timelines are scaled down to it. */
export const BAR_WIDTH = 60

/** Lines are wrapped to fit a terminal this wide. */
export const TEXT_WIDTH = 100

export const LEGEND =
  'p preStop  s own drain  d drain  c close  h hooks  k child stop  m margin  | SIGKILL'

export interface TextOptions {
  /** Timelines of every serving container, not only lameduck ones, and the skipped objects. */
  verbose?: boolean
  /** No timelines. */
  quiet?: boolean
}

/** Wraps `text` to TEXT_WIDTH, every line starting with `indent` (the first with `first`). */
export function wrap(text: string, indent: string, first = indent): string {
  const lines: string[] = []
  let line = first
  let empty = true
  for (const word of text.split(' ')) {
    if (!empty && line.length + 1 + word.length > TEXT_WIDTH) {
      lines.push(line)
      line = indent + word
    } else {
      line += (empty ? '' : ' ') + word
    }
    empty = false
  }
  lines.push(line)
  return lines.join('\n')
}

function where(file: string, line: number | undefined, column: number | undefined): string {
  return line === undefined ? file : `${file}:${line}:${column ?? 1}`
}

/** `Deployment/web › web`: the object, and the container when the finding is about one. */
export function subject(f: Finding): string {
  return `${f.object}${f.container === undefined ? '' : ` › ${f.container}`}${f.namespace === undefined ? '' : ` [${f.namespace}]`}`
}

export function formatFinding(f: Finding): string {
  const head = `${where(f.file, f.line, f.column)}  ${f.severity}  ${f.rule}`
  const one = `${head}  ${subject(f)}`
  return [
    one.length <= TEXT_WIDTH ? one : `${head}\n  ${subject(f)}`,
    wrap(f.message, '    '),
    wrap(f.fix, '         ', '    fix: '),
  ].join('\n')
}

export function formatProblem(p: InputProblem): string {
  const prefix = `${where(p.file, p.line, p.column)}: `
  const reason = p.message.startsWith(prefix) ? p.message.slice(prefix.length) : p.message
  return [`${where(p.file, p.line, p.column)}  error  input`, wrap(reason, '    ')].join('\n')
}

/** The bar: one character per second (scaled above BAR_WIDTH), `|` where SIGKILL comes. */
export function timelineBar(t: Timeline): string {
  const preStop = Number.isFinite(t.preStop.seconds) ? t.preStop.seconds : t.grace.seconds + 1
  const parts: [string, number][] = [
    ['p', preStop],
    ['s', t.selfDrain?.seconds ?? 0],
    ['d', t.drain.seconds],
    ['c', t.shutdown.seconds],
    ['h', t.hooks.seconds],
    ['k', t.childStop?.seconds ?? 0],
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
  const parts = [`preStop ${preStop}`]
  if (t.selfDrain !== undefined) parts.push(`own drain ${seconds(t.selfDrain.seconds)}`)
  if (t.lameduck !== undefined) {
    parts.push(
      `drain ${seconds(t.drain.seconds)}`,
      `close ${seconds(t.shutdown.seconds)}`,
      t.childStop === undefined
        ? `hooks ${seconds(t.hooks.seconds)}`
        : `child stop ${seconds(t.childStop.seconds)}`,
    )
  } else {
    parts.push('app stops in its own time')
  }
  parts.push(`margin ${seconds(t.marginSeconds)}`)
  return parts
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
  const skipped =
    result.skipped.length === 0
      ? ''
      : `; ${count(result.skipped.length, 'object')} of kinds not checked`
  const errors =
    result.errors.length === 0 ? '' : `; ${count(result.errors.length, 'input')} could not be read`
  return `${count(by('error'), 'error')}, ${count(by('warning'), 'warning')}, ${count(by('info'), 'info')} (${count(result.files.length, 'file')}, ${count(result.objects, 'object')}, ${count(result.workloads, 'workload')}${skipped}${errors})${notServed(result)}`
}

/** The workloads with container ports that were not checked as served, and what to do. */
function notServed(result: CheckResult): string {
  const n = result.notServed.length
  if (n === 0) return ''
  const names = n <= 3 ? ` (${result.notServed.join(', ')})` : ''
  return `\n${wrap(
    `${count(n, 'workload')} with container ports ${n === 1 ? 'was' : 'were'} not checked as served${names}: no Service in the input selects ${n === 1 ? 'it' : 'them'}. Check the directory with ${n === 1 ? 'its' : 'their'} Services, or add --assume-served to check ${n === 1 ? 'it' : 'them'} as served through ${n === 1 ? 'its' : 'their'} ports.`,
    '  ',
    '',
  )}`
}

export function formatText(result: CheckResult, options: TextOptions = {}): string {
  const blocks: string[] = []
  for (const problem of result.errors) blocks.push(formatProblem(problem))
  for (const finding of result.findings) blocks.push(formatFinding(finding))
  const fired = RULES.filter((r) => result.findings.some((f) => f.rule === r.id))
  if (fired.length > 0) {
    blocks.push(
      [
        'Why these matter',
        ...fired.map((r) => wrap(`${r.id}: ${r.rationale}.`, '      ', '  ')),
      ].join('\n'),
    )
  }
  const shown = options.quiet
    ? []
    : result.timelines.filter((t) => options.verbose || t.lameduck !== undefined)
  if (shown.length > 0) {
    const lines = [`Termination timelines (${LEGEND})`]
    for (const t of shown) {
      const { line, column } = t.workload.source.locate(t.container.path)
      lines.push(
        `  ${t.workload.kind}/${t.workload.name} › ${t.container.name}  ${t.workload.source.file}:${line}:${column}`,
        `    ${timelineBar(t)}`,
        wrap(timelineSums(t), '      ', '    '),
      )
      for (const note of t.notes) lines.push(wrap(`note: ${note}`, '      ', '    '))
    }
    blocks.push(lines.join('\n'))
  }
  if (options.verbose && result.skipped.length > 0) {
    const lines = ['Not checked (kinds the checker does not read)']
    for (const s of result.skipped)
      lines.push(wrap(`${s.file}: ${s.kind}/${s.name}: ${s.reason}`, '      ', '  '))
    blocks.push(lines.join('\n'))
  }
  blocks.push(summary(result))
  return `${blocks.join('\n\n')}\n`
}
