// lameduck check: reads manifests, prints findings and timelines, exits by --fail-on.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { check, inputProblem } from '../check/check.js'
import { type InputError, readSources } from '../check/load.js'
import { formatJson } from '../check/reporters/json.js'
import { formatSarif } from '../check/reporters/sarif.js'
import { formatText } from '../check/reporters/text.js'
import { RULE_IDS, RULES } from '../check/rules/index.js'
import { SCOPE_TEXT, SEVERITIES, type Severity, severityRank } from '../check/rules/types.js'
import { CliError } from './errors.js'

const FORMATS = ['text', 'json', 'sarif'] as const
type Format = (typeof FORMATS)[number]
const FAIL_ON = ['error', 'warning', 'info', 'none'] as const
type FailOn = (typeof FAIL_ON)[number]

export const USAGE = `Usage: lameduck check [options] [files or directories...]

Checks Kubernetes manifests for settings that make a graceful shutdown impossible: no
delay before SIGTERM while a Service still routes to the pod, a grace period shorter than
the shutdown, npm start as PID 1, rollouts and node drains that take every replica down,
values the API server rejects. Each finding names the file, line and column, the object,
the rule, what is wrong in numbers, and the fix. Rules: docs/rules.md.

Containers that run lameduck (a LAMEDUCK_* variable, the annotation lameduck/app: "true"
on the workload or its pod template, or --assume-lameduck) are also held to lameduck's
budget, probes and settings; every other container is judged on what Kubernetes does.

Input:
  files, directories   YAML (multi-document) or JSON; kind: List is read item by item.
                       Directories are searched recursively for .yaml, .yml and .json files
                       (hidden directories and node_modules are skipped).
  -                    read stdin, e.g. helm template . | lameduck check -
                       With no argument, stdin is read when it is not a terminal.

Options:
  --format <format>    text, json or sarif (SARIF 2.1.0). Default: text
  --fail-on <level>    exit 1 when a finding is at least this severe: error, warning, info,
                       or none (always exit 0 after a successful check). Default: error
  --ignore <rule-id>   do not report this rule; repeat it or separate ids with commas.
                       Default: none. One object: annotation lameduck/ignore: "<rule-id>,..."
  --min-severity <lvl> report only findings at least this severe: error, warning or info.
                       Default: info
  --quiet              --min-severity warning, and no timelines
  --assume-lameduck    take every container for a lameduck app unless its workload says
                       lameduck/app: "false". Default: only those that use lameduck
  --verbose            timelines of every serving container, and the objects not checked
  --list-rules         print every rule id with its severity, scope and summary; exit 0
  -h, --help           print this help and exit 0

Exit status: 0 nothing reached --fail-on; 1 something did; 2 bad usage, no Kubernetes
object in the input, or an input that cannot be read (missing path, YAML syntax error with
its line and column, binary file): the other inputs are still checked and reported.

Examples:
  lameduck check k8s/
  helm template . | lameduck check --format sarif - > lameduck.sarif
  lameduck check --fail-on warning --ignore grace-period-zero deploy.yaml`

/** Where input comes from: stdin when asked or piped, else the paths; usage on a bare TTY. */
export function inputMode(
  positionals: readonly string[],
  stdinIsTTY: boolean,
): 'paths' | 'stdin' | 'usage' {
  if (positionals.length > 0) return 'paths'
  return stdinIsTTY ? 'usage' : 'stdin'
}

function packageVersion(): string {
  const url = new URL('../../../package.json', import.meta.url)
  return String(JSON.parse(readFileSync(url, 'utf8')).version)
}

function oneOf<T extends string>(option: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T
  throw new CliError(`--${option} must be one of ${allowed.join(', ')}; got '${value}'`)
}

function listRules(): string {
  const width = Math.max(...RULES.map((r) => r.id.length))
  return RULES.map(
    (r) =>
      `${r.id.padEnd(width)}  ${r.severity.padEnd(7)}  ${r.summary}\n${' '.repeat(width + 11)}applies to ${SCOPE_TEXT[r.scope]}`,
  ).join('\n')
}

export async function run(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>
  try {
    parsed = parse(argv)
  } catch (error) {
    throw new CliError(`${(error as Error).message}; see lameduck check --help`)
  }
  const { values, positionals } = parsed
  if (values.help) {
    console.log(USAGE)
    return 0
  }
  if (values['list-rules']) {
    console.log(listRules())
    return 0
  }
  const format = oneOf<Format>('format', values.format ?? 'text', FORMATS)
  const failOn = oneOf<FailOn>('fail-on', values['fail-on'] ?? 'error', FAIL_ON)
  const ignore = (values.ignore ?? []).flatMap((v) => v.split(',')).map((v) => v.trim())
  for (const id of ignore) {
    if (!RULE_IDS.has(id)) {
      throw new CliError(
        `--ignore: unknown rule id '${id}'; lameduck check --list-rules lists them`,
      )
    }
  }

  const quiet = values.quiet === true
  const minSeverity = oneOf<Severity>(
    'min-severity',
    values['min-severity'] ?? (quiet ? 'warning' : 'info'),
    SEVERITIES,
  )

  const mode = inputMode(positionals, process.stdin.isTTY === true)
  if (mode === 'usage') {
    console.error(USAGE)
    return 2
  }
  const paths = mode === 'stdin' ? ['-'] : positionals
  const readErrors: InputError[] = []
  const sources = await readSources(paths, process.stdin, readErrors)
  const full = check(
    sources,
    { ignore, assumeLameduck: values['assume-lameduck'] === true },
    readErrors.map(inputProblem),
  )
  // Findings below --min-severity are left out of every format, and of the exit code.
  const floor = severityRank(minSeverity)
  const result = {
    ...full,
    findings: full.findings.filter((f) => severityRank(f.severity) >= floor),
  }

  for (const notice of result.notices) console.error(`lameduck check: ${notice}`)
  for (const problem of result.errors) console.error(`lameduck check: ${problem.message}`)
  const nothing = result.objects === 0
  if (nothing && result.errors.length === 0) {
    const where = result.files.length === 0 ? paths.join(', ') : result.files.join(', ')
    console.error(`lameduck check: no Kubernetes objects found in ${where}`)
  }
  const output =
    format === 'json'
      ? formatJson(result)
      : format === 'sarif'
        ? formatSarif(result, { version: packageVersion() })
        : formatText(result, { verbose: values.verbose === true, quiet })
  process.stdout.write(output)

  if (result.errors.length > 0 || nothing) return 2
  if (failOn === 'none') return 0
  const threshold = severityRank(failOn as Severity)
  return result.findings.some((f) => severityRank(f.severity) >= threshold) ? 1 : 0
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      format: { type: 'string' },
      'fail-on': { type: 'string' },
      ignore: { type: 'string', multiple: true },
      'min-severity': { type: 'string' },
      quiet: { type: 'boolean', short: 'q' },
      'assume-lameduck': { type: 'boolean' },
      verbose: { type: 'boolean', short: 'v' },
      'list-rules': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  })
}
