// Closing 10 000 idle keep-alive connections at drain end, and memory per tracked
// connection. A client process opens the connections to a server child, one request each,
// and keeps them idle; the parent measures the server's heap (after GC) and RSS before and
// after, then shuts it down:
//   lameduck: `await ld.shutdown()` with drainDelay 0; the outcome's durations.closeMs, and
//             independently, from the shutdown() call: the server's 'close' event (every
//             socket destroyed), every socket's 'close' event run, and the client process
//             done handling its last close;
//   bare:     server.close() + server.closeIdleConnections(), the same stamps: the floor.
// Bare and lameduck alternate; bytes per tracked connection = (lameduck's growth - bare's
// growth) / connections, per pair of runs.
import type { ChildProcess } from 'node:child_process'
import { fixed, int, type Summary, spawnNode, stop, summarize, within } from './common.js'

type IdleMode = 'bare' | 'lameduck'

export interface IdleRun {
  mode: IdleMode
  repetition: number
  connections: number
  openMs: number
  heapBefore: number
  heapAfter: number
  rssBefore: number
  rssAfter: number
  /** lameduck's own outcome.durations.closeMs. */
  closeMs: number | undefined
  /** shutdown() (or close()) called → the server's 'close' event: every socket destroyed. */
  toServerCloseMs: number
  /** shutdown() (or close()) called → every socket's 'close' event has run. */
  toSettledMs: number
  /** shutdown() (or close()) called → the client saw its last connection close. */
  toClientLastCloseMs: number
  clientErrors: number
  outcomeConnections: { closed: number; forced: number } | undefined
}

export interface CloseIdleResult {
  connections: number
  repetitions: number
  runs: IdleRun[]
  summaries: Record<
    IdleMode,
    {
      closeMs: Summary
      toServerCloseMs: Summary
      toSettledMs: Summary
      toClientLastCloseMs: Summary
      heapPerConnection: Summary
      rssPerConnection: Summary
    }
  >
  /** lameduck − bare growth per connection, per pair. */
  trackedHeapBytes: Summary
  trackedRssBytes: Summary
}

interface Memory {
  heapUsed: number
  rss: number
  connections: number
}

interface Closed {
  started: string
  stopping: string | undefined
  closed: string
  settled: string
  resolved: string
  closeMs: number | undefined
  connections: { closed: number; forced: number } | undefined
}

function ask<T>(child: ChildProcess, message: object, label: string, ms: number): Promise<T> {
  return within(
    label,
    new Promise<T>((resolve) => {
      child.once('message', (answer) => resolve(answer as T))
      child.send(message)
    }),
    ms,
  )
}

async function once(mode: IdleMode, count: number, repetition: number): Promise<IdleRun> {
  const server = spawnNode('dist/bench/idle-server.js', [mode], ['--expose-gc'], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  })
  let client: ReturnType<typeof spawnNode> | undefined
  try {
    const [, port] = await server.waitFor(/listening (\d+)/, `${mode} idle server`, 10_000)
    const before = await ask<Memory>(server.child, { cmd: 'measure' }, 'memory before', 10_000)
    const opening = performance.now()
    client = spawnNode('dist/bench/idle-client.js', [port as string, String(count)])
    await client.waitFor(/ready (\d+)/, `${count} idle connections`, 60_000)
    const openMs = performance.now() - opening
    const after = await ask<Memory>(server.child, { cmd: 'measure' }, 'memory after', 10_000)
    if (after.connections !== count) {
      throw new Error(`${mode}: the server has ${after.connections} connections, not ${count}`)
    }
    const closed = await ask<Closed>(server.child, { cmd: 'shutdown' }, 'shutdown', 30_000)
    const [, , , lastClose, clientErrors] = (await client.waitFor(
      /closed (\d+) first (\d+) last (\d+) errors (\d+)/,
      'the client to see every connection close',
      30_000,
    )) as string[]
    await stop(client, 'idle client to exit', 10_000)
    server.child.send({ cmd: 'exit' })
    await stop(server, 'idle server to exit', 10_000)
    const started = BigInt(closed.started)
    const ms = (at: bigint) => Number(at - started) / 1e6
    return {
      mode,
      repetition,
      connections: count,
      openMs,
      heapBefore: before.heapUsed,
      heapAfter: after.heapUsed,
      rssBefore: before.rss,
      rssAfter: after.rss,
      closeMs: closed.closeMs,
      toServerCloseMs: ms(BigInt(closed.closed)),
      toSettledMs: ms(BigInt(closed.settled)),
      toClientLastCloseMs: ms(BigInt(lastClose as string)),
      clientErrors: Number(clientErrors),
      outcomeConnections: closed.connections,
    }
  } finally {
    client?.child.kill('SIGKILL')
    server.child.kill('SIGKILL')
  }
}

