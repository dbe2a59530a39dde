// SARIF 2.1.0 for code-scanning tools (GitHub code scanning, GitLab, Azure DevOps).
import { createHash } from 'node:crypto'
import { isAbsolute, relative, sep } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { CheckResult } from '../check.js'
import { STDIN_NAME } from '../load.js'
import { RULES } from '../rules/index.js'
import type { Finding, Severity } from '../rules/types.js'

export const SARIF_SCHEMA = 'https://json.schemastore.org/sarif-2.1.0.json'

/** The pseudo-rule under which unreadable inputs are reported. */
export const INPUT_ERROR_RULE = 'input-error'

/** Key of the fingerprint that stays the same when lines move (rule, object, container, field). */
export const FINGERPRINT_KEY = 'lameduckFinding/v1'

function level(severity: Severity): 'error' | 'warning' | 'note' {
  return severity === 'info' ? 'note' : severity
}

/** Relative paths stay relative (resolved against the checkout by the consumer), with `/`. */
function artifactUri(file: string, cwd: string): string {
  if (file === STDIN_NAME) return 'stdin'
  if (isAbsolute(file)) {
    const rel = relative(cwd, file)
    if (rel.startsWith('..') || isAbsolute(rel)) return pathToFileURL(file).href
    return encodeURI(rel.split(sep).join('/'))
  }
  return encodeURI(file.split(sep).join('/').replace(/^\.\//, ''))
}

/** Where a rule's documentation is published: docs/rules.md ships in the npm package. */
export function helpUri(version: string, id: string): string {
  return `https://unpkg.com/lameduck@${version}/docs/rules.md#${id}`
}

export function fingerprint(f: Finding, uri: string): string {
  return createHash('sha256')
    .update([uri, f.rule, f.namespace ?? '', f.object, f.container ?? '', f.path].join('\0'))
    .digest('hex')
    .slice(0, 32)
}

export function formatSarif(
  result: CheckResult,
  options: { version: string; cwd?: string } = { version: '0.0.0' },
): string {
  const cwd = options.cwd ?? process.cwd()
  const index = new Map(RULES.map((rule, i) => [rule.id, i]))
  const inputIndex = RULES.length
  const location = (file: string, line: number | undefined, column: number | undefined) => ({
    physicalLocation: {
      artifactLocation: { uri: artifactUri(file, cwd) },
      ...(line === undefined ? {} : { region: { startLine: line, startColumn: column ?? 1 } }),
    },
  })
  const sarif = {
    $schema: SARIF_SCHEMA,
    version: '2.1.0',
    runs: [
      {
        tool: {
          driver: {
            name: 'lameduck check',
            semanticVersion: options.version,
            informationUri: 'https://www.npmjs.com/package/lameduck',
            rules: [
              ...RULES.map((rule) => ({
                id: rule.id,
                name: rule.id,
                shortDescription: { text: rule.summary },
                fullDescription: { text: `${rule.rationale}.` },
                helpUri: helpUri(options.version, rule.id),
                help: {
                  text: `${rule.summary}: ${rule.rationale}. Applies to ${rule.scope}. See docs/rules.md#${rule.id} in the lameduck package.`,
                },
                defaultConfiguration: { level: level(rule.severity) },
              })),
              {
                id: INPUT_ERROR_RULE,
                name: INPUT_ERROR_RULE,
                shortDescription: { text: 'an input file that could not be read or parsed' },
                helpUri: helpUri(options.version, 'how-the-checker-reads-a-manifest'),
                help: { text: 'The file was not checked; fix the reported problem and run again.' },
                defaultConfiguration: { level: 'error' },
              },
            ],
          },
        },
        invocations: [
          {
            executionSuccessful: result.errors.length === 0,
            toolExecutionNotifications: result.errors.map((e) => ({
              level: 'error',
              message: { text: e.message },
              locations: [location(e.file, e.line, e.column)],
            })),
          },
        ],
        results: [
          ...result.errors.map((e) => ({
            ruleId: INPUT_ERROR_RULE,
            ruleIndex: inputIndex,
            level: 'error',
            message: { text: e.message },
            locations: [location(e.file, e.line, e.column)],
            partialFingerprints: {
              [FINGERPRINT_KEY]: createHash('sha256')
                .update(`${INPUT_ERROR_RULE}\0${artifactUri(e.file, cwd)}`)
                .digest('hex')
                .slice(0, 32),
            },
          })),
          ...result.findings.map((f) => ({
            ruleId: f.rule,
            ruleIndex: index.get(f.rule),
            level: level(f.severity),
            message: {
              text: `${f.object}${f.container === undefined ? '' : ` › ${f.container}`}: ${f.message}. Fix: ${f.fix}`,
            },
            locations: [
              {
                ...location(f.file, f.line, f.column),
                logicalLocations: [
                  { fullyQualifiedName: `${f.object}/${f.path}`, kind: 'resource' },
                ],
              },
            ],
            partialFingerprints: { [FINGERPRINT_KEY]: fingerprint(f, artifactUri(f.file, cwd)) },
          })),
        ],
      },
    ],
  }
  return `${JSON.stringify(sarif, null, 2)}\n`
}
