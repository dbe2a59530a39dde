// lameduck check: the Kubernetes manifest checker. The CLI is src/cli/check.ts.
export { type CheckOptions, type CheckResult, check, formatPath } from './check.js'
export {
  InputError,
  type Location,
  MAX_ALIAS_COUNT,
  MAX_INPUT_BYTES,
  MAX_NESTING_DEPTH,
  type ManifestObject,
  type Path,
  parseSource,
  readSources,
  readStdin,
  type Source,
  STDIN_NAME,
} from './load.js'
export { formatJson, JSON_FORMAT_VERSION } from './reporters/json.js'
export { formatSarif, SARIF_SCHEMA } from './reporters/sarif.js'
export { formatText, timelineBar } from './reporters/text.js'
export {
  type Finding,
  RULE_IDS,
  RULES,
  type Rule,
  SEVERITIES,
  type Severity,
  severityRank,
} from './rules/index.js'
export {
  DEFAULT_DRAIN_DELAY_MS,
  DEFAULT_GRACE_SECONDS,
  DEFAULT_HOOK_TIMEOUT_MS,
  DEFAULT_SHUTDOWN_TIMEOUT_MS,
  SAFETY_MARGIN_SECONDS,
  type Timeline,
} from './timeline.js'
