// `lameduck check` on 1 MB and 10 MB of manifests (issue 20: 10 MB in <= 2 s and <= 250 MB,
// 1 MB in <= 0.4 s). The corpora are copies of test/fixtures/real (real manifests from public
// repositories), each copy in namespaces of its own so that copies do not select each other's
// pods, written under bench/out/. Each run is the CLI as a user runs it (bin/lameduck.js,
// --format json to a file), wall time from spawn to exit, with its CPU time and peak RSS.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { parseAllDocuments } from 'yaml'
import { listManifests } from '../src/check/load.js'
import { fixed, fromRoot, outDir, type Summary, spawnChild, stop, summarize } from './common.js'

const SOURCE = 'test/fixtures/real'
/** Issue 20's targets, in seconds and MiB, per corpus size in MB. */
const TARGETS: Record<number, { seconds: number; rssMiB?: number }> = {
  1: { seconds: 0.4 },
  10: { seconds: 2, rssMiB: 250 },
}

/** Writes copies of the real fixtures under `dir` until they hold `megabytes` MB; the byte count. */
export function makeCorpus(dir: string, megabytes: number): number {
  rmSync(dir, { recursive: true, force: true })
  const root = fromRoot(SOURCE)
  const files = listManifests(root)
  const target = megabytes * 1024 * 1024
  let size = 0
  for (let copy = 0; size < target; copy++) {
    for (const file of files) {
      const documents = parseAllDocuments(readFileSync(file, 'utf8'))
      for (const document of documents) {
        if (document.get('kind') === undefined) continue
        const namespace = document.getIn(['metadata', 'namespace']) ?? 'default'
        document.setIn(['metadata', 'namespace'], `${String(namespace)}-${copy}`)
      }
      const text = documents.map((d) => d.toString()).join('')
      const path = join(dir, `copy-${copy}`, relative(root, file).replace(/\.json$/, '.yaml'))
      mkdirSync(dirname(path), { recursive: true })
      writeFileSync(path, text)
      size += Buffer.byteLength(text)
      if (size >= target) break
    }
  }
  return size
}

/** A build of lameduck to run: this checkout, or another one given with --before. */
export interface Build {
  label: string
  /** Path of its bin/lameduck.js. */
  bin: string
}

export interface CheckRun {
  build: string
  megabytes: number
  wallMs: number
  cpuMs: number
  maxRssMiB: number
  exitCode: number | null
  /** 1-minute load average when the run started. */
  load: number
}

export interface CheckSummary {
  build: string
  megabytes: number
  wall: Summary
  cpu: Summary
  rss: Summary
}

export interface CheckResult {
  corpora: { megabytes: number; bytes: number; files: number }[]
  builds: string[]
  runs: CheckRun[]
  summaries: CheckSummary[]
  /** Per corpus, whether every build wrote the same JSON report, byte for byte. */
  sameOutput: Record<number, boolean>
}

async function once(
  build: Build,
  dir: string,
  megabytes: number,
): Promise<{ run: CheckRun; output: string }> {
  const usage = fromRoot('dist/bench/check-usage.js')
  const load = os.loadavg()[0]!
  const started = process.hrtime.bigint()
  const run = spawnChild(process.execPath, [
    '--import',
    usage,
    build.bin,
    'check',
    '--format',
    'json',
    dir,
  ])
  const chunks: string[] = []
  run.child.stdout?.on('data', (chunk: string) => chunks.push(chunk))
  const exit = await stop(run, `lameduck check ${dir} (${build.label})`, 600_000)
  const wallMs = Number(exit.at - started) / 1e6
  const output = chunks.join('')
  writeFileSync(join(outDir(), `check-output-${build.label}-${megabytes}MB.json`), output)
  const line = /lameduck-bench-usage (\{.*\})/.exec(run.stderr())
  if (line === null)
    throw new Error(`no usage line from lameduck check: ${run.stderr().slice(-500)}`)
  const { cpuMs, maxRssKiB } = JSON.parse(line[1] as string) as { cpuMs: number; maxRssKiB: number }
  JSON.parse(output) // the whole report came out, and it is JSON
  return {
    run: {
      build: build.label,
      megabytes,
      wallMs,
      cpuMs,
      maxRssMiB: maxRssKiB / 1024,
      exitCode: exit.code,
      load,
    },
    output,
  }
}

