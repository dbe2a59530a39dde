// lameduck check: the Kubernetes manifest checker. The CLI is src/cli/check.ts.
export { LAMEDUCK_ANNOTATION, type LameduckUse, lameduckUse } from './adoption.js'
export {
  type CheckOptions,
  type CheckResult,
  check,
  formatPath,
  type InputProblem,
  inputProblem,
} from './check.js'
export { type ImageInfo, imageInfo } from './images.js'
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
export { FINGERPRINT_KEY, formatSarif, INPUT_ERROR_RULE, SARIF_SCHEMA } from './reporters/sarif.js'
export { formatText, type TextOptions, timelineBar } from './reporters/text.js'
export {
  type Finding,
  RULE_IDS,
  RULES,
  type Rule,
  SCOPE_TEXT,
  type Scope,
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
