import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { RULES } from '../../src/check/index.js'
import { inputMode } from '../../src/cli/check.js'
import { exited, fromRoot, spawnNode } from '../helpers.js'

// The command as a user runs it: a real child process, real exit codes, real stdin.
const bin = fromRoot('bin/lameduck.js')
const root = fromRoot('.')
const RUN_MS = 30_000

interface Ran {
  code: number | null
  stdout: string
  stderr: string
}

async function lameduckCheck(args: string[]): Promise<Ran> {
  const run = spawnNode(bin, ['check', ...args], { cwd: root })
  const exit = await exited(run.child, `lameduck check ${args.join(' ')}`, RUN_MS)
  return { code: exit.code, stdout: run.stdout(), stderr: run.stderr() }
}

/** Like lameduckCheck, with `input` piped to stdin. */
async function withStdin(args: string[], input: string): Promise<Ran> {
  const child = spawn(process.execPath, [bin, 'check', ...args], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
  })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  try {
    child.stdin.end(input)
    const exit = await exited(child, `lameduck check ${args.join(' ')} < input`, RUN_MS)
    return { code: exit.code, stdout, stderr }
  } finally {
    child.kill('SIGKILL')
  }
}

const bad = 'test/fixtures/check/rules/grace-period-too-short/bad.yaml'
const seed = 'test/fixtures/check/seed-deployment.yaml'

function noStackTrace(ran: Ran) {
  assert.doesNotMatch(ran.stderr, /^\s+at /m, 'no stack trace')
  assert.equal(ran.stderr.trim().split('\n').length, 1, `one line: ${ran.stderr}`)
}

