import type { Path } from '../load.js'
import type { Container, Model, ObjectInfo, Workload } from '../model.js'
import type { Timeline } from '../timeline.js'

/** How bad a finding is. `error`: requests fail or the manifest is rejected; `warning`: they
 * fail under conditions the manifest does not show; `info`: worth a look. */
export type Severity = 'error' | 'warning' | 'info'

export const SEVERITIES: readonly Severity[] = ['error', 'warning', 'info']

/** Higher is worse; used by `--fail-on`. */
export function severityRank(severity: Severity): number {
  return severity === 'error' ? 3 : severity === 'warning' ? 2 : 1
}

/** One rule finding, as every reporter sees it. */
export interface Finding {
  rule: string
  severity: Severity
  file: string
  line: number
  column: number
  /** Field path inside the document, e.g. `spec.template.spec.terminationGracePeriodSeconds`. */
  path: string
  message: string
  fix: string
  /** `Kind/name` of the object the finding is about. */
  object: string
  namespace: string | undefined
  container: string | undefined
  /** Whether the container is taken for a lameduck app (false when there is no container). */
  lameduck: boolean
}

/** What a rule hands to `report`; the rule's id, severity and the position are added. */
export interface Report {
  object: ObjectInfo
  /** The field the finding is about, relative to the object; located even when missing. */
  path: Path
  message: string
  fix: string
  container?: Container
}

export interface RuleContext {
  model: Model
  /** Timelines of the serving containers (see Workload.serving). */
  timelines: readonly Timeline[]
  /** The timeline of any container, computed on demand for containers that don't serve. */
  timelineOf(workload: Workload, container: Container): Timeline
  report(report: Report): void
}

/**
 * What a rule looks at. `lameduck`: serving containers that run lameduck; `serving`:
 * every serving container (a Service sends it user traffic); `serving-other`: serving
 * containers that do not run lameduck; `containers`: every container; `serving-workloads`:
 * workloads with a serving container; `workloads`: every workload; `budgets`:
 * PodDisruptionBudgets against the workloads they select.
 */
export type Scope =
  | 'lameduck'
  | 'serving'
  | 'serving-other'
  | 'containers'
  | 'serving-workloads'
  | 'workloads'
  | 'budgets'

export const SCOPE_TEXT: Record<Scope, string> = {
  lameduck: 'serving containers that run lameduck',
  serving: 'every serving container',
  'serving-other': 'serving containers that do not run lameduck',
  containers: 'every container',
  'serving-workloads': 'workloads with a serving container',
  workloads: 'every workload',
  budgets: 'PodDisruptionBudgets and the workloads they select',
}

export interface Rule {
  /** Stable id, used in output, `--ignore` and the `lameduck/ignore` annotation. */
  id: string
  severity: Severity
  /** One line: what the rule finds. */
  summary: string
  /** Why it matters, said once per run in text output (findings say only their facts). */
  rationale: string
  scope: Scope
  check(context: RuleContext): void
}
