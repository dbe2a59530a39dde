// The rollout command's CLI conventions, as a user meets them: help with examples, help
// through `lameduck help rollout`, the version, one clear line for a bad option.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { exited, fromRoot, spawnNode } from '../helpers.js'
import { bin } from './lab-helpers.js'

async function lameduck(args: string[]) {
  const run = spawnNode(bin, args)
  const exit = await exited(run.child, `lameduck ${args.join(' ')}`)
  return { code: exit.code, stdout: run.stdout(), stderr: run.stderr() }
}

test('`lameduck help rollout` and `lameduck rollout --help` print the same help, with examples', async () => {
  const viaHelp = await lameduck(['help', 'rollout'])
  const viaFlag = await lameduck(['rollout', '--help'])
  assert.equal(viaHelp.code, 0)
  assert.equal(viaFlag.code, 0)
  assert.equal(viaHelp.stdout, viaFlag.stdout)
  assert.match(viaHelp.stdout, /^Usage: lameduck rollout \[options\] -- <command> \[<args>\.\.\.\]/)
  assert.match(viaHelp.stdout, /\nExamples\n {2}# /)
  // One placeholder style: every option value is written <like-this>.
  assert.doesNotMatch(viaHelp.stdout, /^ {2}--[a-z-]+ [A-Z]/m)
})

test('the top-level help has examples', async () => {
  const { code, stdout } = await lameduck(['--help'])
  assert.equal(code, 0)
  assert.match(stdout, /\nExamples:\n {2}lameduck rollout /)
})

test('`lameduck rollout --version` prints the package version', async () => {
  const { code, stdout } = await lameduck(['rollout', '--version'])
  const pkg = JSON.parse(readFileSync(fromRoot('package.json'), 'utf8'))
  assert.equal(code, 0)
  assert.equal(stdout.trim(), pkg.version)
})

test('a bad option gets one line in the help words, exit 2, no parseArgs wording', async () => {
  for (const args of [['--rate'], ['--quiet=1'], ['--nope']]) {
    const { code, stderr } = await lameduck(['rollout', ...args, '--', 'node'])
    assert.equal(code, 2, args.join(' '))
    assert.equal(stderr.trim().split('\n').length, 1, stderr)
    assert.match(stderr, /^lameduck rollout: /)
    assert.doesNotMatch(stderr, /Option '|ERR_PARSE_ARGS|argument missing/)
  }
})
