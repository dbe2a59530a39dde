// The checker: sources in, findings and timelines out. No I/O, so tests call it with text.
import { didYouMean } from '../cli/args.js'
import { InputError, type ManifestObject, type Path, parseSource, type Source } from './load.js'
import {
  buildModel,
  type Container,
  describe,
  REPORTED_KINDS,
  type Skipped,
  type Workload,
} from './model.js'
import { RULE_IDS, RULES } from './rules/index.js'
import type { Finding, Report, RuleContext } from './rules/types.js'
import { timelines as allTimelines, type Timeline, timelineOf } from './timeline.js'

export interface CheckOptions {
  /** Rule ids not to report anywhere (the CLI's `--ignore`). */
  ignore?: Iterable<string>
  /** Take every container for a lameduck app unless annotated otherwise (`--assume-lameduck`). */
  assumeLameduck?: boolean
  /**
   * Take workloads that declare container ports but that no Service in the input selects
   * as served through those ports (`--assume-served`): their Service is in another file.
   */
  assumeServed?: boolean
}

/** An input that could not be read or parsed; the others are still checked. */
export interface InputProblem {
  file: string
  line: number | undefined
  column: number | undefined
  /** The whole message: `file:line:column: reason`. */
  message: string
}

export function inputProblem(error: InputError): InputProblem {
  return {
    file: error.file,
    line: error.location?.line,
    column: error.location?.column,
    message: error.message,
  }
}

export interface CheckResult {
  /** Names of the sources read, in order. */
  files: string[]
  /** Kubernetes objects found (List items count one each). */
  objects: number
  workloads: number
  findings: Finding[]
  /** One per serving container of every workload that takes traffic. */
  timelines: Timeline[]
  /** Things the user should know that are not findings (unknown ids in annotations). */
  notices: string[]
  /** Inputs that could not be read or parsed (the CLI exits 2 when there are any). */
  errors: InputProblem[]
  /** Objects of kinds the checker does not read. */
  skipped: Skipped[]
  /**
   * Workloads (`Kind/name`) that declare container ports but that no Service in the input
   * selects: not checked as served (the summary says so, and how to include them).
   */
  notServed: string[]
}

/** `spec.template.spec.containers[0].env[2].value`; odd keys as `["app.kubernetes.io/name"]`. */
export function formatPath(path: Path): string {
  let out = ''
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`
    else if (/^[A-Za-z_$][\w$-]*$/.test(key)) out += out === '' ? key : `.${key}`
    else out += `[${JSON.stringify(key)}]`
  }
  return out
}

/**
 * Checks the given sources. A document that cannot be parsed becomes an entry in `errors`
 * (with `readErrors`, the inputs that could not be read) and the others are still checked.
 */
export function check(
  sources: readonly Source[],
  options: CheckOptions = {},
  readErrors: readonly InputProblem[] = [],
): CheckResult {
  const objects: ManifestObject[] = []
  const errors: InputProblem[] = [...readErrors]
  const retain = (kind: string) => REPORTED_KINDS.has(kind)
  for (const source of sources) {
    // A document that cannot be read is reported; the file's other documents are checked.
    const problems: InputError[] = []
    try {
      objects.push(...parseSource(source, { retain, problems }))
    } catch (error) {
      if (!(error instanceof InputError)) throw error
      problems.push(error)
    }
    errors.push(...problems.map(inputProblem))
  }
  const model = buildModel(objects, {
    assumeLameduck: options.assumeLameduck === true,
    assumeServed: options.assumeServed === true,
  })
  const timelines = allTimelines(model)
  const ignore = new Set(options.ignore ?? [])
  const notices: string[] = []
  for (const object of [...model.workloads, ...model.services, ...model.budgets]) {
    for (const id of object.ignore) {
      if (!RULE_IDS.has(id)) {
        const { line, column } = object.source.locate(['metadata', 'annotations'])
        notices.push(
          `${object.source.file}:${line}:${column}: unknown rule id '${id}'${didYouMean(id, RULE_IDS)} in the lameduck/ignore annotation of ${describe(object)}`,
        )
      }
    }
  }

  const findings: Finding[] = []
  const cache = new Map<Container, Timeline>()
  for (const t of timelines) cache.set(t.container, t)
  for (const rule of RULES) {
    if (ignore.has(rule.id)) continue
    const context: RuleContext = {
      model,
      timelines,
      timelineOf(workload: Workload, container: Container) {
        let t = cache.get(container)
        if (t === undefined) {
          t = timelineOf(model, workload, container)
          cache.set(container, t)
        }
        return t
      },
      report(report: Report) {
        if (report.object.ignore.has(rule.id)) return
        const source = report.object.source
        const { line, column } = source.locate(report.path)
        findings.push({
          rule: rule.id,
          severity: rule.severity,
          file: source.file,
          line,
          column,
          path: formatPath([...source.base, ...report.path]),
          message: report.message,
          fix: report.fix,
          object: describe(report.object),
          namespace: report.object.namespace,
          container: report.container?.name,
          lameduck: report.container?.lameduck !== undefined,
        })
      },
    }
    rule.check(context)
  }

  const fileOrder = new Map(sources.map((s, i) => [s.name, i]))
  const ruleOrder = new Map(RULES.map((r, i) => [r.id, i]))
  findings.sort(
    (a, b) =>
      (fileOrder.get(a.file) ?? 0) - (fileOrder.get(b.file) ?? 0) ||
      a.line - b.line ||
      a.column - b.column ||
      (ruleOrder.get(a.rule) ?? 0) - (ruleOrder.get(b.rule) ?? 0),
  )
  return {
    files: sources.map((s) => s.name),
    objects: objects.length,
    workloads: model.workloads.length,
    findings,
    timelines,
    notices,
    errors,
    skipped: model.skipped,
    notServed: model.workloads.filter((w) => w.unselected).map(describe),
  }
}
