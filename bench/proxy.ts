// The cost of `lameduck serve`'s proxy (issue 13): a keep-alive hello world loaded directly
// and through the proxy, side by side in the same run, alternating which goes first.
//
//   npm run build && node dist/bench/proxy.js [--rounds 10] [--requests 2000] [--wrk-pairs 3]
//
// 1. Latency: one keep-alive connection, one request at a time (a raw socket, so the
//    client adds as little as possible); per round, p50 and p99 of each target, and the
//    proxy's added latency (proxy − direct, same round).
// 2. Throughput: wrk -t2 -c50, alternating runs, requests/s of each and their ratio.
// 3. CPU per request: the proxy process's user + system time (/proc/PID/stat) over the wrk
//    runs through it, divided by the requests wrk completed; the upstream's likewise.
// Benchmarks, not tests: nothing here is asserted. Loopback only; every loop is bounded.
import { readFileSync } from 'node:fs'
import net from 'node:net'
import { parseArgs } from 'node:util'
import { freePort } from '../src/serve/upstream.js'
import {
  describeMachine,
  fixed,
  fromRoot,
  int,
  machine,
  spawnChild,
  spawnNode,
  stop,
  summarize,
  within,
} from './common.js'

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '10' },
    requests: { type: 'string', default: '2000' },
    'wrk-pairs': { type: 'string', default: '3' },
    'wrk-seconds': { type: 'string', default: '3' },
  },
})
const ROUNDS = Number(values.rounds)
const REQUESTS = Number(values.requests)
const WRK_PAIRS = Number(values['wrk-pairs'])
const WRK_SECONDS = Number(values['wrk-seconds'])
const TICK_MS = 1000 / 100 // USER_HZ is 100 on Linux
const REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: bench\r\nConnection: keep-alive\r\n\r\n')
const BODY = 'hello world'

/** CPU time (user + system) of a process so far, in milliseconds. */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS
}

/** `count` sequential keep-alive requests on one raw connection; each round trip in µs. */
async function latencies(port: number, count: number): Promise<number[]> {
  const socket = net.connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  await within('connect', new Promise((resolve) => socket.once('connect', resolve)), 5_000)
  const out: number[] = []
  let received = ''
  let started = 0n
  await within(
    `${count} requests on port ${port}`,
    new Promise<void>((resolve, reject) => {
      socket.on('error', reject)
      socket.setEncoding('latin1')
      socket.on('data', (chunk: string) => {
        received += chunk
        if (!received.endsWith(BODY)) return
        out.push(Number(process.hrtime.bigint() - started) / 1_000)
        received = ''
        if (out.length === count) resolve()
        else send()
      })
      const send = () => {
        started = process.hrtime.bigint()
        socket.write(REQUEST)
      }
      send()
    }),
    120_000,
  )
  socket.destroy()
  return out
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)] as number
}

async function wrk(port: number): Promise<{ rps: number; requests: number }> {
  const child = spawnChild('wrk', ['-t2', '-c50', `-d${WRK_SECONDS}s`, `http://127.0.0.1:${port}/`])
  await stop(child, 'wrk', (WRK_SECONDS + 30) * 1000)
  const out = child.stdout()
  const rps = out.match(/Requests\/sec:\s+([\d.]+)/)
  const requests = out.match(/(\d+) requests in/)
  if (rps === null || requests === null) throw new Error(`wrk failed: ${out}`)
  return { rps: Number(rps[1]), requests: Number(requests[1]) }
}

