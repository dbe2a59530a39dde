// lameduck check: reads manifests, prints findings and timelines, exits by --fail-on.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { check } from '../check/check.js'
import { InputError, readSources } from '../check/load.js'
import { formatJson } from '../check/reporters/json.js'
import { formatSarif } from '../check/reporters/sarif.js'
import { formatText } from '../check/reporters/text.js'
import { RULE_IDS, RULES } from '../check/rules/index.js'
import { type Severity, severityRank } from '../check/rules/types.js'
import { CliError } from './main.js'

const FORMATS = ['text', 'json', 'sarif'] as const
type Format = (typeof FORMATS)[number]
const FAIL_ON = ['error', 'warning', 'info', 'none'] as const
type FailOn = (typeof FAIL_ON)[number]

export const USAGE = `Usage: lameduck check [options] [files or directories...]

Checks Kubernetes manifests for settings that make a graceful shutdown impossible: a grace
period shorter than the shutdown, no drain delay, npm start as PID 1, rollouts that take
every replica down, probes that cannot see the drain. Each finding names the file, line and
column, the rule, what is wrong in numbers, and the fix; each container that takes traffic
gets its termination timeline. Rules: docs/rules.md.

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
  --list-rules         print every rule id with its severity and summary, and exit 0
  -h, --help           print this help and exit 0

Exit status: 0 nothing reached --fail-on; 1 something did; 2 bad usage, or an input that
cannot be read (missing path, YAML syntax error with its line and column, binary file).

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
  return RULES.map((r) => `${r.id.padEnd(width)}  ${r.severity.padEnd(7)}  ${r.summary}`).join('\n')
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

  const mode = inputMode(positionals, process.stdin.isTTY === true)
  if (mode === 'usage') {
    console.error(USAGE)
    return 2
  }
  const paths = mode === 'stdin' ? ['-'] : positionals
  let result: ReturnType<typeof check>
  try {
    const sources = await readSources(paths, process.stdin)
    result = check(sources, { ignore })
  } catch (error) {
    if (error instanceof InputError) throw new CliError(error.message, { cause: error })
    throw error
  }

  for (const notice of result.notices) console.error(`lameduck check: ${notice}`)
  if (result.objects === 0) {
    const where = result.files.length === 0 ? paths.join(', ') : result.files.join(', ')
    console.error(`lameduck check: no Kubernetes objects found in ${where}`)
  }
  const output =
    format === 'json'
      ? formatJson(result)
      : format === 'sarif'
        ? formatSarif(result, { version: packageVersion() })
        : formatText(result)
  process.stdout.write(output)

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
      'list-rules': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  })
}