export async function closeIdle(options: {
  connections: number
  repetitions: number
}): Promise<CloseIdleResult> {
  const runs: IdleRun[] = []
  for (let repetition = 1; repetition <= options.repetitions; repetition++) {
    const order: IdleMode[] = repetition % 2 === 1 ? ['bare', 'lameduck'] : ['lameduck', 'bare']
    for (const mode of order) {
      const run = await once(mode, options.connections, repetition)
      console.log(
        `close: ${mode} rep ${repetition}: close ${fixed(run.toServerCloseMs, 1)} ms, heap +${int(run.heapAfter - run.heapBefore)} B`,
      )
      runs.push(run)
    }
  }
  const of = (mode: IdleMode) => runs.filter((r) => r.mode === mode)
  const heapPer = (r: IdleRun) => (r.heapAfter - r.heapBefore) / r.connections
  const rssPer = (r: IdleRun) => (r.rssAfter - r.rssBefore) / r.connections
  const summary = (mode: IdleMode) => ({
    closeMs: summarize(of(mode).flatMap((r) => (r.closeMs === undefined ? [] : [r.closeMs]))),
    toServerCloseMs: summarize(of(mode).map((r) => r.toServerCloseMs)),
    toSettledMs: summarize(of(mode).map((r) => r.toSettledMs)),
    toClientLastCloseMs: summarize(of(mode).map((r) => r.toClientLastCloseMs)),
    heapPerConnection: summarize(of(mode).map(heapPer)),
    rssPerConnection: summarize(of(mode).map(rssPer)),
  })
  const bare = of('bare')
  const lame = of('lameduck')
  return {
    connections: options.connections,
    repetitions: options.repetitions,
    runs,
    summaries: { bare: summary('bare'), lameduck: summary('lameduck') },
    trackedHeapBytes: summarize(lame.map((r, i) => heapPer(r) - heapPer(bare[i] as IdleRun))),
    trackedRssBytes: summarize(lame.map((r, i) => rssPer(r) - rssPer(bare[i] as IdleRun))),
  }
}

export function reportCloseIdle(result: CloseIdleResult): string {
  const { bare, lameduck } = result.summaries
  const span = (s: Summary, digits = 1) =>
    `${fixed(s.median, digits)} (${fixed(s.min, digits)} – ${fixed(s.max, digits)})`
  const bytes = (s: Summary) => `${int(s.median)} (${int(s.min)} – ${int(s.max)})`
  const errors = result.runs.reduce((sum, r) => sum + r.clientErrors, 0)
  const forced = result.runs.reduce((sum, r) => sum + (r.outcomeConnections?.forced ?? 0), 0)
  return [
    `${int(result.connections)} idle keep-alive connections, ${result.repetitions} runs per server, bare and lameduck alternating; median (min – max). Client socket errors: ${errors}; connections lameduck forced: ${forced}.`,
    '',
    '| | bare (server.close + closeIdleConnections) | lameduck (await ld.shutdown()) |',
    '|---|---:|---:|',
    `| outcome.durations.closeMs | | ${span(lameduck.closeMs, 0)} |`,
    `| called → server 'close' event (every socket destroyed), ms | ${span(bare.toServerCloseMs)} | ${span(lameduck.toServerCloseMs)} |`,
    `| called → every socket's 'close' event ran, ms | ${span(bare.toSettledMs)} | ${span(lameduck.toSettledMs)} |`,
    `| called → the client process handled its last close, ms | ${span(bare.toClientLastCloseMs)} | ${span(lameduck.toClientLastCloseMs)} |`,
    `| heap growth per connection, bytes | ${bytes(bare.heapPerConnection)} | ${bytes(lameduck.heapPerConnection)} |`,
    `| RSS growth per connection, bytes | ${bytes(bare.rssPerConnection)} | ${bytes(lameduck.rssPerConnection)} |`,
    '',
    `Per tracked connection (lameduck − bare, per pair): heap ${bytes(result.trackedHeapBytes)} bytes, RSS ${bytes(result.trackedRssBytes)} bytes.`,
  ].join('\n')
}
