// Benchmarks of `lameduck serve --workers` (issue 11), printed as markdown; raw results go to
// bench/out/workers-DATE.json. Benchmarks, not tests: CI does not run them.
//
//   node dist/bench/workers.js                      both, about 12 minutes on 2 cores
//   node dist/bench/workers.js throughput           wrk: 2 workers vs 1 vs a single process
//   node dist/bench/workers.js cost                 callgrind: the cluster path vs one process
//   node dist/bench/workers.js throughput --reps 3 --duration 3
//
// Every server is the hello-world of bench/hello-server.ts with lameduck(server), run either
// as one plain process or as the app of `lameduck serve --workers N`.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import {
  type Child,
  describeMachine,
  fixed,
  fromRoot,
  int,
  machine,
  outDir,
  type Summary,
  spawnChild,
  spawnNode,
  stop,
  summarize,
} from './common.js'

const HELLO = 'dist/bench/hello-server.js'
const CLI = 'bin/lameduck.js'

type Layout = 'single' | 'workers-1' | 'workers-2'

/** node arguments that start the hello-world server in `layout` (after node's own flags). */
function serverArgs(layout: Layout, nodeFlags: string[]): string[] {
  if (layout === 'single') return [...nodeFlags, fromRoot(HELLO), 'lameduck']
  const workers = layout === 'workers-1' ? '1' : '2'
  return [
    ...nodeFlags,
    fromRoot(CLI),
    'serve',
    '--workers',
    workers,
    '--',
    'node',
    ...nodeFlags,
    fromRoot(HELLO),
    'lameduck',
  ]
}

async function listening(child: Child, label: string, ms: number): Promise<string> {
  return (await child.waitFor(/listening (\d+)/, label, ms))[1] as string
}

// ---- throughput: wrk, alternating layouts -------------------------------------------------

interface WrkRun {
  layout: Layout
  round: number
  requestsPerSecond: number
  errors: number
}

async function runWrk(port: string, seconds: number, connections: number) {
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, `http://127.0.0.1:${port}/`]
  const child = spawnChild('wrk', args)
  const exit = await stop(child, `wrk ${args.join(' ')}`, (seconds + 30) * 1000)
  const out = child.stdout()
  const rps = out.match(/Requests\/sec:\s+([\d.]+)/)
  if (exit.code !== 0 || rps === null) throw new Error(`wrk failed: ${out} ${child.stderr()}`)
  const socket = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/)
  const non2xx = out.match(/Non-2xx or 3xx responses: (\d+)/)
  const errors =
    (socket?.slice(1).reduce((sum, x) => sum + Number(x), 0) ?? 0) + Number(non2xx?.[1] ?? 0)
  return { requestsPerSecond: Number(rps[1]), errors }
}

const LAYOUTS: readonly Layout[] = ['single', 'workers-1', 'workers-2']

async function throughput(rounds: number, seconds: number, connections: number) {
  const runs: WrkRun[] = []
  // One server at a time, so that idle servers do not share the two cores with the one
  // measured; the order of layouts rotates from round to round.
  for (let round = 1; round <= rounds; round++) {
    const order = LAYOUTS.map((_, i) => LAYOUTS[(i + round) % LAYOUTS.length] as Layout)
    for (const layout of order) {
      const server = spawnChild(process.execPath, serverArgs(layout, []))
      try {
        const port = await listening(server, layout, 10_000)
        if (layout === 'workers-2') {
          await server.waitFor(/listening \d+[\s\S]*listening \d+/, 'both workers', 10_000)
        }
        await new Promise((resolve) => setTimeout(resolve, 300))
        await runWrk(port, 1, connections)
        const run = await runWrk(port, seconds, connections)
        runs.push({ layout, round, ...run })
        console.error(`throughput: round ${round} ${layout}: ${int(run.requestsPerSecond)} req/s`)
        server.child.kill('SIGTERM')
        await stop(server, `${layout} to exit`, 15_000)
      } finally {
        server.child.kill('SIGKILL')
      }
    }
  }
  const of = (layout: Layout) => runs.filter((r) => r.layout === layout)
  const ratio = (a: Layout, b: Layout) =>
    of(a).map((r, i) => r.requestsPerSecond / (of(b)[i] as WrkRun).requestsPerSecond)
  return {
    rounds,
    seconds,
    connections,
    runs,
    summary: Object.fromEntries(
      LAYOUTS.map((l) => [l, summarize(of(l).map((r) => r.requestsPerSecond))]),
    ) as Record<Layout, Summary>,
    twoOverOne: ratio('workers-2', 'workers-1'),
    twoOverSingle: ratio('workers-2', 'single'),
    oneOverSingle: ratio('workers-1', 'single'),
  }
}

