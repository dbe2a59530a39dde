// Machine output: findings as they are, timelines in seconds.
import type { CheckResult } from '../check.js'
import { formatPath } from '../check.js'
import { RULES } from '../rules/index.js'
import type { Setting, Timeline } from '../timeline.js'

/** Bumped when a field changes meaning or disappears; new fields may appear without it. */
export const JSON_FORMAT_VERSION = 1

function setting(s: Setting) {
  return {
    seconds: s.seconds,
    variable: s.variable,
    ...(s.flag === undefined ? {} : { flag: s.flag }),
    source: s.source,
    ...(s.invalid === undefined ? {} : { invalid: s.invalid }),
    ...(s.unknown === undefined ? {} : { unknown: s.unknown }),
  }
}

export function timelineJson(t: Timeline) {
  const { line, column } = t.workload.source.locate(t.container.path)
  return {
    file: t.workload.source.file,
    line,
    column,
    path: formatPath([...t.workload.source.base, ...t.container.path]),
    object: `${t.workload.kind}/${t.workload.name}`,
    namespace: t.workload.namespace ?? null,
    container: t.container.name,
    // Why the container counts as a lameduck app; null: it does not, and drain, close and
    // hooks are 0 with source "none".
    lameduck:
      t.lameduck === undefined
        ? null
        : {
            reason: t.lameduck.reason,
            detail: t.lameduck.detail,
            ...(t.lameduck.serve === undefined ? {} : { serve: t.lameduck.serve.mode }),
          },
    grace: {
      seconds: t.grace.seconds,
      source: t.grace.invalid ? 'invalid' : t.grace.written ? 'manifest' : 'default',
    },
    preStop: {
      kind: t.preStop.kind,
      // JSON has no Infinity: an endless sleep is null with known: true.
      seconds: Number.isFinite(t.preStop.seconds) ? t.preStop.seconds : null,
      known: t.preStop.known,
      atLeast: t.preStop.atLeast,
    },
    ownDrain: t.selfDrain === undefined ? null : t.selfDrain,
    drain: setting(t.drain),
    close: setting(t.shutdown),
    hooks: setting(t.hooks),
    // lameduck serve in proxy mode: the child's stop time, in place of the hooks.
    childStop: t.childStop === undefined ? null : setting(t.childStop),
    margin: { seconds: t.marginSeconds },
    total: { seconds: Number.isFinite(t.totalSeconds) ? t.totalSeconds : null },
    fits: t.totalSeconds <= t.grace.seconds,
    notes: t.notes,
  }
}

export function formatJson(result: CheckResult): string {
  const count = (severity: string) => result.findings.filter((f) => f.severity === severity).length
  const out = {
    version: JSON_FORMAT_VERSION,
    summary: {
      error: count('error'),
      warning: count('warning'),
      info: count('info'),
      files: result.files.length,
      objects: result.objects,
      workloads: result.workloads,
      inputErrors: result.errors.length,
      skipped: result.skipped.length,
      notServed: result.notServed.length,
    },
    files: result.files,
    // Inputs that could not be read or parsed; the others were checked.
    errors: result.errors.map((e) => ({ ...e, line: e.line ?? null, column: e.column ?? null })),
    // Absent namespace and container are null, so every finding has the same keys.
    findings: result.findings.map((f) => ({
      ...f,
      namespace: f.namespace ?? null,
      container: f.container ?? null,
    })),
    // Why each rule that fired matters (text output prints this once per rule).
    rules: Object.fromEntries(
      RULES.filter((r) => result.findings.some((f) => f.rule === r.id)).map((r) => [
        r.id,
        { severity: r.severity, summary: r.summary, rationale: r.rationale, scope: r.scope },
      ]),
    ),
    timelines: result.timelines.map(timelineJson),
    notices: result.notices,
    skipped: result.skipped,
    // Workloads with container ports that no Service in the input selects: not checked as
    // served (--assume-served checks them so).
    notServed: result.notServed,
  }
  return `${JSON.stringify(out, null, 2)}\n`
}
