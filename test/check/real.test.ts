import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { check, readSources } from '../../src/check/index.js'
import { fromRoot } from '../helpers.js'

// The corpus of real public manifests (test/fixtures/real) against the judgement of every
// finding in its JUDGEMENT.md: each unit is checked in its own run, as a user would check one
// project. A finding judged wrong must never come back, a new finding must be judged before
// it is accepted, and the precision figure in the README must be the one the table gives.
const root = fromRoot('test/fixtures/real')
const readme = readFileSync(`${root}/README.md`, 'utf8')
const judgement = readFileSync(`${root}/JUDGEMENT.md`, 'utf8')
const units = [...readme.matchAll(/^- `([^`]+)`$/gm)].map((m) => m[1]!)
const noStdin = (async function* () {})()

interface Row {
  key: string
  verdict: 'right' | 'wrong' | 'debatable'
  before: boolean
  now: boolean
  why: string
}

const rows = new Map<string, Row>()
for (const line of judgement.split('\n')) {
  const cells = line.split(' | ')
  if (
    cells.length !== 10 ||
    !line.startsWith('| ') ||
    cells[5] === 'before' ||
    line.startsWith('| ---')
  )
    continue
  const [unit, rule, object, container, path, before, now, verdict, , why] = cells
  const key = [unit!.slice(2), rule, object, container, path].join(' | ')
  assert.ok(['right', 'wrong', 'debatable'].includes(verdict!), `verdict of ${key}`)
  assert.ok(!rows.has(key), `judged twice: ${key}`)
  rows.set(key, {
    key,
    verdict: verdict as Row['verdict'],
    before: before === 'yes',
    now: now === 'yes',
    why: why!.replace(/ \|$/, ''),
  })
}

async function findings() {
  const out: { key: string; message: string }[] = []
  let workloads = 0
  for (const unit of units) {
    const result = check(await readSources([`${root}/${unit}`], noStdin))
    assert.deepEqual(result.errors, [], `${unit} reads cleanly`)
    workloads += result.workloads
    for (const f of result.findings) {
      out.push({
        key: [unit, f.rule, f.object, f.container ?? '-', f.path].join(' | '),
        message: `${f.file}:${f.line} ${f.message}`,
      })
    }
  }
  return { found: out, workloads }
}

describe('the corpus of real manifests', async () => {
  const { found, workloads } = await findings()

  test('is real and big enough: 30+ repositories, 250+ workloads', () => {
    const repositories = new Set(
      [...readme.matchAll(/^\| \[([^\]]+)\]\(https:\/\/github\.com\//gm)].map((m) => m[1]),
    )
    assert.ok(repositories.size >= 30, `${repositories.size} repositories`)
    assert.ok(workloads >= 250, `${workloads} workloads`)
    assert.ok(units.length >= 30)
  })

  test('no finding judged wrong comes back', () => {
    const back = found.filter((f) => rows.get(f.key)?.verdict === 'wrong')
    assert.deepEqual(
      back.map((f) => `${f.key}: ${f.message} (judged wrong: ${rows.get(f.key)!.why})`),
      [],
    )
  })

  test('every finding has been judged (a new one needs a row in JUDGEMENT.md)', () => {
    // Printed as rows to paste into JUDGEMENT.md once judged (verdict, fix and why to fill in).
    const unjudged = found.filter((f) => !rows.get(f.key)?.now)
    assert.deepEqual(
      unjudged.map(
        (f) => `| ${f.key} | ${rows.has(f.key) ? 'yes' : 'no'} | yes | ? | ? | ? (${f.message}) |`,
      ),
      [],
    )
  })

  test('every finding the table marks as made now is still made', () => {
    const keys = new Set(found.map((f) => f.key))
    const gone = [...rows.values()].filter((r) => r.now && !keys.has(r.key))
    assert.deepEqual(
      gone.map((r) => r.key),
      [],
    )
  })

  test('the precision in JUDGEMENT.md and the README is what the table says: at least 97 %, none wrong', () => {
    const now = [...rows.values()].filter((r) => r.now)
    const right = now.filter((r) => r.verdict === 'right').length
    const figure = `${right} of ${now.length} findings right (${((100 * right) / now.length).toFixed(1)} %)`
    assert.ok(right / now.length >= 0.97, figure)
    assert.deepEqual(
      now.filter((r) => r.verdict === 'wrong').map((r) => r.key),
      [],
    )
    assert.ok(judgement.includes(`**${figure}**`), `JUDGEMENT.md says ${figure}`)
    const main = readFileSync(fromRoot('README.md'), 'utf8')
    assert.ok(main.includes(figure), `README.md says ${figure}`)
  })
})