export async function checkBenchmark(options: {
  repetitions: number
  sizes: readonly number[]
  /** Another build to run side by side with this one (its root directory, built). */
  before?: string
}): Promise<CheckResult> {
  const builds: Build[] = [{ label: 'this', bin: fromRoot('bin/lameduck.js') }]
  if (options.before !== undefined) {
    builds.unshift({ label: 'before', bin: join(resolve(options.before), 'bin/lameduck.js') })
  }
  const corpora: CheckResult['corpora'] = []
  const dirs = new Map<number, string>()
  for (const megabytes of options.sizes) {
    const dir = join(outDir(), `check-corpus-${megabytes}MB`)
    const bytes = makeCorpus(dir, megabytes)
    corpora.push({ megabytes, bytes, files: listManifests(dir).length })
    dirs.set(megabytes, dir)
  }
  const runs: CheckRun[] = []
  const outputs = new Map<number, Set<string>>()
  // Builds and sizes alternate within each repetition, so a change in the machine's load hits
  // every one of them.
  for (let rep = 0; rep < options.repetitions; rep++) {
    for (const megabytes of options.sizes) {
      for (const build of builds) {
        const { run, output } = await once(build, dirs.get(megabytes)!, megabytes)
        runs.push(run)
        if (!outputs.has(megabytes)) outputs.set(megabytes, new Set())
        outputs.get(megabytes)!.add(output)
      }
    }
  }
  const summaries = builds.flatMap(({ label }) =>
    options.sizes.map((megabytes) => {
      const mine = runs.filter((r) => r.megabytes === megabytes && r.build === label)
      return {
        build: label,
        megabytes,
        wall: summarize(mine.map((r) => r.wallMs)),
        cpu: summarize(mine.map((r) => r.cpuMs)),
        rss: summarize(mine.map((r) => r.maxRssMiB)),
      }
    }),
  )
  const sameOutput = Object.fromEntries(
    [...outputs].map(([megabytes, set]) => [megabytes, set.size === 1]),
  )
  return { corpora, builds: builds.map((b) => b.label), runs, summaries, sameOutput }
}

export function reportCheck(result: CheckResult): string {
  const rows = result.summaries.map(({ build, megabytes, wall, cpu, rss }) => {
    const corpus = result.corpora.find((c) => c.megabytes === megabytes)!
    const target = TARGETS[megabytes]
    const goal =
      target === undefined
        ? ''
        : `≤ ${target.seconds} s${target.rssMiB === undefined ? '' : `, ≤ ${target.rssMiB} MiB`}`
    const before = result.summaries.find((s) => s.build === 'before' && s.megabytes === megabytes)
    const ratio =
      before === undefined
        ? ''
        : build === 'before'
          ? ' | '
          : ` | ${fixed(before.wall.median / wall.median, 1)}× / ${fixed(before.cpu.median / cpu.median, 1)}×`
    return `| ${fixed(corpus.bytes / 1024 / 1024, 1)} MiB, ${corpus.files} files | ${build} | ${fixed(wall.median / 1000)} s (${fixed(wall.min / 1000)}–${fixed(wall.max / 1000)}) | ${fixed(cpu.median / 1000)} s (${fixed(cpu.min / 1000)}–${fixed(cpu.max / 1000)}) | ${fixed(rss.max, 0)} MiB | ${goal}${ratio} |`
  })
  const side = result.builds.length > 1
  const loads = result.runs.map((r) => r.load)
  return [
    `| corpus | build | wall, median (min–max) | CPU user+sys, median (min–max) | peak RSS | issue 20 target${side ? ' | before ÷ this, wall / CPU' : ''} |`,
    `|---|---|---|---|---|---${side ? '|---' : ''}|`,
    ...rows,
    '',
    `${result.summaries[0]?.wall.n ?? 0} runs per corpus and build; exit codes ${[...new Set(result.runs.map((r) => r.exitCode))].join(', ')} (1: the copies have findings); load average (1 min) at the runs' starts ${fixed(Math.min(...loads), 1)}–${fixed(Math.max(...loads), 1)}.`,
    side
      ? `JSON reports of the builds byte-identical: ${Object.entries(result.sameOutput)
          .map(([mb, same]) => `${mb} MB ${same ? 'yes' : 'NO'}`)
          .join(', ')}.`
      : '',
  ].join('\n')
}
