// The supervised child of `lameduck serve` (proxy mode): the user's command, in a process
// group of its own, started once and stopped once.
import { type ChildProcess, spawn } from 'node:child_process'
import { accessSync, constants as fs, statSync } from 'node:fs'
import { constants } from 'node:os'
import { delimiter, join } from 'node:path'
import { CHILD_KILL_WAIT_MS } from '../contract.js'

/** How the child ended. `signal` is set when a signal ended it (no exit code then). */
export interface ChildExit {
  code: number | null
  signal: NodeJS.Signals | null
}

/** How a stop went: the child exited after the stop signal, or had to be SIGKILLed. */
export type StopResult =
  | { kind: 'already-exited'; exit: ChildExit }
  | { kind: 'exited'; exit: ChildExit; afterMs: number }
  | { kind: 'killed'; exit: ChildExit | undefined; afterMs: number }

/** The status a shell would report for this exit: the code, or 128 + the signal's number. */
export function exitStatus(exit: ChildExit): number {
  if (exit.code !== null) return exit.code
  const number = exit.signal === null ? undefined : constants.signals[exit.signal]
  return number === undefined ? 1 : 128 + number
}

/** A failed start: the command could not be run at all (not found, not executable). */
export class ChildStartError extends Error {
  override name = 'ChildStartError'
}

/** A POSIX shell for the group watcher; without one, node itself runs it. */
const SHELL_PATHS = ['/bin/sh', '/usr/bin/sh']
/** The group watcher: blocks reading its stdin, a pipe only lameduck holds open, and when
 * it ends (lameduck exited, even SIGKILLed) SIGKILLs the child's process group. */
const WATCH_SH = 'read _ignored; kill -s KILL -- "-$1" 2>/dev/null; exit 0'
const WATCH_JS =
  "process.stdin.resume().on('close',()=>{try{process.kill(-Number(process.argv[1]),'SIGKILL')}catch{}process.exit(0)})"

/**
 * Starts the watcher that ends process group `pgid` when lameduck is gone. It runs in a
 * session of its own (a terminal's Ctrl-C to lameduck's group does not end it) and is not
 * in the child's group. Returns undefined when it cannot start: the child then relies on its
 * parent-death signal alone.
 */
function watchGroup(pgid: number): ChildProcess | undefined {
  const shell = SHELL_PATHS.find(executable)
  try {
    const watcher =
      shell === undefined
        ? spawn(process.execPath, ['-e', WATCH_JS, String(pgid)], {
            detached: true,
            stdio: ['pipe', 'ignore', 'ignore'],
          })
        : spawn(shell, ['-c', WATCH_SH, 'lameduck-watch', String(pgid)], {
            detached: true,
            stdio: ['pipe', 'ignore', 'ignore'],
          })
    watcher.on('error', () => {})
    watcher.stdin?.on('error', () => {})
    // Neither the watcher nor its pipe keeps lameduck's event loop alive.
    watcher.unref()
    ;(watcher.stdin as unknown as { unref?: () => void } | null)?.unref?.()
    return watcher
  } catch {
    return undefined
  }
}

/** util-linux's setpriv, which can set the parent-death signal before it execs a command. */
const SETPRIV_PATHS = ['/usr/bin/setpriv', '/bin/setpriv']

function executable(path: string): boolean {
  try {
    accessSync(path, fs.X_OK)
    return statSync(path).isFile()
  } catch {
    return false
  }
}

/** Whether a program of that name is found in this process's PATH. */
export function onPath(name: string): boolean {
  return resolveCommand(name, process.env) !== undefined
}

