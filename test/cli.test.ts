import assert from 'node:assert/strict'
import { test } from 'node:test'
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
