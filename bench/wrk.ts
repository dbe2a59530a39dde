// Wall-clock throughput with wrk (the standard HTTP load tool the issue names): the bare and
// the lameduck hello-world servers run side by side, and wrk loads them in alternating runs
// (bare first in odd pairs, lameduck first in even ones), after one warm-up run each. Each
// pair gives one lameduck ÷ bare ratio. On a shared 2-core machine this swings far more
// than the 3 % in question (see /work/shared/BENCHMARKING.md); it is the secondary figure.
import { fixed, int, type Summary, spawnChild, spawnNode, stop, summarize } from './common.js'

export interface WrkOptions {
  pairs: number
  seconds: number
  /** wrk's -c and -t. */
  connections?: number
  threads?: number
}

export interface WrkRun {
  server: 'bare' | 'lameduck'
  pair: number
  requestsPerSecond: number
  requests: number
  errors: number
}

export interface WrkResult {
  options: Required<WrkOptions>
  command: string
  runs: WrkRun[]
  bare: Summary
  lameduck: Summary
  /** lameduck ÷ bare requests/s, one per pair. */
  ratio: Summary
  ratios: number[]
  wrk: string
}

const WARM_UP_SECONDS = 1

function wrkArgs(options: Required<WrkOptions>, seconds: number, port: string): string[] {
  return [
    `-t${options.threads}`,
    `-c${options.connections}`,
    `-d${seconds}s`,
    `http://127.0.0.1:${port}/`,
  ]
}

async function runWrk(args: string[], seconds: number): Promise<Omit<WrkRun, 'server' | 'pair'>> {
  const child = spawnChild('wrk', args)
  const exit = await stop(child, `wrk ${args.join(' ')}`, (seconds + 30) * 1000)
  const out = child.stdout()
  const rps = out.match(/Requests\/sec:\s+([\d.]+)/)
  const requests = out.match(/(\d+) requests in/)
  if (exit.code !== 0 || rps === null || requests === null) {
    throw new Error(`wrk failed (exit ${exit.code}): ${out} ${child.stderr()}`)
  }
  const socketErrors = out.match(
    /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/,
  )
  const non2xx = out.match(/Non-2xx or 3xx responses: (\d+)/)
  const errors =
    (socketErrors?.slice(1).reduce((sum, x) => sum + Number(x), 0) ?? 0) + Number(non2xx?.[1] ?? 0)
  return { requestsPerSecond: Number(rps[1]), requests: Number(requests[1]), errors }
}

export async function wrk(input: WrkOptions): Promise<WrkResult> {
  const options: Required<WrkOptions> = { connections: 50, threads: 1, ...input }
  const servers = {
    bare: spawnNode('dist/bench/hello-server.js', ['bare']),
    lameduck: spawnNode('dist/bench/hello-server.js', ['lameduck']),
  }
  try {
    const ports = {
      bare: (await servers.bare.waitFor(/listening (\d+)/, 'bare server', 10_000))[1] as string,
      lameduck: (
        await servers.lameduck.waitFor(/listening (\d+)/, 'lameduck server', 10_000)
      )[1] as string,
    }
    for (const server of ['bare', 'lameduck'] as const) {
      await runWrk(wrkArgs(options, WARM_UP_SECONDS, ports[server]), WARM_UP_SECONDS)
    }
    const runs: WrkRun[] = []
    for (let pair = 1; pair <= options.pairs; pair++) {
      const order =
        pair % 2 === 1 ? (['bare', 'lameduck'] as const) : (['lameduck', 'bare'] as const)
      for (const server of order) {
        const run = await runWrk(wrkArgs(options, options.seconds, ports[server]), options.seconds)
        runs.push({ server, pair, ...run })
        console.log(`wrk: pair ${pair} ${server}: ${int(run.requestsPerSecond)} requests/s`)
      }
    }
    for (const server of ['bare', 'lameduck'] as const) {
      servers[server].child.kill('SIGTERM')
      await stop(servers[server], `${server} server to exit`, 10_000)
    }
    const of = (server: string) =>
      runs.filter((r) => r.server === server).map((r) => r.requestsPerSecond)
    const bare = of('bare')
    const ratios = of('lameduck').map((x, i) => x / (bare[i] as number))
    const version = spawnChild('wrk', ['--version'])
    await stop(version, 'wrk --version', 5_000)
    return {
      options,
      command: `wrk ${wrkArgs(options, options.seconds, 'PORT').join(' ')}`,
      runs,
      bare: summarize(bare),
      lameduck: summarize(of('lameduck')),
      ratio: summarize(ratios),
      ratios,
      wrk: (version.stdout() + version.stderr()).split('\n')[0]?.trim() ?? 'wrk',
    }
  } finally {
    servers.bare.child.kill('SIGKILL')
    servers.lameduck.child.kill('SIGKILL')
  }
}

export function reportWrk(result: WrkResult): string {
  const errors = result.runs.reduce((sum, r) => sum + r.errors, 0)
  const row = (name: string, s: Summary) =>
    `| ${name} | ${int(s.median)} | ${int(s.min)} – ${int(s.max)} |`
  return [
    `\`${result.command}\`, ${result.options.pairs} alternating pairs of ${result.options.seconds} s after a ${WARM_UP_SECONDS} s warm-up each, ${result.wrk}; ${errors} socket errors or non-2xx answers:`,
    '',
    '| server | median requests/s | min – max |',
    '|---|---:|---:|',
    row('bare', result.bare),
    row('lameduck', result.lameduck),
    '',
    `lameduck ÷ bare per pair: median ${fixed(result.ratio.median, 3)}, min – max ${fixed(result.ratio.min, 3)} – ${fixed(result.ratio.max, 3)} (${result.ratios.map((x) => fixed(x, 3)).join(', ')})`,
  ].join('\n')
}
