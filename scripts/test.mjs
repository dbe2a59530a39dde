#!/usr/bin/env node
// Runs the compiled test suite with node's own test runner.
// The files are listed explicitly: `node --test DIR` searches a directory on Node 20 but
// treats its arguments as glob patterns from Node 21 on, so neither form works on both.
//
//   node scripts/test.mjs                 every dist/test/**/*.test.js
//   node scripts/test.mjs probes rollout  only files whose path contains one of the words
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..')
const testRoot = join(root, 'dist', 'test')

function walk(dir) {
  const out = []
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    if (statSync(path).isDirectory()) out.push(...walk(path))
    else if (name.endsWith('.test.js')) out.push(path)
  }
  return out
}

let files
try {
  files = walk(testRoot).sort()
} catch {
  console.error(`test: ${relative(root, testRoot)} not found; run \`npm run build\` first`)
  process.exit(2)
}
const filters = process.argv.slice(2)
if (filters.length > 0) files = files.filter((f) => filters.some((w) => f.includes(w)))
if (files.length === 0) {
  console.error(`test: no test file matches ${filters.join(', ')}`)
  process.exit(2)
}

console.log(`test: node ${process.version}, ${files.length} files`)
const concurrency = process.env.LAMEDUCK_TEST_CONCURRENCY ?? '2'
const result = spawnSync(
  process.execPath,
  ['--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
  { stdio: 'inherit', cwd: root },
)
process.exit(result.status ?? 1)