// ---- cost: callgrind, every process of the server -----------------------------------------

type Pattern = 'keep-alive' | 'new connection'
interface CostRun {
  layout: Layout
  pattern: Pattern
  requests: number
  /** Instructions, summed over every process of the server (primary and workers). */
  collected: number
  processes: number
}

const WINDOWS: Record<Pattern, [number, number]> = {
  'keep-alive': [20_000, 40_000],
  'new connection': [5_000, 10_000],
}

async function costRun(layout: Layout, pattern: Pattern, requests: number): Promise<CostRun> {
  const node = `node${process.versions.node.split('.')[0]}`
  const slug = `${layout}.${pattern.replace(' ', '-')}.${requests}`
  const profile = join(outDir(), `callgrind.out.${node}.workers.${slug}.%p`)
  const server = spawnChild('valgrind', [
    '--tool=callgrind',
    '--trace-children=yes',
    `--callgrind-out-file=${profile}`,
    process.execPath,
    ...serverArgs(layout, ['--single-threaded', '--hash-seed=1']),
  ])
  try {
    const port = await listening(server, `${layout} under valgrind`, 180_000)
    const client =
      pattern === 'keep-alive'
        ? spawnNode('dist/bench/keepalive-client.js', [port, String(requests), '1', '/'])
        : spawnNode('dist/bench/fresh-client.js', [port, String(requests), '/'])
    const exit = await stop(client, `client of ${slug}`, 1_200_000)
    const result = JSON.parse(client.stdout()) as { ok: number }
    if (exit.code !== 0 || result.ok !== requests) {
      throw new Error(`${slug}: ${result.ok}/${requests} answers: ${client.stderr()}`)
    }
    server.child.kill('SIGTERM')
    await stop(server, `${slug} to exit`, 180_000)
    const totals = [...server.stderr().matchAll(/Collected : (\d+)/g)].map((m) => Number(m[1]))
    const served = [...server.stdout().matchAll(/served (\d+)/g)].reduce(
      (sum, m) => sum + Number(m[1]),
      0,
    )
    if (served !== requests) throw new Error(`${slug}: handlers saw ${served} of ${requests}`)
    const expected = layout === 'single' ? 1 : 2
    if (totals.length !== expected) {
      throw new Error(`${slug}: ${totals.length} callgrind totals, expected ${expected}`)
    }
    const collected = totals.reduce((a, b) => a + b, 0)
    console.error(`cost: ${slug}: ${int(collected)} instructions in ${totals.length} process(es)`)
    return { layout, pattern, requests, collected, processes: totals.length }
  } finally {
    server.child.kill('SIGKILL')
  }
}

/** On a loaded machine a server under valgrind can stall for seconds, long enough for node's
 * 5 s keep-alive timeout to close the client's connection between two requests. Such a run
 * measures nothing; it is retried, and says so. */
async function attempts(layout: Layout, pattern: Pattern, requests: number): Promise<CostRun> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await costRun(layout, pattern, requests)
    } catch (error) {
      if (attempt === 3) throw error
      console.error(`cost: retrying ${layout} ${pattern} ${requests}: ${(error as Error).message}`)
    }
  }
}

