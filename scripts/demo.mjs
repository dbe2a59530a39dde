#!/usr/bin/env node
// npm run demo: the rollout lab against examples/naive.ts and examples/server.ts with the same
// settings, then both results side by side. Reports go to .lab/ (JSON, HTML, text).
// Run after `npm run build` (the npm script does it).
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..')
const { DEMO_ARGS, DEMO_SERVICES } = await import('../dist/src/rollout/demo.js')
const { renderComparison } = await import('../dist/src/rollout/report/compare.js')

const out = join(root, '.lab')
mkdirSync(out, { recursive: true })
const tty = process.stderr.isTTY === true

function runLab(service) {
  const args = [
    join(root, 'bin', 'lameduck.js'),
    'rollout',
    ...DEMO_ARGS,
    '--name',
    service.name,
    '--json',
    join(out, `${service.name}.json`),
    '--html',
    join(out, `${service.name}.html`),
    ...(tty ? [] : ['--quiet']),
    '--',
    process.execPath,
    join(root, service.file),
  ]
  console.log(
    `lameduck rollout ${DEMO_ARGS.join(' ')} --name ${service.name} -- node ${service.file}`,
  )
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
    let text = ''
    child.stdout.setEncoding('utf8').on('data', (chunk) => {
      text += chunk
    })
    child.on('error', reject)
    child.on('exit', (code) => {
      writeFileSync(join(out, `${service.name}.txt`), text)
      // 0 = pass, 1 = failures above --max-failures, 3 = inconclusive: all results.
      // Anything else is not.
      if (code === 0 || code === 1 || code === 3) resolve()
      else reject(new Error(`the lab exited with ${code} for ${service.name}; see above`))
    })
  })
}

const started = Date.now()
const columns = []
for (const service of DEMO_SERVICES) {
  await runLab(service)
  const result = JSON.parse(readFileSync(join(out, `${service.name}.json`), 'utf8'))
  console.log(`  ${service.name}: ${result.failed} of ${result.requests} requests failed\n`)
  columns.push({ title: service.name, subtitle: service.source, result })
}
console.log(renderComparison(columns))
console.log('')
console.log(
  `reports: ${DEMO_SERVICES.map((s) => `.lab/${s.name}.html`).join(', ')} (and .json, .txt)`,
)
console.log(`demo took ${((Date.now() - started) / 1000).toFixed(0)} s`)
const [naive, lameduck] = columns.map((c) => c.result)
for (const { title, result } of columns) {
  const top = result.diagnosis[0]
  if (top !== undefined) console.log(`${title}: ${top.sentence}`)
}
process.exitCode = naive.failed > 0 && lameduck.verdict.status === 'pass' ? 0 : 1
