// Shared pieces of the benchmarks: child processes that are always killed, labelled waits,
// summary statistics, and a description of the machine the figures came from.
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import os from 'node:os'
import { fileURLToPath } from 'node:url'

/** Absolute path of a file, from its path relative to the project root (this file runs from
 * dist/bench/). */
export function fromRoot(relative: string): string {
  return fileURLToPath(new URL(`../../${relative}`, import.meta.url))
}

/** Where raw results and callgrind profiles go (git-ignored). */
export function outDir(): string {
  const dir = fromRoot('bench/out')
  mkdirSync(dir, { recursive: true })
  return dir
}

/** Resolves with `promise`, or rejects naming `label` after `ms`. */
export function within<T>(label: string, promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${label}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

export interface Child {
  child: ChildProcess
  stdout: () => string
  stderr: () => string
  /** Resolves with the first match of `pattern` in stdout, or rejects after `ms` or when the
   * child exits first. */
  waitFor: (pattern: RegExp, label: string, ms: number) => Promise<RegExpMatchArray>
  /** Resolves when the child has exited, with its code and the parent's hrtime at 'exit'. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: bigint }>
}

/** This process's environment without the variables that change lameduck's options (an
 * operator's LAMEDUCK_DRAIN_DELAY_MS, or KUBERNETES_SERVICE_HOST, which makes the default
 * drainDelay 10 s), so every server runs with the options the benchmark gives it. */
export function benchEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env }
  for (const name of Object.keys(env)) {
    if (name.startsWith('LAMEDUCK_') || name === 'KUBERNETES_SERVICE_HOST') delete env[name]
  }
  return env
}

const live = new Set<ChildProcess>()
function killAll(): void {
  for (const child of live) child.kill('SIGKILL')
}
process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAll()
    process.exit(130)
  })
}

/** Spawns a child with captured output. Every child still running when this process ends
 * (normally, by an exception or by Ctrl-C) is killed. */
export function spawnChild(command: string, args: string[], options: SpawnOptions = {}): Child {
  const child = spawn(command, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: benchEnv(),
    ...options,
  })
  live.add(child)
  let out = ''
  let err = ''
  const waiters = new Set<() => void>()
  const poke = () => {
    for (const waiter of waiters) waiter()
  }
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk
    poke()
  })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk
    poke()
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: bigint }>(
    (resolve) => {
      child.once('exit', (code, signal) => {
        const at = process.hrtime.bigint()
        live.delete(child)
        poke()
        resolve({ code, signal, at })
      })
    },
  )
  const waitFor = (pattern: RegExp, label: string, ms: number) =>
    within(
      `${label} (stdout tail ${JSON.stringify(out.slice(-200))}, stderr tail ${JSON.stringify(err.slice(-300))})`,
      new Promise<RegExpMatchArray>((resolve, reject) => {
        const check = () => {
          const match = out.match(pattern)
          if (match !== null) {
            waiters.delete(check)
            resolve(match)
          } else if (child.exitCode !== null || child.signalCode !== null) {
            waiters.delete(check)
            reject(new Error(`child exited before ${label}; stderr: ${err.slice(-500)}`))
          }
        }
        waiters.add(check)
        check()
      }),
      ms,
    )
  return { child, stdout: () => out, stderr: () => err, waitFor, exited }
}

/** Spawns `node [nodeArgs] file [args]` with this process's node. */
export function spawnNode(
  file: string,
  args: string[] = [],
  nodeArgs: string[] = [],
  options: SpawnOptions = {},
): Child {
  return spawnChild(process.execPath, [...nodeArgs, fromRoot(file), ...args], options)
}

/** Waits for a child to exit, killing it if it takes longer than `ms`. */
export async function stop(
  child: Child,
  label: string,
  ms: number,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; at: bigint }> {
  try {
    return await within(label, child.exited, ms)
  } catch (error) {
    child.child.kill('SIGKILL')
    throw error
  }
}

export interface Summary {
  n: number
  median: number
  p90: number
  min: number
  max: number
}

/** Median, 90th percentile (nearest rank), min and max. */
export function summarize(values: readonly number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b)
  const n = sorted.length
  if (n === 0) return { n, median: Number.NaN, p90: Number.NaN, min: Number.NaN, max: Number.NaN }
  const median =
    n % 2 === 1
      ? (sorted[(n - 1) / 2] as number)
      : ((sorted[n / 2 - 1] as number) + (sorted[n / 2] as number)) / 2
  const p90 = sorted[Math.min(n - 1, Math.ceil(0.9 * n) - 1)] as number
  return { n, median, p90, min: sorted[0] as number, max: sorted[n - 1] as number }
}

/** `x` with `digits` decimals. */
export function fixed(x: number, digits = 2): string {
  return Number.isFinite(x) ? x.toFixed(digits) : String(x)
}

/** An integer with thousands separators. */
export function int(x: number): string {
  return Math.round(x).toLocaleString('en-US')
}

export interface Machine {
  date: string
  node: string
  nproc: number
  cpu: string
  kernel: string
  memoryGiB: number
}

export function machine(): Machine {
  return {
    date: new Date().toISOString(),
    node: process.version,
    nproc: os.availableParallelism(),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    kernel: `${os.type()} ${os.release()}`,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  }
}

export function describeMachine(m: Machine): string {
  return `${m.date} · node ${m.node} · nproc ${m.nproc} · ${m.cpu} · ${m.kernel} · ${m.memoryGiB} GiB`
}
