// examples/Dockerfile and examples/k8s describe the same container: the image's command is
// the one the Deployment runs, in exec form, with node as PID 1 and SIGTERM as stop signal.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { parse } from 'yaml'
import { fromRoot } from './helpers.js'

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function instructions(text: string): { op: string; args: string }[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [op = '', ...rest] = line.split(/\s+/)
      return { op: op.toUpperCase(), args: rest.join(' ') }
    })
}

test('examples/Dockerfile: multi-stage, exec-form node as PID 1, STOPSIGNAL SIGTERM, the Deployment command', () => {
  const steps = instructions(readFileSync(fromRoot('examples/Dockerfile'), 'utf8'))
  const stages = steps.filter((s) => s.op === 'FROM')
  assert.ok(stages.length >= 2, 'a build stage and a runtime stage')
  const final = steps.slice(steps.lastIndexOf(stages.at(-1) as (typeof steps)[number]))
  const cmd = final.filter((s) => s.op === 'CMD').at(-1)
  assert.ok(cmd, 'the runtime stage has a CMD')
  const command = JSON.parse(cmd.args) as string[] // exec form is a JSON array; shell form throws
  assert.equal(command[0], 'node', 'node itself is PID 1')
  assert.equal(final.filter((s) => s.op === 'ENTRYPOINT').length, 0, 'no entrypoint wrapper')
  assert.deepEqual(
    final.filter((s) => s.op === 'STOPSIGNAL').map((s) => s.args),
    ['SIGTERM'],
  )
  assert.deepEqual(
    final.filter((s) => s.op === 'USER').map((s) => s.args),
    ['node'],
    'not root',
  )
  const deployment = parse(readFileSync(fromRoot('examples/k8s/deployment.yaml'), 'utf8'))
  const container = deployment.spec.template.spec.containers[0]
  assert.deepEqual(command, container.command, 'the image runs what the Deployment runs')
})