describe('lameduck check: output and exit codes', () => {
  test('the recommended example passes: exit 0, a timeline, no findings', async () => {
    const ran = await lameduckCheck(['examples/k8s'])
    assert.equal(ran.code, 0, ran.stderr)
    assert.match(ran.stdout, /^Termination timelines/m)
    assert.match(ran.stdout, /Deployment\/web › web {2}examples\/k8s\/deployment\.yaml:\d+:\d+/)
    assert.match(ran.stdout, /= 40 s ≤ grace 45 s/)
    assert.match(ran.stdout, /^0 errors, 0 warnings, 0 info \(2 files, 2 objects, 1 workload\)$/m)
  })

  test('a finding is file:line:col severity rule-id object › container, the numbers, the fix; exit 1', async () => {
    const ran = await lameduckCheck([bad])
    assert.equal(ran.code, 1)
    const lines = ran.stdout.split('\n')
    // Longer than 100 columns on one line, so the object goes on the next.
    assert.deepEqual(lines.slice(0, 3), [
      'test/fixtures/check/rules/grace-period-too-short/bad.yaml:16:5  error  grace-period-too-short',
      '  Deployment/web › web',
      '    drain 10 s + shutdown 20 s + hooks 5 s + margin 5 s = 40 s > grace 30 s (the default)',
    ])
    assert.match(lines[3]!, /^ {4}fix: set terminationGracePeriodSeconds: 40/)
    // The rationale comes once, after the findings.
    assert.match(ran.stdout, /^Why these matter\n {2}grace-period-too-short: the kubelet SIGKILLs/m)
    // The bar: 10 s drain, 20 s close, then SIGKILL at 30 s cuts hooks and margin.
    assert.match(ran.stdout, /^ {4}d{10}c{20}\|h{5}m{5}$/m)
  })

  test('--fail-on decides the exit code', async () => {
    assert.equal((await lameduckCheck([seed])).code, 0)
    assert.equal((await lameduckCheck(['--fail-on', 'warning', seed])).code, 0)
    assert.equal(
      (await lameduckCheck(['--fail-on', 'info', '--min-severity', 'warning', seed])).code,
      0,
    )
    assert.equal((await lameduckCheck(['--fail-on', 'info', seed])).code, 1)
    assert.equal((await lameduckCheck(['--fail-on=none', bad])).code, 0)
  })

  test('--ignore drops a rule; an unknown id is a usage error', async () => {
    assert.equal((await lameduckCheck(['--ignore', 'grace-period-too-short', bad])).code, 0)
    const ran = await lameduckCheck(['--ignore', 'grace-too-short', bad])
    assert.equal(ran.code, 2)
    assert.match(ran.stderr, /^lameduck check: --ignore: unknown rule id 'grace-too-short'/)
    noStackTrace(ran)
  })

  test('--format json: findings with their fields, timelines in seconds', async () => {
    const ran = await lameduckCheck(['--format', 'json', '--ignore', 'no-spread', bad])
    assert.equal(ran.code, 1)
    const out = JSON.parse(ran.stdout)
    assert.equal(out.version, 1)
    assert.deepEqual(out.summary, {
      error: 1,
      warning: 0,
      info: 0,
      files: 1,
      objects: 2,
      workloads: 1,
      inputErrors: 0,
      notServed: 0,
      skipped: 0,
    })
    assert.deepEqual(out.errors, [])
    assert.match(out.rules['grace-period-too-short'].rationale, /SIGKILLs/)
    assert.deepEqual(out.findings[0], {
      rule: 'grace-period-too-short',
      severity: 'error',
      file: bad,
      line: 16,
      column: 5,
      path: 'spec.template.spec.terminationGracePeriodSeconds',
      message: out.findings[0].message,
      fix: out.findings[0].fix,
      object: 'Deployment/web',
      namespace: null,
      container: 'web',
      lameduck: true,
    })
    const [t] = out.timelines
    assert.equal(t.container, 'web')
    assert.deepEqual(t.lameduck, { reason: 'annotation', detail: 'lameduck/app on the Deployment' })
    assert.deepEqual(t.grace, { seconds: 30, source: 'default' })
    assert.deepEqual(t.preStop, { kind: 'none', seconds: 0, known: true, atLeast: false })
    assert.deepEqual(t.drain, {
      seconds: 10,
      variable: 'LAMEDUCK_DRAIN_DELAY_MS',
      source: 'default',
    })
    assert.deepEqual(
      [t.close.seconds, t.hooks.seconds, t.margin.seconds, t.total.seconds, t.fits],
      [20, 5, 5, 40, false],
    )
  })

  test('--format sarif: SARIF 2.1.0 with rules, levels and physical locations', async () => {
    const ran = await lameduckCheck(['--format', 'sarif', '--fail-on', 'none', seed, bad])
    assert.equal(ran.code, 0)
    const sarif = JSON.parse(ran.stdout)
    assert.equal(sarif.version, '2.1.0')
    assert.equal(sarif.$schema, 'https://json.schemastore.org/sarif-2.1.0.json')
    assert.equal(sarif.runs.length, 1)
    const { driver } = sarif.runs[0].tool
    assert.equal(driver.name, 'lameduck check')
    assert.deepEqual(
      driver.rules.map((r: { id: string }) => r.id),
      [...RULES.map((r) => r.id), 'input-error'],
    )
    for (const rule of driver.rules) {
      assert.ok(['error', 'warning', 'note'].includes(rule.defaultConfiguration.level))
      assert.equal(typeof rule.shortDescription.text, 'string')
      assert.match(
        rule.helpUri,
        /^https:\/\/unpkg\.com\/lameduck@[^/]+\/docs\/rules\.md#[a-z0-9-]+$/,
      )
    }
    assert.equal(sarif.runs[0].invocations[0].executionSuccessful, true)
    const results = sarif.runs[0].results
    assert.deepEqual(
      results.map((r: { ruleId: string; level: string }) => [r.ruleId, r.level]),
      [
        ['no-spread', 'note'],
        ['readiness-path', 'note'],
        ['grace-period-too-short', 'error'],
        ['no-spread', 'note'],
      ],
    )
    const prints = new Set()
    for (const r of results) {
      assert.equal(driver.rules[r.ruleIndex].id, r.ruleId)
      assert.match(r.message.text, /^Deployment\/[a-z-]+( › [a-z-]+)?: .*Fix: /)
      assert.match(r.partialFingerprints['lameduckFinding/v1'], /^[0-9a-f]{32}$/)
      prints.add(r.partialFingerprints['lameduckFinding/v1'])
      const location = r.locations[0].physicalLocation
      assert.match(location.artifactLocation.uri, /^test\/fixtures\/check\//)
      assert.ok(Number.isInteger(location.region.startLine) && location.region.startLine >= 1)
      assert.ok(Number.isInteger(location.region.startColumn) && location.region.startColumn >= 1)
    }
    assert.equal(prints.size, results.length, 'one fingerprint per finding')
  })

  test('--help explains every option with its default; --list-rules lists every rule', async () => {
    const help = await lameduckCheck(['--help'])
    assert.equal(help.code, 0)
    for (const text of [
      '--format',
      'Default: text',
      '--fail-on',
      'Default: error',
      '--ignore',
      'Default: none',
      '--list-rules',
      'Exit status',
    ]) {
      assert.ok(help.stdout.includes(text), text)
    }
    const list = await lameduckCheck(['--list-rules'])
    assert.equal(list.code, 0)
    for (const rule of RULES)
      assert.match(list.stdout, new RegExp(`^${rule.id} +${rule.severity} `, 'm'))
  })

  test('lameduck --help lists the check command', async () => {
    const run = spawnNode(bin, ['--help'])
    await exited(run.child, 'lameduck --help')
    assert.match(run.stdout(), /^ {2}check +check Kubernetes manifests/m)
  })
})

describe('lameduck check: input', () => {
  test("'-' reads multi-document YAML from stdin", async () => {
    const deployment = await import('node:fs/promises').then((fs) =>
      fs.readFile(fromRoot(bad), 'utf8'),
    )
    const first = `${deployment}\n---\n`
    const ran = await withStdin(['-'], `${first}${deployment.replaceAll('web', 'api')}`)
    assert.equal(ran.code, 1)
    const secondStart = first.split('\n').length - 1
    assert.deepEqual(ran.stdout.match(/^<stdin>:\d+:\d+ {2}error {2}grace-period-too-short/gm), [
      '<stdin>:16:5  error  grace-period-too-short',
      `<stdin>:${16 + secondStart}:5  error  grace-period-too-short`,
    ])
  })

  test('with no argument, piped input is read', async () => {
    const ran = await withStdin(
      [],
      'apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n    - {name: a, image: x, command: [npm, start]}\n',
    )
    assert.equal(ran.code, 1)
    assert.match(ran.stdout, /^<stdin>:6:\d+ {2}error {2}npm-start {2}Pod\/p › a$/m)
  })

  test('with no argument on a real terminal: usage, exit 2', {
    skip: existsSync('/usr/bin/script') ? false : 'needs script(1) for a pseudo-terminal',
  }, async () => {
    const quote = (s: string) => `'${s.replaceAll("'", "'\\''")}'`
    const child = spawn(
      '/usr/bin/script',
      ['-qec', `${quote(process.execPath)} ${quote(bin)} check`, '/dev/null'],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk
    })
    try {
      const exit = await exited(child, 'lameduck check on a pseudo-terminal', RUN_MS)
      assert.equal(exit.code, 2, output)
      assert.match(output, /Usage: lameduck check \[options\]/)
    } finally {
      child.kill('SIGKILL')
    }
  })

  test('with no argument on a terminal: usage (decided by inputMode)', () => {
    assert.equal(inputMode([], true), 'usage')
    assert.equal(inputMode([], false), 'stdin')
    assert.equal(inputMode(['k8s/'], true), 'paths')
  })

  test('kind: List in JSON', async () => {
    const ran = await lameduckCheck(['test/fixtures/check/input/list.json'])
    assert.equal(ran.code, 1)
    assert.match(ran.stdout, /list\.json:21:63 {2}error {2}npm-start /)
  })

  test('a missing path: exit 2 naming it; the other inputs are still checked', async () => {
    const ran = await lameduckCheck(['examples/k8s', 'no/such/dir.yaml'])
    assert.equal(ran.code, 2)
    assert.equal(ran.stderr, 'lameduck check: no/such/dir.yaml: no such file or directory\n')
    assert.match(
      ran.stdout,
      /^no\/such\/dir\.yaml {2}error {2}input\n {4}no such file or directory$/m,
    )
    assert.match(ran.stdout, /= 40 s ≤ grace 45 s/)
    assert.match(ran.stdout, /1 input could not be read\)$/m)
  })

  test('malformed YAML: exit 2 with file, line and column', async () => {
    const ran = await lameduckCheck(['test/fixtures/check/input/malformed.yaml'])
    assert.equal(ran.code, 2)
    assert.match(
      ran.stderr,
      /^lameduck check: test\/fixtures\/check\/input\/malformed\.yaml:11:7: YAML syntax error: /,
    )
    noStackTrace(ran)
  })

  test('a duplicate key: exit 2 at its line; the other objects of the file are checked', async () => {
    const file = 'test/fixtures/check/input/duplicate-key.yaml'
    const ran = await lameduckCheck([file])
    assert.equal(ran.code, 2)
    assert.equal(
      ran.stderr,
      `lameduck check: ${file}:12:3: duplicate key "LOG_LEVEL" in data (first at line 10): kubectl's strict field validation (its default) rejects the object; it is not checked\n`,
    )
    assert.match(
      ran.stdout,
      /duplicate-key\.yaml:\d+:\d+ {2}error {2}grace-period-too-short\n {2}Deployment\/web/,
    )
    assert.match(ran.stdout, /\(1 file, 2 objects, 1 workload; 1 input could not be read\)$/m)
  })

  test('an unrendered Helm template that parses as YAML: exit 2, "unrendered template"', async () => {
    const file = 'test/fixtures/check/input/helm-unrendered.yaml'
    const ran = await lameduckCheck(['--format', 'json', file])
    assert.equal(ran.code, 2)
    assert.match(
      ran.stderr,
      /^lameduck check: .*helm-unrendered\.yaml:9:13: unrendered template \{\{ \.Values\.replicaCount \}\}: .*pipe `helm template` output in\n$/,
    )
    const report = JSON.parse(ran.stdout)
    assert.deepEqual(report.findings, [], 'no invalid-field findings about {{ }}')
    assert.equal(report.summary.objects, 1, 'the Service after it is read')
  })

  test('an alias bomb: exit 2, refused', async () => {
    const ran = await lameduckCheck(['test/fixtures/check/input/alias-bomb.yaml'])
    assert.equal(ran.code, 2)
    assert.match(ran.stderr, /alias-bomb\.yaml:\d+:\d+: YAML aliases expand more than \d+ times/)
    noStackTrace(ran)
  })

  test('an empty file: exit 2, nothing was found', async () => {
    const ran = await lameduckCheck(['test/fixtures/check/input/empty.yaml'])
    assert.equal(ran.code, 2)
    assert.match(
      ran.stderr,
      /no Kubernetes objects found in test\/fixtures\/check\/input\/empty\.yaml/,
    )
    assert.match(ran.stdout, /0 objects/)
  })

  test('helm template output on stdin', async () => {
    const rendered = await import('node:fs/promises').then((fs) =>
      fs.readFile(fromRoot('test/fixtures/check/input/helm-render.yaml'), 'utf8'),
    )
    // A chart for an app that uses lameduck without saying so in the manifest.
    const ran = await withStdin(['--format', 'json', '--assume-lameduck'], rendered)
    assert.equal(ran.code, 1)
    const out = JSON.parse(ran.stdout)
    assert.deepEqual(
      out.findings.map((f: { rule: string }) => f.rule),
      [
        'grace-period-too-short',
        'no-spread',
        'npm-start',
        'liveness-same-as-readiness',
        'readiness-path',
      ],
    )
    assert.equal(out.summary.objects, 3)
  })

  describe('files the user should not have passed', () => {
    let dir: string
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'lameduck-check-cli-'))
      await writeFile(
        join(dir, 'image.yaml'),
        Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0]),
      )
    })
    after(async () => {
      await rm(dir, { recursive: true, force: true })
    })

    test('a binary file: exit 2 with the reason', async () => {
      const ran = await lameduckCheck([join(dir, 'image.yaml')])
      assert.equal(ran.code, 2)
      assert.match(
        ran.stderr,
        /image\.yaml: binary file \(NUL byte at offset 8\); expected YAML or JSON/,
      )
      noStackTrace(ran)
    })

    test('bad options: exit 2 with what was expected', async () => {
      const format = await lameduckCheck(['--format', 'xml', 'examples/k8s'])
      assert.equal(format.code, 2)
      assert.equal(
        format.stderr,
        "lameduck check: --format must be one of text, json, sarif; got 'xml'\n",
      )
      const failOn = await lameduckCheck(['--fail-on', 'fatal', 'examples/k8s'])
      assert.match(
        failOn.stderr,
        /--fail-on must be one of error, warning, info, none; got 'fatal'/,
      )
      const unknown = await lameduckCheck(['--strict', 'examples/k8s'])
      assert.equal(unknown.code, 2)
      assert.equal(
        unknown.stderr,
        "lameduck check: unknown option '--strict'; see lameduck check --help\n",
      )
      noStackTrace(unknown)
    })

    test('"did you mean" for an option, a value and a rule id; never parseArgs\' own text', async () => {
      const cases: [string[], string][] = [
        [['--formt', 'json', bad], "unknown option '--formt' (did you mean '--format'?)"],
        [['--format', 'jsn', bad], "got 'jsn' (did you mean 'json'?)"],
        [
          ['--ignore', 'no-prestop', bad],
          "unknown rule id 'no-prestop' (did you mean 'no-prestop-delay'?)",
        ],
        [['--ignore', 'grace-period-to-short', bad], "(did you mean 'grace-period-too-short'?)"],
        [['--format'], '--format expects a value, e.g. --format json; see lameduck check --help'],
        [['--quiet=yes', bad], '--quiet takes no value; see lameduck check --help'],
      ]
      for (const [args, expected] of cases) {
        const ran = await lameduckCheck(args)
        assert.equal(ran.code, 2, args.join(' '))
        assert.ok(ran.stderr.includes(expected), `${args.join(' ')}: ${ran.stderr}`)
        assert.doesNotMatch(ran.stderr, /positional argument|argument missing|Unknown option/)
        noStackTrace(ran)
      }
    })
  })
})
