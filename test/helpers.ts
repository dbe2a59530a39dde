// Shared test utilities: every wait has a label and a deadline, so a stuck test fails
// with the name of what it was waiting for instead of hanging the suite.
import { type ChildProcess, spawn } from 'node:child_process'
import type { EventEmitter } from 'node:events'
import { fileURLToPath } from 'node:url'

export const DEFAULT_WAIT_MS = 5_000

/** Resolves with `promise`, or rejects naming `label` after `ms`. */
export function within<T>(label: string, promise: Promise<T>, ms = DEFAULT_WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${label}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/**
 * Resolves once `predicate()` holds, checking every `everyMs`; rejects naming `label` after
 * `ms`. For states no event announces (a process appearing in /proc, a file being written).
 */
export function until(
  label: string,
  predicate: () => boolean,
  ms = DEFAULT_WAIT_MS,
  everyMs = 20,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  return within(
    label,
    new Promise<void>((resolve) => {
      const check = () => {
        if (predicate()) resolve()
        else timer = setTimeout(check, everyMs)
      }
      check()
    }),
    ms,
  ).finally(() => clearTimeout(timer))
}

/** The first emission of `event` (its arguments), or a labelled timeout. */
export function nextEvent<T extends unknown[] = unknown[]>(
  emitter: EventEmitter,
  event: string,
  label = `event '${event}'`,
  ms = DEFAULT_WAIT_MS,
): Promise<T> {
  return within(
    label,
    new Promise<T>((resolve) => emitter.once(event, (...args: unknown[]) => resolve(args as T))),
    ms,
  )
}

/** Absolute path of a file, from its path relative to the project root (compiled code is under dist/). */
export function fromRoot(relative: string): string {
  return fileURLToPath(new URL(`../../${relative}`, import.meta.url))
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

/** Resolves when the child exits (immediately if it already has). */
export function exited(
  child: ChildProcess,
  label = 'child exit',
  ms = DEFAULT_WAIT_MS,
): Promise<Exit> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({
      code: child.exitCode,
      signal: child.signalCode as NodeJS.Signals | null,
    })
  }
  return within(
    label,
    new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal }))),
    ms,
  )
}

export interface Spawned {
  child: ChildProcess
  /** Everything the child wrote to stdout so far. */
  stdout: () => string
  /** Everything the child wrote to stderr so far. */
  stderr: () => string
  /** Resolves when stdout (or stderr) contains `text`. */
  waitFor: (text: string | RegExp, label?: string, ms?: number) => Promise<string>
}

/** Spawns `node file args` with captured output. The child is killed when the test process ends. */
export function spawnNode(
  file: string,
  args: string[] = [],
  options: { env?: NodeJS.ProcessEnv; cwd?: string } = {},
): Spawned {
  const child = spawn(process.execPath, [file, ...args], {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
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
  const kill = () => child.kill('SIGKILL')
  process.once('exit', kill)
  child.once('exit', () => {
    process.off('exit', kill)
    poke()
  })
  const waitFor = (text: string | RegExp, label = `output ${String(text)}`, ms = DEFAULT_WAIT_MS) =>
    within(
      `${label} (stdout: ${JSON.stringify(out.slice(-300))}, stderr: ${JSON.stringify(err.slice(-300))})`,
      new Promise<string>((resolve, reject) => {
        const check = () => {
          const all = out + err
          const found = typeof text === 'string' ? all.includes(text) : text.test(all)
          if (found) {
            waiters.delete(check)
            resolve(all)
          } else if (child.exitCode !== null || child.signalCode !== null) {
            waiters.delete(check)
            reject(
              new Error(
                `child exited (${child.exitCode ?? child.signalCode}) before ${label}; stderr: ${err}`,
              ),
            )
          }
        }
        waiters.add(check)
        check()
      }),
      ms,
    )
  return { child, stdout: () => out, stderr: () => err, waitFor }
}