/** Where `command` would be found, as execvp looks for it; undefined when nowhere. */
export function resolveCommand(command: string, env: NodeJS.ProcessEnv): string | undefined {
  if (command.includes('/')) return executable(command) ? command : undefined
  for (const dir of (env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    const path = join(dir === '' ? '.' : dir, command)
    if (executable(path)) return path
  }
  return undefined
}

/** The error Child.start would fail with for a command found nowhere on PATH, if so. */
export function missingCommand(
  command: string,
  env: NodeJS.ProcessEnv,
): ChildStartError | undefined {
  return resolveCommand(command, env) === undefined
    ? new ChildStartError(`cannot start '${command}': command not found or not executable`)
    : undefined
}

/**
 * The command, spawned with `detached: true`: setsid() makes it the leader of its own
 * process group and session, so a Ctrl-C on a terminal, or a signal sent to our group,
 * reaches lameduck only, and lameduck decides when the child hears of it. The child's
 * stdio is ours (inherited), as it would be without lameduck.
 *
 * Node reaps the child itself (libuv waits on the pids it spawned). Processes the child
 * orphans are re-parented to PID 1; Node cannot wait on those, which is why every process
 * left in the child's group is SIGKILLed once the child has exited.
 */
export class Child {
  readonly process: ChildProcess
  readonly pid: number
  readonly #exited: Promise<ChildExit>
  #exit: ChildExit | undefined
  #stopping = false
  /** Ends the child's group if lameduck itself is SIGKILLed (see watchGroup). */
  readonly #watcher: ChildProcess | undefined
  /** The one stop, once started: later callers wait for the same one. */
  #stop: Promise<StopResult> | undefined
  /** Aborted by hurry(): the stop stops waiting and SIGKILLs the group. */
  readonly #hurry = new AbortController()

  private constructor(process: ChildProcess, pid: number) {
    this.process = process
    this.pid = pid
    this.#watcher = watchGroup(pid)
    this.#exited = new Promise((resolve) => {
      process.once('exit', (code, signal) => {
        this.#exit = { code, signal }
        // Leftovers of the group (workers a master did not stop) go with it, as they would
        // when a container's PID 1 ends.
        this.#signalGroup('SIGKILL')
        // The group is gone: the watcher must not outlive it and signal a group id that
        // the kernel may hand out again.
        this.#watcher?.kill('SIGKILL')
        resolve(this.#exit)
      })
    })
  }

  /**
   * Starts `command args`; rejects with ChildStartError when it cannot be run at all.
   *
   * Where util-linux's setpriv exists, the command is started through it with
   * `--pdeathsig SIGKILL`: a child in its own process group would otherwise outlive a
   * SIGKILLed lameduck (outside a container, where nothing else ends it). setpriv execs
   * the command, so the pid and the process group stay the command's.
   */
  static start(command: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<Child> {
    return new Promise((resolve, reject) => {
      const missing = missingCommand(command, env)
      if (missing !== undefined) {
        reject(missing)
        return
      }
      const setpriv = SETPRIV_PATHS.find(executable)
      const child =
        setpriv === undefined
          ? spawn(command, args, { env, detached: true, stdio: 'inherit' })
          : spawn(setpriv, ['--pdeathsig', 'SIGKILL', '--', command, ...args], {
              env,
              detached: true,
              stdio: 'inherit',
            })
      const onError = (error: NodeJS.ErrnoException) => {
        const why =
          error.code === 'ENOENT'
            ? 'command not found'
            : error.code === 'EACCES'
              ? 'permission denied (is it executable?)'
              : error.message
        reject(new ChildStartError(`cannot start '${command}': ${why}`, { cause: error }))
      }
      child.once('error', onError)
      child.once('spawn', () => {
        child.off('error', onError)
        child.on('error', () => {
          // Errors after a successful spawn (a failed kill) are reported by the callers.
        })
        resolve(new Child(child, child.pid as number))
      })
    })
  }

  /** Resolves when the child has exited (at once if it already has). */
  get exited(): Promise<ChildExit> {
    return this.#exited
  }

  /** The exit, once the child has exited. */
  get exit(): ChildExit | undefined {
    return this.#exit
  }

  /** True once stop() was called: an exit after that was asked for. */
  get stopping(): boolean {
    return this.#stopping
  }

  /** True once stop() has sent the stop signal. */
  get stopStarted(): boolean {
    return this.#stop !== undefined
  }

  /**
   * Sends `signal` to the child (its main process, as a container runtime would), waits up
   * to `timeoutMs` for it to exit, then SIGKILLs its whole process group. Called again, it
   * returns the stop already under way (its signal and its deadline stand).
   */
  stop(signal: NodeJS.Signals, timeoutMs: number): Promise<StopResult> {
    this.#stop ??= this.#runStop(signal, timeoutMs, this.#hurry.signal)
    return this.#stop
  }

  /** A forced shutdown: a stop under way (or the next one) SIGKILLs the group at once. */
  hurry(): void {
    this.#hurry.abort()
  }

  /** Sends `signal` to the child's main process, unless it has exited. */
  signal(signal: NodeJS.Signals): boolean {
    if (this.#exit !== undefined) return false
    try {
      process.kill(this.pid, signal)
      return true
    } catch {
      return false
    }
  }

  async #runStop(
    signal: NodeJS.Signals,
    timeoutMs: number,
    abort: AbortSignal,
  ): Promise<StopResult> {
    this.#stopping = true
    if (this.#exit !== undefined) return { kind: 'already-exited', exit: this.#exit }
    const started = performance.now()
    const elapsed = () => Math.round(performance.now() - started)
    try {
      process.kill(this.pid, signal)
    } catch {
      // ESRCH: it exited between the check and the kill; the exit event follows.
    }
    const inTime = await this.#waitExit(timeoutMs, abort)
    if (inTime !== undefined) return { kind: 'exited', exit: inTime, afterMs: elapsed() }
    this.#signalGroup('SIGKILL')
    const killed = await this.#waitExit(CHILD_KILL_WAIT_MS)
    return { kind: 'killed', exit: killed, afterMs: elapsed() }
  }

  /** SIGKILLs the child's process group now. */
  kill(): void {
    this.#stopping = true
    this.#signalGroup('SIGKILL')
  }

  #signalGroup(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, signal)
    } catch {
      // ESRCH: the group is empty.
    }
  }

  #waitExit(ms: number, abort?: AbortSignal): Promise<ChildExit | undefined> {
    if (this.#exit !== undefined) return Promise.resolve(this.#exit)
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        abort?.removeEventListener('abort', done)
        resolve(this.#exit)
      }
      const timer = setTimeout(done, ms)
      abort?.addEventListener('abort', done, { once: true })
      if (abort?.aborted) done()
      this.#exited.then(done)
    })
  }
}
