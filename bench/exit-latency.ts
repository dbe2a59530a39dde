// Time from the last in-flight response being flushed to process exit. A server child gets
// one slow keep-alive request (`/?delay=100`); once the request has arrived the parent sends
// SIGTERM; the child prints process.hrtime.bigint() in the response's 'finish' event, and the
// parent takes its own hrtime in the child's 'exit' event (CLOCK_MONOTONIC, system-wide on
// Linux). The difference includes process teardown and the parent noticing the exit, so the
// same run measures the floor: a server that calls process.exit(0) in that 'finish' handler.
import http from 'node:http'
import { fixed, type Summary, spawnNode, stop, summarize, within } from './common.js'

export type ExitMode = 'floor' | 'lameduck' | 'lameduck-streaming'
export const EXIT_MODES: readonly ExitMode[] = ['floor', 'lameduck', 'lameduck-streaming']
/** How long the in-flight request takes; the signal arrives while it runs. */
const DELAY_MS = 100

export interface ExitRun {
  mode: ExitMode
  repetition: number
  /** 'finish' in the child → 'exit' seen by the parent. */
  finishToExitMs: number
  /** SIGTERM sent → 'finish': positive, or the signal did not find the request in flight. */
  signalToFinishMs: number
  exitCode: number | null
  connectionHeader: string | undefined
}

export interface ExitResult {
  repetitions: number
  delayMs: number
  runs: ExitRun[]
  summaries: { mode: ExitMode; summary: Summary }[]
}

function get(port: string): Promise<{ body: string; connection: string | undefined }> {
  const agent = new http.Agent({ keepAlive: true })
  return new Promise<{ body: string; connection: string | undefined }>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: `/?delay=${DELAY_MS}`, agent }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })
      res.once('end', () => resolve({ body, connection: res.headers.connection }))
      res.once('error', reject)
    })
    req.once('error', reject)
  }).finally(() => agent.destroy())
}

async function once(mode: ExitMode, repetition: number): Promise<ExitRun> {
  const server = spawnNode('dist/bench/exit-server.js', [mode])
  try {
    const [, port] = await server.waitFor(/listening (\d+)/, `${mode} server to listen`, 10_000)
    const response = within(`${mode}: the response`, get(port as string), 10_000)
    await server.waitFor(/request/, `${mode}: the request to arrive`, 10_000)
    const signalled = process.hrtime.bigint()
    server.child.kill('SIGTERM')
    const [{ body, connection }, exit] = await Promise.all([
      response,
      stop(server, `${mode} server to exit`, 10_000),
    ])
    if (!body.endsWith('done')) throw new Error(`${mode}: incomplete body ${JSON.stringify(body)}`)
    const finish = BigInt(server.stdout().match(/finish (\d+)/)?.[1] ?? 0)
    if (finish === 0n) throw new Error(`${mode}: the server printed no finish time`)
    return {
      mode,
      repetition,
      finishToExitMs: Number(exit.at - finish) / 1e6,
      signalToFinishMs: Number(finish - signalled) / 1e6,
      exitCode: exit.code,
      connectionHeader: connection,
    }
  } finally {
    server.child.kill('SIGKILL')
  }
}

export async function exitLatency(options: { repetitions: number }): Promise<ExitResult> {
  const runs: ExitRun[] = []
  for (let repetition = 1; repetition <= options.repetitions; repetition++) {
    // Rotate the order so no mode always runs right after the same other one.
    const shift = repetition % EXIT_MODES.length
    const order = [...EXIT_MODES.slice(shift), ...EXIT_MODES.slice(0, shift)]
    for (const mode of order) {
      const run = await once(mode, repetition)
      if (run.exitCode !== 0 || run.signalToFinishMs <= 0) {
        throw new Error(`exit: unexpected run ${JSON.stringify(run)}`)
      }
      runs.push(run)
    }
  }
  const summaries = EXIT_MODES.map((mode) => ({
    mode,
    summary: summarize(runs.filter((r) => r.mode === mode).map((r) => r.finishToExitMs)),
  }))
  console.log(`exit: ${runs.length} runs`)
  return { repetitions: options.repetitions, delayMs: DELAY_MS, runs, summaries }
}

export function reportExitLatency(result: ExitResult): string {
  const floor = result.summaries.find((s) => s.mode === 'floor')?.summary as Summary
  const headers = (mode: ExitMode) =>
    [...new Set(result.runs.filter((r) => r.mode === mode).map((r) => r.connectionHeader))].join(
      ', ',
    )
  const lines = [
    `'finish' of the last response (GET /?delay=${result.delayMs}, SIGTERM while it runs) → the parent sees the child exit; ${result.repetitions} runs per server, order rotated; all exit codes 0:`,
    '',
    '| server | median ms | p90 ms | min – max ms | median − floor | response Connection header |',
    '|---|---:|---:|---:|---:|---|',
  ]
  for (const { mode, summary } of result.summaries) {
    lines.push(
      `| ${mode} | ${fixed(summary.median)} | ${fixed(summary.p90)} | ${fixed(summary.min)} – ${fixed(summary.max)} | ${mode === 'floor' ? '' : `${fixed(summary.median - floor.median)}`} | ${headers(mode)} |`,
    )
  }
  return lines.join('\n')
}
