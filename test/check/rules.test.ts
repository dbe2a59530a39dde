import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { check, RULES, SCOPE_TEXT } from '../../src/check/index.js'
import { fromRoot } from '../helpers.js'

// Every rule has test/fixtures/check/rules/<id>/bad.yaml, which triggers it, and good.yaml,
// a near miss that does not. The first line of each says exactly which rule ids it yields:
// `# expect: rule-a, rule-b` or `# expect: none`.
const fixtures = fromRoot('test/fixtures/check/rules')

function expected(text: string): string[] {
  const line = /^# expect: (.*)$/m.exec(text)
  assert.ok(line, 'fixture lacks its "# expect:" line')
  return line[1]!.trim() === 'none'
    ? []
    : line[1]!
        .split(',')
        .map((id) => id.trim())
        .sort()
}

// no-spread reports nearly every multi-replica workload; other rules' fixtures are checked
// without it so that each stays about its own rule.
function ruleIds(file: string, id: string): string[] {
  const text = readFileSync(file, 'utf8')
  const result = check([{ name: file, text }], { ignore: id === 'no-spread' ? [] : ['no-spread'] })
  return [...new Set(result.findings.map((f) => f.rule))].sort()
}

describe('rule fixtures', () => {
  test('every rule has a fixture directory, and every directory is a rule', () => {
    assert.deepEqual(readdirSync(fixtures).sort(), RULES.map((r) => r.id).sort())
  })

  for (const rule of RULES) {
    test(`${rule.id}: bad.yaml triggers it`, () => {
      const file = `${fixtures}/${rule.id}/bad.yaml`
      const want = expected(readFileSync(file, 'utf8'))
      assert.ok(want.includes(rule.id), 'bad.yaml must expect its own rule')
      assert.deepEqual(ruleIds(file, rule.id), want)
    })
    test(`${rule.id}: good.yaml does not`, () => {
      const file = `${fixtures}/${rule.id}/good.yaml`
      const want = expected(readFileSync(file, 'utf8'))
      assert.ok(!want.includes(rule.id), 'good.yaml must not expect its own rule')
      assert.deepEqual(ruleIds(file, rule.id), want)
    })
  }
})

describe('rule metadata', () => {
  test('ids are unique, kebab-case, with a severity and a summary', () => {
    const ids = RULES.map((r) => r.id)
    assert.equal(new Set(ids).size, ids.length)
    for (const rule of RULES) {
      assert.match(rule.id, /^[a-z0-9]+(-[a-z0-9]+)*$/)
      assert.ok(['error', 'warning', 'info'].includes(rule.severity))
      assert.ok(rule.summary.length > 20)
    }
  })

  test('docs/rules.md documents every rule with its severity, and no other', () => {
    const docs = readFileSync(fromRoot('docs/rules.md'), 'utf8')
    const headings = [...docs.matchAll(/^## `([a-z0-9-]+)`/gm)].map((m) => m[1])
    assert.deepEqual(
      headings,
      RULES.map((r) => r.id),
    )
    for (const rule of RULES) {
      const section = docs.split(`## \`${rule.id}\``)[1]!.split('\n## ')[0]!
      assert.match(section, new RegExp(`Severity: \\*\\*${rule.severity}\\*\\*`), rule.id)
      assert.ok(
        section.includes(`Applies to: ${SCOPE_TEXT[rule.scope]}.`),
        `${rule.id} says what it applies to`,
      )
      assert.match(section, /```yaml\n/, `${rule.id} has a fixing YAML example`)
    }
  })
})
