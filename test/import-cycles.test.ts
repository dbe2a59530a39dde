// Modules that import each other (directly or around a longer loop) are one module split in
// two files: neither can be read, tested or loaded alone, and the order in which their
// top-level code runs depends on which one is imported first. The compiled files are read,
// so type-only imports, which leave no trace at run time, do not count.
import assert from 'node:assert/strict'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { test } from 'node:test'
import { fromRoot } from './helpers.js'

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) return walk(path)
    return name.endsWith('.js') ? [path] : []
  })
}

/** Each module's relative imports, static and dynamic. */
function importGraph(root: string): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const file of walk(root)) {
    const source = readFileSync(file, 'utf8')
    const targets: string[] = []
    for (const match of source.matchAll(
      /(?:import|export)[^'"]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g,
    )) {
      targets.push(relative(root, join(dirname(file), (match[1] ?? match[2]) as string)))
    }
    graph.set(relative(root, file), targets)
  }
  return graph
}

/** The strongly connected components with more than one module (Tarjan's algorithm). */
function cycles(graph: Map<string, string[]>): string[][] {
  let next = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const visit = (node: string) => {
    index.set(node, next)
    low.set(node, next)
    next++
    stack.push(node)
    onStack.add(node)
    for (const target of graph.get(node) ?? []) {
      if (!index.has(target)) {
        visit(target)
        low.set(node, Math.min(low.get(node)!, low.get(target)!))
      } else if (onStack.has(target)) {
        low.set(node, Math.min(low.get(node)!, index.get(target)!))
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = []
      let member: string
      do {
        member = stack.pop()!
        onStack.delete(member)
        component.push(member)
      } while (member !== node)
      if (component.length > 1) found.push(component.sort())
    }
  }
  for (const node of graph.keys()) if (!index.has(node)) visit(node)
  return found
}

test('no two modules of the CLI or the checker import each other, around any loop', () => {
  const graph = importGraph(fromRoot('dist/src'))
  assert.ok(graph.size > 50, `read ${graph.size} modules`)
  const loops = cycles(graph).filter((c) => c.some((m) => /^(cli|check)\//.test(m)))
  assert.deepEqual(loops, [])
})
