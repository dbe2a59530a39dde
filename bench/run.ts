// Runs the benchmarks of issues 2 and 7 and prints their figures as markdown; the raw results go to
// bench/out/results-DATE.json. Benchmarks, not tests: CI does not run them.
//
//   npm run bench                       overhead, wrk, exit, close (overhead alone is 64 valgrind
//                                       runs: most of an hour on a busy 2-core machine)
//   npm run bench -- overhead exit      only some of them
//   npm run bench -- ablation           which part of lameduck costs what per request
//   npm run bench -- h2                 the same per-request figure on the HTTP/2 path (h2c)
//   npm run bench -- check              lameduck check on 1 MB and 10 MB of real manifests
//   npm run bench -- check --before ../other-checkout
//                                       ...side by side with another build of lameduck
//   npm run bench -- overhead --reps 1  fewer repetitions
//   npm run bench -- overhead --variants lameduck,lameduck-probe-port --window steady
//                                       only some variants (bare always runs), one window
//
// Run with another node (e.g. Node 24) after `npm run build`: `/path/to/node dist/bench/run.js`;
// every child process uses the same node.
import { existsSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { checkBenchmark, reportCheck } from './check.js'
import { closeIdle, reportCloseIdle } from './close-idle.js'
import { describeMachine, machine, outDir } from './common.js'
import { exitLatency, reportExitLatency } from './exit-latency.js'
import {
  ABLATION_VARIANTS,
  H2_VARIANTS,
  overhead,
  reportOverhead,
  STEADY_WINDOW,
  selectVariants,
  VARIANTS,
  WARM_UP_WINDOW,
  type Window,
  withBefore,
} from './overhead.js'
import { reportWrk, wrk } from './wrk.js'

const BENCHMARKS = ['overhead', 'wrk', 'exit', 'close', 'ablation', 'h2', 'check'] as const
type Benchmark = (typeof BENCHMARKS)[number]
const DEFAULT_BENCHMARKS: readonly Benchmark[] = ['overhead', 'wrk', 'exit', 'close']

const HELP = `Usage: npm run bench -- [overhead] [wrk] [exit] [close] [ablation] [h2] [check] [options]

Benchmarks (the first four when none is named):
  overhead  instructions per request under callgrind: bare vs lameduck (probes on the app's
            port and on their own port) vs the peer libraries, in one run
            (issue 2: >= 0.97; issue 7: >= 0.99, and >= 0.998 with probes on their own port)
  wrk       requests/s with wrk, alternating bare and lameduck runs (noisy, secondary)
  exit      last response flushed -> process exit, lameduck vs process.exit floor (< 10 ms)
  close     closing 10 000 idle keep-alive connections (< 200 ms), memory per connection
  ablation  callgrind, steady state: which part of lameduck costs what per request
  h2        callgrind, steady state: h2 bare vs h2 lameduck (h2c, one session, sequential
            streams)
  check     lameduck check on 1 MB and 10 MB copies of test/fixtures/real: wall, CPU, peak
            RSS (issue 20: 10 MB <= 2 s and <= 250 MB, 1 MB <= 0.4 s)

Options:
  --reps N         repetitions (default: overhead 2, wrk 5 pairs, exit 30, close 3,
                   ablation 2, h2 2, check 5)
  --jobs N         overhead, ablation, h2: valgrind runs at once (default 2)
  --variants LIST  overhead, ablation: only these variants, comma-separated; bare always
                   runs, since every ratio is bare ÷ variant from the same run.
                   overhead: ${VARIANTS.map((v) => v.id).join(', ')}
                   ablation: ${ABLATION_VARIANTS.map((v) => v.id).join(', ')}
  --first-rep N    overhead, ablation: number of the first repetition, which is also its
                   --hash-seed (default 1), to complete an interrupted run
  --before DIR     overhead, ablation, h2, check: also run the build in another checkout DIR
                   (e.g. a worktree of main, after npm run build there): before and after a
                   change in one run. overhead, ablation, h2: every variant but the bare
                   baselines, named '(before)'; check: its CLI, alternating with this one,
                   and the two JSON reports compared
  --perf-map       overhead, ablation, h2: node --perf-basic-prof, V8's map kept beside each
                   profile, so that dist/bench/annotate.js names generated code by function
  --window W       overhead: steady (requests 20 000 -> 40 000), warm-up (1 000 -> 5 000)
                   or both (default); ablation always runs steady
  --connections N  close: idle keep-alive connections (default 10000)
  --duration S     wrk: seconds per run (default 3)
  -h, --help       this text
`

function positiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < 1) {
    console.error(`bench: expected --${name} to be a positive integer, got '${value}'`)
    process.exit(2)
  }
  return n
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    reps: { type: 'string' },
    jobs: { type: 'string' },
    connections: { type: 'string' },
    duration: { type: 'string' },
    variants: { type: 'string' },
    window: { type: 'string' },
    'first-rep': { type: 'string' },
    before: { type: 'string' },
    'perf-map': { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
})
if (values.help) {
  process.stdout.write(HELP)
  process.exit(0)
}
for (const name of positionals) {
  if (!BENCHMARKS.includes(name as Benchmark)) {
    console.error(`bench: unknown benchmark '${name}'; expected one of ${BENCHMARKS.join(', ')}`)
    process.exit(2)
  }
}
const selected = positionals.length === 0 ? DEFAULT_BENCHMARKS : (positionals as Benchmark[])

