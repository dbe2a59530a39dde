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
  const targets = { direct: upstreamPort, proxy: proxyPort } as const

  console.log(describeMachine(machine()))
  console.log(
    `\nLatency: ${ROUNDS} rounds × ${int(REQUESTS)} sequential keep-alive requests per target (µs)`,
  )
  // Warm-up: both paths compiled before anything is counted.
  await latencies(upstreamPort, REQUESTS)
  await latencies(proxyPort, REQUESTS)
  const rows: { round: number; direct: number[]; proxy: number[] }[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? (['direct', 'proxy'] as const) : (['proxy', 'direct'] as const)
    const result: Record<string, number[]> = {}
    for (const name of order) {
      result[name] = (await latencies(targets[name], REQUESTS)).sort((a, b) => a - b)
    }
    rows.push({ round, direct: result.direct as number[], proxy: result.proxy as number[] })
  }
  console.log('| round | direct p50 | proxy p50 | added p50 | direct p99 | proxy p99 | added p99 |')
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  const added50: number[] = []
  const added99: number[] = []
  for (const row of rows) {
    const d50 = percentile(row.direct, 0.5)
    const p50 = percentile(row.proxy, 0.5)
    const d99 = percentile(row.direct, 0.99)
    const p99 = percentile(row.proxy, 0.99)
    added50.push(p50 - d50)
    added99.push(p99 - d99)
    console.log(
      `| ${row.round + 1} | ${fixed(d50, 0)} | ${fixed(p50, 0)} | ${fixed(p50 - d50, 0)} | ${fixed(d99, 0)} | ${fixed(p99, 0)} | ${fixed(p99 - d99, 0)} |`,
    )
  }
  const a50 = summarize(added50)
  const a99 = summarize(added99)
  console.log(
    `\nadded latency p50: median ${fixed(a50.median, 0)} µs (${fixed(a50.min, 0)} – ${fixed(a50.max, 0)}); p99: median ${fixed(a99.median, 0)} µs (${fixed(a99.min, 0)} – ${fixed(a99.max, 0)})`,
  )

  console.log(`\nThroughput: wrk -t2 -c50 -d${WRK_SECONDS}s, ${WRK_PAIRS} alternating pairs`)
  console.log(
    '| pair | direct req/s | proxy req/s | proxy ÷ direct | proxy CPU µs/req | upstream CPU µs/req (via proxy) | upstream CPU µs/req (direct) |',
  )
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  // Warm-up: one unmeasured run each, so the JIT has compiled both paths.
  await wrk(proxyPort)
  await wrk(upstreamPort)
  const ratios: number[] = []
  const proxyCpu: number[] = []
  for (let pair = 0; pair < WRK_PAIRS; pair++) {
    const order = pair % 2 === 0 ? (['direct', 'proxy'] as const) : (['proxy', 'direct'] as const)
    const result: Record<
      string,
      { rps: number; requests: number; proxyCpu: number; upstreamCpu: number }
    > = {}
    for (const name of order) {
      const proxyBefore = cpuMs(proxyPid)
      const upstreamBefore = cpuMs(upstreamPid)
      const run = await wrk(targets[name])
      result[name] = {
        ...run,
        proxyCpu: ((cpuMs(proxyPid) - proxyBefore) * 1000) / run.requests,
        upstreamCpu: ((cpuMs(upstreamPid) - upstreamBefore) * 1000) / run.requests,
      }
    }
    const direct = result.direct as (typeof result)[string]
    const proxy = result.proxy as (typeof result)[string]
    ratios.push(proxy.rps / direct.rps)
    proxyCpu.push(proxy.proxyCpu)
    console.log(
      `| ${pair + 1} | ${int(direct.rps)} | ${int(proxy.rps)} | ${fixed(proxy.rps / direct.rps)} | ${fixed(proxy.proxyCpu, 1)} | ${fixed(proxy.upstreamCpu, 1)} | ${fixed(direct.upstreamCpu, 1)} |`,
    )
  }
  const r = summarize(ratios)
  const c = summarize(proxyCpu)
  console.log(
    `\nproxy ÷ direct req/s: median ${fixed(r.median)} (${fixed(r.min)} – ${fixed(r.max)}); proxy CPU per request: median ${fixed(c.median, 1)} µs (${fixed(c.min, 1)} – ${fixed(c.max, 1)})`,
  )
  serve.child.kill('SIGTERM')
  await stop(serve, 'lameduck serve', 10_000)
}

await main()
