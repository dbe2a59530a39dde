import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { serveCommand } from '../../src/check/commands.js'
import { type CheckResult, check } from '../../src/check/index.js'
import { formatText } from '../../src/check/reporters/text.js'
import { fromRoot } from '../helpers.js'

// Containers whose command runs `lameduck serve`: lameduck apps by their command alone, with
// drain + shutdown + the child's stop time (proxy mode) as their budget.

function fixture(name: string): CheckResult {
  const file = fromRoot(`test/fixtures/check/serve/${name}.yaml`)
  return check([{ name: file, text: readFileSync(file, 'utf8') }], { ignore: ['no-spread'] })
}

function rules(result: CheckResult): string[] {
  return [...new Set(result.findings.map((f) => f.rule))].sort()
}

function finding(result: CheckResult, rule: string) {
  const found = result.findings.find((f) => f.rule === rule)
  assert.ok(found, `no ${rule} finding in ${JSON.stringify(result.findings.map((f) => f.rule))}`)
  return found
}

describe('lameduck serve in the checker', () => {
  test('flags (durations) set the budget, win over LAMEDUCK_* variables, and stop at --', () => {
    const r = fixture('flags-too-short')
    const [t] = r.timelines
    assert.deepEqual(t!.lameduck?.reason, 'serve')
    assert.equal(t!.lameduck?.serve?.mode, 'proxy')
    assert.deepEqual(
      [t!.drain.seconds, t!.shutdown.seconds, t!.hooks.seconds, t!.childStop?.seconds],
      [5, 15, 0, 3],
    )
    assert.deepEqual([t!.drain.source, t!.drain.flag], ['flag', '--drain-delay'])
    assert.equal(t!.totalSeconds, 28)
    assert.deepEqual(rules(r), ['grace-period-too-short'])
    assert.equal(
      finding(r, 'grace-period-too-short').message,
      'drain 5 s + shutdown 15 s + child stop 3 s + margin 5 s = 28 s > grace 25 s',
    )
    assert.match(finding(r, 'grace-period-too-short').fix, /terminationGracePeriodSeconds: 28/)
  })

  test('a grace period that covers the budget is fine', () => {
    const r = fixture('flags-enough')
    assert.equal(r.timelines[0]!.totalSeconds, 28)
    assert.deepEqual(rules(r), [])
  })

  test('without flags the LAMEDUCK_*_MS variables apply (node …/bin/lameduck.js serve)', () => {
    const r = fixture('env')
    const [t] = r.timelines
    assert.equal(t!.lameduck?.reason, 'serve')
    assert.deepEqual(
      [t!.drain.seconds, t!.shutdown.seconds, t!.hooks.seconds, t!.childStop?.seconds],
      [4, 6, 0, 2.5],
    )
    assert.equal(t!.childStop?.source, 'env')
    assert.equal(
      finding(r, 'grace-period-too-short').message,
      'drain 4 s + shutdown 6 s + child stop 2.5 s + margin 5 s = 17.5 s > grace 15 s',
    )
  })

  test('with nothing set, the serve defaults: child stop 10 s (behind tini, from node_modules/.bin)', () => {
    const r = fixture('defaults')
    const [t] = r.timelines
    assert.equal(t!.lameduck?.reason, 'serve')
    assert.deepEqual(
      [t!.drain.source, t!.shutdown.source, t!.childStop?.source],
      ['default', 'default', 'default'],
    )
    assert.equal(
      finding(r, 'grace-period-too-short').message,
      'drain 10 s + shutdown 20 s + child stop 10 s + margin 5 s = 45 s > grace 30 s (the default)',
    )
    const text = formatText(r)
    assert.match(text, /child stop 10 s/)
    assert.match(text, /k{10}/)
  })

  test('--workers mode: the library budget (hooks, no child) from its flags', () => {
    const r = fixture('workers')
    const [t] = r.timelines
    assert.equal(t!.lameduck?.serve?.mode, 'workers')
    assert.equal(t!.childStop, undefined)
    assert.deepEqual([t!.drain.seconds, t!.shutdown.seconds, t!.hooks.seconds], [2, 3, 1])
    assert.equal(
      finding(r, 'grace-period-too-short').message,
      'drain 2 s + shutdown 3 s + hooks 1 s + margin 5 s = 11 s > grace 10 s',
    )
  })

  test('npx lameduck serve as PID 1 is flagged like npm start, and still counts as lameduck', () => {
    const r = fixture('npx')
    const f = finding(r, 'npm-start')
    assert.match(f.message, /makes npx the process that gets SIGTERM/)
    assert.match(f.fix, /"node_modules\/.bin\/lameduck", "serve"/)
    assert.equal(r.timelines[0]!.lameduck?.reason, 'serve')
    assert.equal(r.timelines[0]!.drain.seconds, 5)
  })

  test('a bad flag value is reported like an invalid LAMEDUCK_* value, and the default assumed', () => {
    const r = fixture('bad-flag')
    const bad = r.findings.filter((f) => f.rule === 'lameduck-env-invalid')
    assert.deepEqual(
      bad.map((f) => f.message),
      [
        'lameduck serve --drain-delay is "5 seconds", but it expects a duration such as 500ms, 2s or 1m (a bare number means seconds); lameduck serve exits 2 at start-up',
        'lameduck serve --child-stop-timeout is "-1s", but it expects a duration such as 500ms, 2s or 1m (a bare number means seconds); lameduck serve exits 2 at start-up',
      ],
    )
    assert.equal(bad[0]!.fix, '--drain-delay 10s (10 s is the default)')
    assert.equal(bad[0]!.path, 'spec.template.spec.containers[0].command')
    const [t] = r.timelines
    assert.deepEqual([t!.drain.seconds, t!.childStop?.seconds], [10, 10])
  })

  test('other lameduck commands and mere mentions are not lameduck apps', () => {
    const r = fixture('not-serve')
    assert.deepEqual(
      r.timelines.map((t) => t.lameduck),
      [undefined, undefined],
    )
  })

  test('the command forms serve is run by', () => {
    const forms: [string[], string | undefined][] = [
      [['lameduck', 'serve', '--', 'x'], 'lameduck'],
      [['npx', 'lameduck', 'serve', '--', 'x'], 'npx lameduck'],
      [['npx', '-y', 'lameduck', 'serve', '--', 'x'], 'npx -y lameduck'],
      [['/app/node_modules/.bin/lameduck', 'serve'], '/app/node_modules/.bin/lameduck'],
      [
        ['node', '--enable-source-maps', 'bin/lameduck.js', 'serve'],
        'node --enable-source-maps bin/lameduck.js',
      ],
      [['sh', '-c', 'exec lameduck serve -- ./app'], 'lameduck'],
      [['dumb-init', 'lameduck', 'serve', '--workers', '2', 'app.js'], 'lameduck'],
      [['lameduck', 'check', 'k8s/'], undefined],
      [['lameduck.js', 'serve'], undefined],
      [['node', 'server.js', 'lameduck', 'serve'], undefined],
    ]
    for (const [argv, program] of forms) {
      assert.equal(serveCommand(argv)?.program, program, JSON.stringify(argv))
    }
    assert.deepEqual(
      serveCommand([
        'lameduck',
        'serve',
        '--quiet',
        '--drain-delay=1s',
        '--port',
        '80',
        '--',
        'a',
        '--drain-delay',
        '9s',
      ])?.flags,
      { 'drain-delay': '1s', port: '80' },
    )
  })
})
