// The runtime goes into production images: it must import nothing but Node built-ins, and
// never the CLI tools (whose libraries, like yaml, stay out of the application's graph).
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { test } from 'node:test'
import { fromRoot } from './helpers.js'

test('the runtime imports only node: built-ins and its own modules, never the tools', () => {
  const root = fromRoot('dist/src')
  const seen = new Set<string>()
  const queue = [join(root, 'index.js')]
  const external: string[] = []
  while (queue.length > 0) {
    const file = queue.pop() as string
    if (seen.has(file)) continue
    seen.add(file)
    const source = readFileSync(file, 'utf8')
    for (const match of source.matchAll(
      /(?:import|export)[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g,
    )) {
      const specifier = (match[1] ?? match[2]) as string
      if (specifier.startsWith('.')) queue.push(join(dirname(file), specifier))
      else if (!specifier.startsWith('node:'))
        external.push(`${relative(root, file)} imports ${specifier}`)
    }
  }
  assert.deepEqual(external, [])
  const tools = [...seen]
    .map((file) => relative(root, file))
    .filter((file) => /^(cli|check|rollout|serve|supervisor)\//.test(file))
  assert.deepEqual(tools, [])
  assert.ok(seen.size >= 8, `followed ${seen.size} modules`)
})

test('package.json exports the runtime from dist/src for Node >= 20', () => {
  const pkg = JSON.parse(readFileSync(fromRoot('package.json'), 'utf8'))
  assert.equal(pkg.exports['.'].default, './dist/src/index.js')
  assert.ok(pkg.engines.node.includes('20'))
})