const WINDOWS: Record<string, Window[]> = {
  steady: [STEADY_WINDOW],
  'warm-up': [WARM_UP_WINDOW],
  both: [WARM_UP_WINDOW, STEADY_WINDOW],
}
const overheadWindows = WINDOWS[values.window ?? 'both']
if (overheadWindows === undefined) {
  console.error(
    `bench: expected --window to be one of ${Object.keys(WINDOWS).join(', ')}, got '${values.window}'`,
  )
  process.exit(2)
}
const before = values.before === undefined ? undefined : resolve(values.before)
if (before !== undefined && !existsSync(join(before, 'dist/bench/hello-server.js'))) {
  console.error(
    `bench: expected --before to be a checkout with a build (dist/bench/hello-server.js), got '${values.before}'`,
  )
  process.exit(2)
}
function variantsOf(name: 'overhead' | 'ablation' | 'h2') {
  try {
    const variants =
      name === 'h2'
        ? [...H2_VARIANTS]
        : selectVariants(name === 'overhead' ? VARIANTS : ABLATION_VARIANTS, values.variants)
    return before === undefined ? variants : withBefore(variants, before)
  } catch (error) {
    console.error(`bench: ${name}: ${(error as Error).message}`)
    process.exit(2)
  }
}
// Fail on a bad --variants before any benchmark has run.
for (const name of selected) if (name === 'overhead' || name === 'ablation') variantsOf(name)
const reps = values.reps

const info = machine()
const results: Record<string, unknown> = { machine: info }
console.log(`# lameduck benchmarks\n\n${describeMachine(info)}\n`)

for (const name of selected) {
  const started = performance.now()
  let report: string
  if (name === 'overhead' || name === 'ablation' || name === 'h2') {
    const result = await overhead({
      label: values['perf-map'] === true ? `${name}-perfmap` : name,
      windows: name === 'overhead' ? overheadWindows : [STEADY_WINDOW],
      connections: 1,
      repetitions: positiveInt('reps', reps, 2),
      firstRepetition: positiveInt('first-rep', values['first-rep'], 1),
      jobs: positiveInt('jobs', values.jobs, 2),
      variants: variantsOf(name),
      perfMap: values['perf-map'] === true,
    })
    results[name] = result
    report = reportOverhead(result)
  } else if (name === 'wrk') {
    const result = await wrk({
      pairs: positiveInt('reps', reps, 5),
      seconds: positiveInt('duration', values.duration, 3),
    })
    results[name] = result
    report = reportWrk(result)
  } else if (name === 'exit') {
    const result = await exitLatency({ repetitions: positiveInt('reps', reps, 30) })
    results[name] = result
    report = reportExitLatency(result)
  } else if (name === 'check') {
    const result = await checkBenchmark({
      repetitions: positiveInt('reps', reps, 5),
      sizes: [1, 10],
      ...(values.before === undefined ? {} : { before: values.before }),
    })
    results[name] = result
    report = reportCheck(result)
  } else {
    const result = await closeIdle({
      connections: positiveInt('connections', values.connections, 10_000),
      repetitions: positiveInt('reps', reps, 3),
    })
    results[name] = result
    report = reportCloseIdle(result)
  }
  const seconds = Math.round((performance.now() - started) / 1000)
  console.log(`\n## ${name} (${seconds} s)\n\n${report}\n`)
}

const file = join(outDir(), `results-${info.date.replace(/[:.]/g, '-')}.json`)
writeFileSync(
  file,
  JSON.stringify(results, (_key, value) => (typeof value === 'bigint' ? String(value) : value), 2),
)
console.log(`raw results: ${file}`)