async function main() {
  const upstreamPort = await freePort()
  const proxyPort = await freePort()
  const serve = spawnNode('bin/lameduck.js', [
    'serve',
    '--port',
    String(proxyPort),
    '--upstream',
    `127.0.0.1:${upstreamPort}`,
    '--',
    process.execPath,
    fromRoot('dist/bench/proxy-upstream.js'),
  ])
  const ready = await within(
    'lameduck serve to be ready',
    new Promise<string>((resolve) => {
      const check = setInterval(() => {
        if (serve.stderr().includes('"state":"ready"')) {
          clearInterval(check)
          resolve(serve.stderr())
        }
      }, 20)
    }),
    10_000,
  )
  const upstreamPid = Number(/child pid (\d+)/.exec(ready)?.[1])
  const proxyPid = serve.child.pid as number
  const minimalPort = await freePort()
  const minimal = spawnNode('dist/bench/proxy-minimal.js', [], [], {
    env: { ...process.env, PORT: String(minimalPort), UPSTREAM_PORT: String(upstreamPort) },
  })
  await within(
    'the minimal proxy to listen',
    (async () => {
      for (;;) {
        const up = await new Promise<boolean>((resolve) => {
          const probe = net.connect(minimalPort, '127.0.0.1')
          probe.once('connect', () => {
            probe.destroy()
            resolve(true)
          })
          probe.once('error', () => resolve(false))
          probe.once('close', () => probe.destroy())
        })
        if (up) return
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    })(),
    10_000,
  )
  const minimalPid = minimal.child.pid as number
  const targets = { direct: upstreamPort, proxy: proxyPort, minimal: minimalPort } as const

  console.log(describeMachine(machine()))
  console.log(
    `\nLatency: ${ROUNDS} rounds × ${int(REQUESTS)} sequential keep-alive requests per target (µs)`,
  )
  // Warm-up: both paths compiled before anything is counted.
  for (const port of Object.values(targets)) await latencies(port, REQUESTS)
  const names = ['direct', 'proxy', 'minimal'] as const
  const rows: Record<(typeof names)[number], number[]>[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const result = {} as Record<(typeof names)[number], number[]>
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + round) % names.length] as (typeof names)[number]
      result[name] = (await latencies(targets[name], REQUESTS)).sort((a, b) => a - b)
    }
    rows.push(result)
  }
  console.log(
    '| round | direct p50 | serve p50 | minimal p50 | serve added p50 | minimal added p50 | direct p99 | serve p99 | minimal p99 |',
  )
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  const added50: number[] = []
  const added99: number[] = []
  const minimal50: number[] = []
  rows.forEach((row, round) => {
    const [d50, p50, m50] = names.map((n) => percentile(row[n], 0.5)) as [number, number, number]
    const [d99, p99, m99] = names.map((n) => percentile(row[n], 0.99)) as [number, number, number]
    added50.push(p50 - d50)
    added99.push(p99 - d99)
    minimal50.push(m50 - d50)
    console.log(
      `| ${round + 1} | ${fixed(d50, 0)} | ${fixed(p50, 0)} | ${fixed(m50, 0)} | ${fixed(p50 - d50, 0)} | ${fixed(m50 - d50, 0)} | ${fixed(d99, 0)} | ${fixed(p99, 0)} | ${fixed(m99, 0)} |`,
    )
  })
  const a50 = summarize(added50)
  const a99 = summarize(added99)
  const m50 = summarize(minimal50)
  console.log(
    `\nadded latency through lameduck serve, p50: median ${fixed(a50.median, 0)} µs (${fixed(a50.min, 0)} – ${fixed(a50.max, 0)}); p99: median ${fixed(a99.median, 0)} µs (${fixed(a99.min, 0)} – ${fixed(a99.max, 0)}); through the minimal node:http proxy, p50: median ${fixed(m50.median, 0)} µs (${fixed(m50.min, 0)} – ${fixed(m50.max, 0)})`,
  )

  console.log(`\nThroughput: wrk -t2 -c50 -d${WRK_SECONDS}s, ${WRK_PAIRS} alternating pairs`)
  console.log(
    '| pair | direct req/s | serve req/s | minimal req/s | serve ÷ direct | serve CPU µs/req | minimal proxy CPU µs/req | upstream CPU µs/req (direct) |',
  )
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  // Warm-up: one unmeasured run each, so the JIT has compiled every path.
  for (const port of Object.values(targets)) await wrk(port)
  const ratios: number[] = []
  const proxyCpu: number[] = []
  const minimalCpu: number[] = []
  for (let pair = 0; pair < WRK_PAIRS; pair++) {
    const result = {} as Record<
      (typeof names)[number],
      { rps: number; requests: number; proxyCpu: number; minimalCpu: number; upstreamCpu: number }
    >
    for (let i = 0; i < names.length; i++) {
      const name = names[(i + pair) % names.length] as (typeof names)[number]
      const before = [cpuMs(proxyPid), cpuMs(minimalPid), cpuMs(upstreamPid)]
      const run = await wrk(targets[name])
      const per = (pid: number, at: number) =>
        ((cpuMs(pid) - (before[at] as number)) * 1000) / run.requests
      result[name] = {
        ...run,
        proxyCpu: per(proxyPid, 0),
        minimalCpu: per(minimalPid, 1),
        upstreamCpu: per(upstreamPid, 2),
      }
    }
    const { direct, proxy, minimal: floor } = result
    ratios.push(proxy.rps / direct.rps)
    proxyCpu.push(proxy.proxyCpu)
    minimalCpu.push(floor.minimalCpu)
    console.log(
      `| ${pair + 1} | ${int(direct.rps)} | ${int(proxy.rps)} | ${int(floor.rps)} | ${fixed(proxy.rps / direct.rps)} | ${fixed(proxy.proxyCpu, 1)} | ${fixed(floor.minimalCpu, 1)} | ${fixed(direct.upstreamCpu, 1)} |`,
    )
  }
  const r = summarize(ratios)
  const c = summarize(proxyCpu)
  const m = summarize(minimalCpu)
  console.log(
    `\nserve ÷ direct req/s: median ${fixed(r.median)} (${fixed(r.min)} – ${fixed(r.max)}); CPU per request, lameduck serve: median ${fixed(c.median, 1)} µs (${fixed(c.min, 1)} – ${fixed(c.max, 1)}), minimal proxy: median ${fixed(m.median, 1)} µs (${fixed(m.min, 1)} – ${fixed(m.max, 1)})`,
  )
  serve.child.kill('SIGTERM')
  minimal.child.kill('SIGTERM')
  await stop(serve, 'lameduck serve', 10_000)
  await stop(minimal, 'the minimal proxy', 10_000)
}

await main()
