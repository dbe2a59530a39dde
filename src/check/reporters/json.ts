// Machine output: findings as they are, timelines in seconds.
import type { CheckResult } from '../check.js'
import { formatPath } from '../check.js'
import type { Setting, Timeline } from '../timeline.js'

/** Bumped when a field changes meaning or disappears; new fields may appear without it. */
export const JSON_FORMAT_VERSION = 1

function setting(s: Setting) {
  return {
    seconds: s.seconds,
    variable: s.variable,
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
    grace: { seconds: t.grace.seconds, source: t.grace.written ? 'manifest' : 'default' },
    preStop: {
      kind: t.preStop.kind,
      // JSON has no Infinity: an endless sleep is null with known: true.
      seconds: Number.isFinite(t.preStop.seconds) ? t.preStop.seconds : null,
      known: t.preStop.known,
      atLeast: t.preStop.atLeast,
    },
    drain: setting(t.drain),
    close: setting(t.shutdown),
    hooks: setting(t.hooks),
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
    },
    files: result.files,
    // Absent namespace and container are null, so every finding has the same keys.
    findings: result.findings.map((f) => ({
      ...f,
      namespace: f.namespace ?? null,
      container: f.container ?? null,
    })),
    timelines: result.timelines.map(timelineJson),
    notices: result.notices,
  }
  return `${JSON.stringify(out, null, 2)}\n`
}