async function cost(reps: number) {
  const runs: CostRun[] = []
  const tasks: (() => Promise<CostRun>)[] = []
  for (let rep = 0; rep < reps; rep++) {
    for (const pattern of ['keep-alive', 'new connection'] as const) {
      for (const layout of ['single', 'workers-1'] as const) {
        for (const requests of WINDOWS[pattern])
          tasks.push(() => attempts(layout, pattern, requests))
      }
    }
  }
  // Two at a time: instruction counts do not depend on contention.
  let next = 0
  const lane = async () => {
    while (next < tasks.length) runs.push(await (tasks[next++] as () => Promise<CostRun>)())
  }
  await Promise.all([lane(), lane()])
  const marginal = (layout: Layout, pattern: Pattern) => {
    const [n1, n2] = WINDOWS[pattern]
    const at = (n: number) =>
      runs.filter((r) => r.layout === layout && r.pattern === pattern && r.requests === n)
    const low = at(n1)
    return at(n2).map((high, i) => (high.collected - (low[i] as CostRun).collected) / (n2 - n1))
  }
  return {
    reps,
    runs,
    marginal: Object.fromEntries(
      (['keep-alive', 'new connection'] as const).map((p) => [
        p,
        { single: marginal('single', p), cluster: marginal('workers-1', p) },
      ]),
    ) as Record<Pattern, { single: number[]; cluster: number[] }>,
  }
}

// ---- main ---------------------------------------------------------------------------------

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    reps: { type: 'string' },
    duration: { type: 'string' },
    connections: { type: 'string' },
  },
})
const selected = positionals.length === 0 ? ['throughput', 'cost'] : positionals
for (const name of selected) {
  if (name !== 'throughput' && name !== 'cost') {
    console.error(`bench/workers: unknown benchmark '${name}'; expected throughput or cost`)
    process.exit(2)
  }
}
const m = machine()
const out: Record<string, unknown> = { machine: m }
const lines = [`Machine: ${describeMachine(m)}`, '']
if (selected.includes('throughput')) {
  const t = await throughput(
    Number(values.reps ?? 5),
    Number(values.duration ?? 3),
    Number(values.connections ?? 50),
  )
  out.throughput = t
  const errors = t.runs.reduce((sum, r) => sum + r.errors, 0)
  const row = (name: string, s: Summary) =>
    `| ${name} | ${int(s.median)} | ${int(s.min)} – ${int(s.max)} |`
  const ratio = (name: string, xs: number[]) => {
    const s = summarize(xs)
    return `| ${name} | ${fixed(s.median, 2)} | ${fixed(s.min, 2)} – ${fixed(s.max, 2)} | ${xs.map((x) => fixed(x, 2)).join(', ')} |`
  }
  lines.push(
    `wrk -t1 -c${t.connections} -d${t.seconds}s, ${t.rounds} rounds (layouts in rotating order, one server at a time, 1 s warm-up each); ${errors} socket errors or non-2xx:`,
    '',
    '| layout | median requests/s | min – max |',
    '|---|---:|---:|',
    row('one process, lameduck(server)', t.summary.single),
    row('lameduck serve --workers 1', t.summary['workers-1']),
    row('lameduck serve --workers 2', t.summary['workers-2']),
    '',
    '| ratio, per round | median | min – max | rounds |',
    '|---|---:|---:|---|',
    ratio('2 workers ÷ 1 worker', t.twoOverOne),
    ratio('2 workers ÷ one process', t.twoOverSingle),
    ratio('1 worker ÷ one process', t.oneOverSingle),
    '',
  )
}
if (selected.includes('cost')) {
  const c = await cost(Number(values.reps ?? 1))
  out.cost = c
  const row = (pattern: Pattern) => {
    const { single, cluster } = c.marginal[pattern]
    const s = summarize(single)
    const k = summarize(cluster)
    const ratios = single.map((x, i) => x / (cluster[i] as number))
    return `| ${pattern} | ${WINDOWS[pattern].join(' → ')} | ${int(s.median)} | ${int(k.median)} | ${int(k.median - s.median)} | ${ratios.map((x) => fixed(x, 3)).join(', ')} |`
  }
  lines.push(
    `callgrind, every process of the server summed (primary and worker), marginal instructions per request, ${c.reps} repetition(s):`,
    '',
    '| pattern | requests | one process | --workers 1 (primary + worker) | difference | one process ÷ cluster |',
    '|---|---|---:|---:|---:|---|',
    row('keep-alive'),
    row('new connection'),
    '',
  )
}
const file = join(outDir(), `workers-${m.date.replaceAll(':', '-')}.json`)
writeFileSync(file, JSON.stringify(out, null, 2))
lines.push(`Raw results: ${file}`)
console.log(lines.join('\n'))
