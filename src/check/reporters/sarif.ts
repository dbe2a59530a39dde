// SARIF 2.1.0 for code-scanning tools (GitHub code scanning, GitLab, Azure DevOps).
import { isAbsolute, relative, sep } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { CheckResult } from '../check.js'
import { STDIN_NAME } from '../load.js'
import { RULES } from '../rules/index.js'
import type { Severity } from '../rules/types.js'

export const SARIF_SCHEMA = 'https://json.schemastore.org/sarif-2.1.0.json'

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

export function formatSarif(
  result: CheckResult,
  options: { version: string; cwd?: string } = { version: '0.0.0' },
): string {
  const cwd = options.cwd ?? process.cwd()
  const index = new Map(RULES.map((rule, i) => [rule.id, i]))
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
            rules: RULES.map((rule) => ({
              id: rule.id,
              name: rule.id,
              shortDescription: { text: rule.summary },
              help: {
                text: `${rule.summary}. See docs/rules.md#${rule.id} in the lameduck package.`,
              },
              defaultConfiguration: { level: level(rule.severity) },
            })),
          },
        },
        results: result.findings.map((f) => ({
          ruleId: f.rule,
          ruleIndex: index.get(f.rule),
          level: level(f.severity),
          message: { text: `${f.message}. Fix: ${f.fix}` },
          locations: [
            {
              physicalLocation: {
                artifactLocation: { uri: artifactUri(f.file, cwd) },
                region: { startLine: f.line, startColumn: f.column },
              },
              logicalLocations: [{ fullyQualifiedName: `${f.object}/${f.path}`, kind: 'resource' }],
            },
          ],
        })),
      },
    ],
  }
  return `${JSON.stringify(sarif, null, 2)}\n`
}
