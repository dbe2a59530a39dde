import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { closest } from '../src/cli/args.js'
import { exited, fromRoot, spawnNode } from './helpers.js'

const bin = fromRoot('bin/lameduck.js')

test('lameduck --help lists the commands and exits 0', async () => {
  const run = spawnNode(bin, ['--help'])
  const exit = await exited(run.child, 'lameduck --help')
  assert.equal(exit.code, 0)
  assert.match(run.stdout(), /Usage: lameduck <command>/)
})

test('an unknown command names itself and exits 2', async () => {
  const run = spawnNode(bin, ['frobnicate'])
  const exit = await exited(run.child, 'lameduck frobnicate')
  assert.equal(exit.code, 2)
  assert.match(run.stderr(), /unknown command 'frobnicate'/)
})

async function lameduck(args: string[]) {
  const run = spawnNode(bin, args)
  const exit = await exited(run.child, `lameduck ${args.join(' ')}`)
  return { code: exit.code, stdout: run.stdout(), stderr: run.stderr() }
}

test('top-level help lists --version; version, --version and -V print it', async () => {
  const help = await lameduck(['--help'])
  assert.match(help.stdout, /^ {2}-V, --version +print the version/m)
  const { version } = JSON.parse(readFileSync(fromRoot('package.json'), 'utf8'))
  for (const name of ['version', '--version', '-V']) {
    const ran = await lameduck([name])
    assert.equal(ran.code, 0, name)
    assert.equal(ran.stdout, `${version}\n`, name)
  }
})

test('"did you mean" for a command, a top-level option and `help <command>`', async () => {
  const cases: [string[], RegExp][] = [
    [['rolout'], /^lameduck: unknown command 'rolout' \(did you mean 'rollout'\?\)/],
    [['chekc', 'k8s/'], /unknown command 'chekc' \(did you mean 'check'\?\)/],
    [['--verison'], /unknown option '--verison' \(did you mean '--version'\?\)/],
    [['help', 'rolout'], /unknown command 'rolout' \(did you mean 'rollout'\?\)/],
    [
      ['help', 'frobnicate'],
      /unknown command 'frobnicate'; expected a command: check, rollout, serve/,
    ],
  ]
  for (const [args, expected] of cases) {
    const ran = await lameduck(args)
    assert.equal(ran.code, 2, `lameduck ${args.join(' ')} is an error`)
    assert.match(ran.stderr, expected)
    assert.equal(ran.stdout, '', 'no usage on stdout')
  }
})

test('each command names an unknown option with the closest one, in its own words', async () => {
  const cases: [string[], string][] = [
    [
      ['rollout', '--rollout', '2', '--', 'node', 'x.js'],
      "unknown option '--rollout' (did you mean '--rollouts'?)",
    ],
    [
      ['serve', '--drain-dela', '2s', '--', 'true'],
      "unknown option '--drain-dela' (did you mean '--drain-delay'?)",
    ],
    [
      ['serve', '--workers', '2', '--reload-drian', '1s', 'app.js'],
      "unknown option '--reload-drian' (did you mean '--reload-drain'?)",
    ],
  ]
  for (const [args, expected] of cases) {
    const ran = await lameduck(args)
    assert.equal(ran.code, 2, args.join(' '))
    assert.ok(ran.stderr.includes(expected), `${args.join(' ')}: ${ran.stderr}`)
    assert.doesNotMatch(ran.stderr, /positional argument|Unknown option/)
  }
})

test('closest: a typo, a unique prefix, nothing when nothing is close', () => {
  assert.equal(closest('rolout', ['check', 'rollout', 'serve']), 'rollout')
  assert.equal(closest('--formt', ['--format', '--fail-on']), '--format')
  assert.equal(closest('no-prestop', ['no-prestop-delay', 'no-drain-delay']), 'no-prestop-delay')
  assert.equal(closest('no', ['no-prestop-delay', 'no-drain-delay']), undefined)
  assert.equal(closest('zebra', ['check', 'rollout', 'serve']), undefined)
})
