// Per-request overhead in instructions, as /work/shared/BENCHMARKING.md prescribes: the
// hello-world server runs under `valgrind --tool=callgrind node --single-threaded`, a
// separate client process sends exactly N keep-alive requests, the server is stopped with
// SIGTERM and callgrind's `Collected` total is read. Two request counts give the marginal
// instructions per request, free of start-up and shutdown cost:
//
//   (Collected(N2) - Collected(N1)) / (N2 - N1)
//
// bare ÷ variant of that figure is the throughput ratio the issues ask for (1.00 = no
// overhead; issue 2's target for lameduck is >= 0.97, issue 7's >= 0.99 with probes on the
// app's port and >= 0.998 with probes on a port of their own). The peer libraries run in the
// same run, in the same window, with the same node, so their ratios compare side by side.
// The figure is taken over one or two windows: BENCHMARKING.md's 1 000 → 5 000 requests,
// which is mostly V8 compiling the hot path, and 20 000 → 40 000, the steady state. Each run
// also reports the instructions spent in V8's compilers.
//
// Repetition r runs every server with `--hash-seed=r`. With V8's default random hash seed,
// two runs of the same server differ by up to ~6 million instructions: part at start-up
// (deriving the seed's hashing secret), part in every hash lookup, whose collisions depend
// on the seed. A fixed seed makes a run repeat to within 0.01 %; different seeds per
// repetition keep that layout variance in the spread, and all variants share a seed.
import { execFileSync } from 'node:child_process'
import { copyFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { COMPILER, componentCosts, functionCosts, GC } from './callgrind.js'
import {
  fixed,
  fromRoot,
  int,
  outDir,
  type Summary,
  spawnChild,
  spawnNode,
  stop,
  summarize,
} from './common.js'

/** A server form and the path its requests go to. */
export interface Variant {
  /** Short name for `--variants`. */
  id: string
  name: string
  /** The form of bench/hello-server.ts. */
  mode:
    | 'bare'
    | 'lameduck'
    | 'lameduck-probe-port'
    | 'lameduck-noprobes'
    | 'import-only'
    | 'wrapper-copy'
    | 'wrapper-fixed'
    | 'terminus'
    | 'http-terminator'
    | 'stoppable'
    | 'http-graceful-shutdown'
  path: string
  /** The server script and the client script, HTTP/1.1 keep-alive unless 'h2'. */
  protocol?: 'h2'
  /** The `id` of the variant its ratio is taken against. @default 'bare' */
  baseline?: string
  /** How the handler answers (bench/hello-server.ts): `res.setHeader(...)` + `res.end(...)`,
   * or `res.writeHead(200, {...})` + `res.end(...)`. @default 'setHeader' */
  form?: 'setHeader' | 'writeHead'
  /** Keep-alive connections the client spreads the requests over, instead of the run's. */
  connections?: number
  /** Another checkout whose build runs this variant (its dist/bench server, which loads its
   * own lameduck): `--before` puts a second build's figures in the same run. */
  root?: string
}

/**
 * `variants` and, for each one other than a baseline, a twin run from the build in `root`
 * (id and name suffixed `-before` / `(before)`), measured against the same baseline, which
 * loads no lameduck: before and after a runtime change, side by side in one run.
 */
export function withBefore(variants: readonly Variant[], root: string): Variant[] {
  const baselines = new Set(variants.map((v) => v.baseline ?? BARE.id))
  const out: Variant[] = []
  for (const variant of variants) {
    if (!baselines.has(variant.id)) {
      out.push({ ...variant, id: `${variant.id}-before`, name: `${variant.name} (before)`, root })
    }
    out.push(variant)
  }
  return out
}

export const BARE: Variant = { id: 'bare', name: 'bare', mode: 'bare', path: '/' }
const LAMEDUCK: Variant = { id: 'lameduck', name: 'lameduck', mode: 'lameduck', path: '/' }

/** What issues 2 and 7 ask: bare vs lameduck (probes on the app's port, then on a port of
 * their own), a probe request vs an app request, and the peer libraries, all measured in
 * the same run so the ratios sit side by side. */
export const VARIANTS: readonly Variant[] = [
  BARE,
  LAMEDUCK,
  {
    id: 'lameduck-probe-port',
    name: 'lameduck, probes: { port: 0 }',
    mode: 'lameduck-probe-port',
    path: '/',
  },
  { id: 'lameduck-readyz', name: 'lameduck, GET /readyz', mode: 'lameduck', path: '/readyz' },
  { id: 'terminus', name: '@godaddy/terminus', mode: 'terminus', path: '/' },
  { id: 'http-terminator', name: 'http-terminator', mode: 'http-terminator', path: '/' },
  { id: 'stoppable', name: 'stoppable', mode: 'stoppable', path: '/' },
  {
    id: 'http-graceful-shutdown',
    name: 'http-graceful-shutdown',
    mode: 'http-graceful-shutdown',
    path: '/',
  },
  ...handlerForms(),
]

/** The handler forms users write (issue 18): `writeHead(200, {...})` over one and four
 * connections, and `setHeader` + `end` over four; each against its own bare server, and a
 * bare server that imports lameduck without calling it (`import-only-*`): loading modules
 * through the ESM loader changes what V8 learns before the first request (RESULTS.md §10). */
function handlerForms(): Variant[] {
  const out: Variant[] = []
  for (const [form, connections] of [
    ['writeHead', 1],
    ['writeHead', 4],
    ['setHeader', 4],
  ] as const) {
    const suffix = `${form === 'writeHead' ? 'writehead' : 'setheader'}-${connections}c`
    const base = { path: '/', form, connections, baseline: `bare-${suffix}` }
    out.push(
      { ...base, id: `bare-${suffix}`, name: `bare, ${form}, ${connections} conn`, mode: 'bare' },
      {
        ...base,
        id: `lameduck-${suffix}`,
        name: `lameduck, ${form}, ${connections} conn`,
        mode: 'lameduck',
      },
      {
        ...base,
        id: `import-only-${suffix}`,
        name: `bare + import of lameduck, ${form}, ${connections} conn`,
        mode: 'import-only',
      },
      {
        ...base,
        id: `lameduck-probe-port-${suffix}`,
        name: `lameduck probes.port, ${form}, ${connections} conn`,
        mode: 'lameduck-probe-port',
      },
    )
  }
  return out
}

/** The HTTP/2 path (bench/h2-hello-server.ts, h2c, one session): bare vs lameduck. */
export const H2_BARE: Variant = {
  id: 'h2-bare',
  name: 'h2 bare',
  mode: 'bare',
  path: '/',
  protocol: 'h2',
  baseline: 'h2-bare',
}
export const H2_VARIANTS: readonly Variant[] = [
  H2_BARE,
  {
    id: 'h2-lameduck',
    name: 'h2 lameduck',
    mode: 'lameduck',
    path: '/',
    protocol: 'h2',
    baseline: 'h2-bare',
  },
]

/** Which part of lameduck costs what (see hello-server.ts). */
export const ABLATION_VARIANTS: readonly Variant[] = [
  BARE,
  LAMEDUCK,
  {
    id: 'lameduck-noprobes',
    name: 'lameduck probes:false',
    mode: 'lameduck-noprobes',
    path: '/',
  },
  {
    id: 'import-only',
    name: 'bare + import of lameduck, not called',
    mode: 'import-only',
    path: '/',
  },
  {
    id: 'wrapper-copy',
    name: 'bare + copy of the request wrapper',
    mode: 'wrapper-copy',
    path: '/',
  },
  { id: 'wrapper-fixed', name: 'bare + fixed-arity wrapper', mode: 'wrapper-fixed', path: '/' },
]

/**
 * The variants of `all` named by `ids` (comma-separated `Variant.id`s), in `all`'s order,
 * always with bare first: every ratio is bare ÷ variant from the same run. Throws naming the
 * unknown id and the known ones.
 */
export function selectVariants(all: readonly Variant[], ids: string | undefined): Variant[] {
  if (ids === undefined) return [...all]
  const wanted = new Set(
    ids
      .split(',')
      .map((id) => id.trim())
      .filter((id) => id !== ''),
  )
  for (const id of wanted) {
    if (!all.some((v) => v.id === id)) {
      throw new Error(
        `unknown variant '${id}'; expected a comma-separated list of ${all.map((v) => v.id).join(', ')}`,
      )
    }
  }
  const baselines = new Set(all.filter((v) => wanted.has(v.id)).map((v) => v.baseline ?? BARE.id))
  return all.filter((v) => baselines.has(v.id) || wanted.has(v.id))
}

/** Two request counts; (Collected(b) - Collected(a)) / (b - a) is the marginal cost. */
export interface Window {
  name: string
  counts: readonly [number, number]
}

/** BENCHMARKING.md's window. Under --single-threaded, V8 compiles the hot path on the main
 * thread during these requests, and that compilation is most of the figure. */
export const WARM_UP_WINDOW: Window = { name: 'requests 1 000 → 5 000', counts: [1000, 5000] }
/** The steady state, which is what sets throughput: no more optimising compilation happens
 * here (the compiler column shows it). Node 20 gets there by 10 000 requests; Node 24, whose
 * V8 tiers up through Maglev first, is still compiling between 10 000 and 20 000. */
export const STEADY_WINDOW: Window = { name: 'requests 20 000 → 40 000', counts: [20_000, 40_000] }

export interface OverheadOptions {
  /** Names the profiles: bench/out/callgrind.out.nodeMAJOR.LABEL.VARIANT-ID.REQUESTS.REPETITION */
  label: string
  windows: readonly Window[]
  /** Keep-alive connections the client spreads the requests over. */
  connections: number
  repetitions: number
  /** The first repetition's number (and hash seed); the others follow. Lets an interrupted
   * run be completed with the seeds it did not reach. */
  firstRepetition: number
  /** Valgrind runs at once; instruction counts do not depend on CPU contention. */
  jobs: number
  variants: readonly Variant[]
  /** Run node with --perf-basic-prof and keep V8's perf map beside each profile
   * (PROFILE.perf-map), so that bench/annotate.ts names generated code by its JavaScript
   * function. For finding where instructions go; the figures of such a run include the
   * map's writing at each compilation. */
  perfMap?: boolean
}

/** Start-up of node under valgrind takes a few seconds; 40 000 requests about a minute. */
const LISTEN_TIMEOUT_MS = 120_000
const CLIENT_TIMEOUT_MS = 600_000
const EXIT_TIMEOUT_MS = 120_000

interface Run {
  variant: string
  repetition: number
  requests: number
  collected: number
  /** Instructions in V8's optimising compilers (TurboFan, Maglev). */
  compiler: number
  /** Instructions in V8's garbage collector. */
  gc: number
  profile: string
}

async function callgrindRun(
  label: string,
  variant: Variant,
  requests: number,
  connections: number,
  repetition: number,
  perfMap: boolean,
): Promise<Run> {
  const node = `node${process.versions.node.split('.')[0]}`
  const profile = join(
    outDir(),
    `callgrind.out.${node}.${label}.${variant.id}.${requests}.${repetition}`,
  )
  const server = spawnChild('valgrind', [
    '--tool=callgrind',
    `--callgrind-out-file=${profile}`,
    process.execPath,
    '--single-threaded',
    `--hash-seed=${repetition}`,
    ...(perfMap ? ['--perf-basic-prof'] : []),
    join(
      variant.root ?? fromRoot('.'),
      variant.protocol === 'h2' ? 'dist/bench/h2-hello-server.js' : 'dist/bench/hello-server.js',
    ),
    variant.mode,
    variant.form ?? 'setHeader',
  ])
  try {
    const [, port] = await server.waitFor(
      /listening (\d+)/,
      `${variant.name} under valgrind to listen`,
      LISTEN_TIMEOUT_MS,
    )
    const client = spawnNode('dist/bench/keepalive-client.js', [
      String(port),
      String(requests),
      String(variant.connections ?? connections),
      variant.path,
      variant.protocol ?? 'h1',
    ])
    const clientExit = await stop(client, `client of ${variant.name}`, CLIENT_TIMEOUT_MS)
    const result = JSON.parse(client.stdout()) as { ok: number; connections: number }
    if (clientExit.code !== 0 || result.ok !== requests) {
      throw new Error(
        `client of ${variant.name} got ${result.ok}/${requests} answers (exit ${clientExit.code}): ${client.stderr()}`,
      )
    }
    server.child.kill('SIGTERM')
    await stop(server, `${variant.name} under valgrind to exit`, EXIT_TIMEOUT_MS)
    if (perfMap) {
      // valgrind runs node in its own process: the map is named after the valgrind child.
      const map = `/tmp/perf-${server.child.pid}.map`
      copyFileSync(map, `${profile}.perf-map`)
      rmSync(map)
    }
    const collected = server.stderr().match(/Collected : (\d+)/)
    if (collected === null) throw new Error(`no callgrind total for ${variant.name}`)
    const served = Number(server.stdout().match(/served (\d+)/)?.[1])
    const expected = variant.path === '/' ? requests : 0
    if (served !== expected) {
      throw new Error(`${variant.name}: the handler saw ${served} requests, expected ${expected}`)
    }
    const components = componentCosts(functionCosts(profile))
    return {
      variant: variant.name,
      repetition,
      requests,
      collected: Number(collected[1]),
      compiler: components.get(COMPILER) ?? 0,
      gc: components.get(GC) ?? 0,
      profile,
    }
  } finally {
    server.child.kill('SIGKILL')
  }
}

/** Runs `tasks` with at most `jobs` at a time, in order. */
async function pool<T>(tasks: (() => Promise<T>)[], jobs: number): Promise<T[]> {
  const results: T[] = new Array(tasks.length)
  let next = 0
  async function lane(): Promise<void> {
    while (next < tasks.length) {
      const i = next++
      results[i] = await (tasks[i] as () => Promise<T>)()
    }
  }
  await Promise.all(Array.from({ length: Math.min(jobs, tasks.length) }, lane))
  return results
}

export interface VariantResult {
  name: string
  /** Marginal instructions per request, one per repetition. */
  perRequest: number[]
  summary: Summary
  /** Of which V8's optimising compilers, median over repetitions. */
  compilerPerRequest: number
  /** Of which V8's garbage collector, one per repetition. Whether a full collection falls
   * inside the window or not moves it by up to ~5 000 per request between two runs of the
   * same server with the same seed. */
  gcPerRequest: number[]
}

export interface WindowResult {
  window: Window
  variants: VariantResult[]
  /** bare ÷ variant of the median marginal instructions per request, and per repetition;
   * and the same without the garbage collector's instructions. */
  ratios: { name: string; median: number; perRepetition: number[]; withoutGc: number[] }[]
}

export interface OverheadResult {
  options: OverheadOptions
  runs: Run[]
  windows: WindowResult[]
  valgrind: string
}

export async function overhead(options: OverheadOptions): Promise<OverheadResult> {
  const counts = [...new Set(options.windows.flatMap((w) => w.counts))].sort((a, b) => a - b)
  const tasks: (() => Promise<Run>)[] = []
  const last = options.firstRepetition + options.repetitions - 1
  for (let repetition = options.firstRepetition; repetition <= last; repetition++) {
    for (const variant of options.variants) {
      for (const n of counts) {
        tasks.push(async () => {
          const run = await callgrindRun(
            options.label,
            variant,
            n,
            options.connections,
            repetition,
            options.perfMap === true,
          )
          console.log(
            `overhead: ${variant.name} N=${n} rep ${repetition}: ${int(run.collected)} instructions`,
          )
          return run
        })
      }
    }
  }
  const runs = await pool(tasks, options.jobs)
  const windows = options.windows.map((window) => {
    const [n1, n2] = window.counts
    const variants = options.variants.map((variant) => {
      const perRequest: number[] = []
      const compiler: number[] = []
      const gc: number[] = []
      for (let repetition = options.firstRepetition; repetition <= last; repetition++) {
        const at = (n: number) =>
          runs.find(
            (r) => r.variant === variant.name && r.repetition === repetition && r.requests === n,
          ) as Run
        perRequest.push((at(n2).collected - at(n1).collected) / (n2 - n1))
        compiler.push((at(n2).compiler - at(n1).compiler) / (n2 - n1))
        gc.push((at(n2).gc - at(n1).gc) / (n2 - n1))
      }
      return {
        name: variant.name,
        perRequest,
        summary: summarize(perRequest),
        compilerPerRequest: summarize(compiler).median,
        gcPerRequest: gc,
      }
    })
    // Each variant against its baseline (bare, or h2 bare for the HTTP/2 ones), same run.
    const ratios = options.variants.flatMap((variant, i) => {
      const baselineId = variant.baseline ?? BARE.id
      const at = options.variants.findIndex((v) => v.id === baselineId)
      const base = variants[at]
      const v = variants[i]!
      if (base === undefined || variant.id === baselineId) return []
      return [
        {
          name: v.name,
          median: base.summary.median / v.summary.median,
          perRepetition: v.perRequest.map((x, r) => (base.perRequest[r] as number) / x),
          withoutGc: v.perRequest.map(
            (x, r) =>
              ((base.perRequest[r] as number) - (base.gcPerRequest[r] as number)) /
              (x - (v.gcPerRequest[r] as number)),
          ),
        },
      ]
    })
    return { window, variants, ratios }
  })
  const valgrind = execFileSync('valgrind', ['--version'], { encoding: 'utf8' }).trim()
  return { options, runs, windows, valgrind }
}

export function reportOverhead(result: OverheadResult): string {
  const { options } = result
  const lines = [
    `${result.valgrind}, \`node --single-threaded --hash-seed=R\` for repetition R = ${options.firstRepetition}..${options.firstRepetition + options.repetitions - 1}, ${options.connections} keep-alive connection(s), sequential requests.`,
  ]
  for (const { window, variants, ratios } of result.windows) {
    const [n1, n2] = window.counts
    lines.push(
      '',
      `Marginal instructions per request, ${window.name}: (Collected(${n2}) - Collected(${n1})) / ${n2 - n1}`,
      '',
      '| variant | median instr/request | min – max | per repetition | of which JIT compilers | of which GC (per repetition) | bare ÷ variant (per repetition) | bare ÷ variant without GC (per repetition) |',
      '|---|---:|---:|---|---:|---|---|---|',
    )
    for (const v of variants) {
      const ratio = ratios.find((r) => r.name === v.name)
      lines.push(
        `| ${v.name} | ${int(v.summary.median)} | ${int(v.summary.min)} – ${int(v.summary.max)} | ${v.perRequest.map(int).join(', ')} | ${int(v.compilerPerRequest)} | ${v.gcPerRequest.map(int).join(', ')} | ${ratio === undefined ? '' : `**${fixed(ratio.median, 4)}** (${ratio.perRepetition.map((x) => fixed(x, 4)).join(', ')})`} | ${ratio === undefined ? '' : ratio.withoutGc.map((x) => fixed(x, 4)).join(', ')} |`,
      )
    }
  }
  return lines.join('\n')
}
