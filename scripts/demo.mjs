#!/usr/bin/env node
// npm run demo: the rollout lab against a naive service and the same service with lameduck,
// with the same settings, then both results side by side; for HTTP/1.1, HTTP/2 and
// WebSockets. `npm run demo -- h2 ws` runs only those comparisons (ids: http1, h2, ws).
// `--service iptables` (root) and `--ingress nginx|haproxy` are passed to every lab run:
// `npm run demo -- --service iptables --ingress haproxy http1`.
// Reports go to .lab/ (JSON, HTML, text). Run after `npm run build` (the npm script does it).
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..')
const { DEMO_COMPARISONS } = await import('../dist/src/rollout/demo.js')
const { renderComparison } = await import('../dist/src/rollout/report/compare.js')

const ids = DEMO_COMPARISONS.map((c) => c.id)
/** The data path options passed to every lab run, and the comparisons asked for. */
const dataPath = []
const wanted = []
for (let i = 2; i < process.argv.length; i++) {
  const arg = process.argv[i]
  const [flag, inline] = arg.split('=', 2)
  if (flag === '--service' || flag === '--ingress') {
    const value = inline ?? process.argv[++i]
    if (value === undefined || value.startsWith('-')) {
      console.error(
        `npm run demo: ${flag} expects a value, e.g. ${flag} ${flag === '--service' ? 'iptables' : 'nginx'}`,
      )
      process.exit(2)
    }
    dataPath.push(flag, value)
  } else {
    wanted.push(arg)
  }
}
const unknown = wanted.filter((id) => !ids.includes(id))
if (unknown.length > 0) {
  console.error(
    `npm run demo: unknown comparison '${unknown[0]}'; expected any of ${ids.join(', ')}`,
  )
  process.exit(2)
}
const comparisons = DEMO_COMPARISONS.filter((c) => wanted.length === 0 || wanted.includes(c.id))

const out = join(root, '.lab')
mkdirSync(out, { recursive: true })
const tty = process.stderr.isTTY === true

function runLab(args, service) {
  const argv = [
    join(root, 'bin', 'lameduck.js'),
    'rollout',
    ...args,
    ...dataPath,
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
    `lameduck rollout ${[...args, ...dataPath].join(' ')} --name ${service.name} -- node ${service.file}`,
  )
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, argv, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] })
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
console.log(
  `${comparisons.length} comparison${comparisons.length === 1 ? '' : 's'} (${comparisons.map((c) => c.id).join(', ')}), two lab runs each\n`,
)
const verdicts = []
for (const comparison of comparisons) {
  console.log(`== ${comparison.title}\n`)
  const columns = []
  for (const service of comparison.services) {
    await runLab(comparison.args, service)
    const result = JSON.parse(readFileSync(join(out, `${service.name}.json`), 'utf8'))
    console.log(`  ${service.name}: ${result.failed} of ${result.requests} requests failed\n`)
    columns.push({ title: service.name, subtitle: service.source, result })
  }
  console.log(renderComparison(columns))
  console.log('')
  for (const { title, result } of columns) {
    const top = result.diagnosis[0]
    if (top !== undefined) console.log(`${title}: ${top.sentence}`)
  }
  console.log('')
  const [naive, lameduck] = columns.map((c) => c.result)
  verdicts.push(naive.failed > 0 && lameduck.verdict.status === 'pass')
}
const names = comparisons.flatMap((c) => c.services.map((s) => s.name))
console.log(`reports: ${names.map((n) => `.lab/${n}.html`).join(', ')} (and .json, .txt)`)
console.log(`demo took ${((Date.now() - started) / 1000).toFixed(0)} s`)
process.exitCode = verdicts.every(Boolean) ? 0 : 1
