// One pod's process: the user's command in a process group of its own, as a container is an
// isolated set of processes. The group is what the lab kills, so nothing a pod started
// outlives the lab, whichever way the lab ends.
import { type ChildProcess, spawn } from 'node:child_process'
import { EventEmitter } from 'node:events'
import { recordGroup } from './leftovers.js'

/** Bytes of each output stream kept for error messages. */
const OUTPUT_TAIL_CHARS = 8_192

export interface ProcessExit {
  code: number | null
  signal: NodeJS.Signals | null
  /** Set when the command could not be started at all (ENOENT, EACCES). */
  error?: string
}

/** Process group ids of every pod still alive in this lab process. */
const liveGroups = new Set<number>()
let exitHookInstalled = false

/** SIGKILLs every pod process group still alive. Synchronous: safe in an 'exit' handler. */
export function killAllPodGroups(): void {
  for (const pgid of liveGroups) killGroup(pgid, 'SIGKILL')
  liveGroups.clear()
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal)
  } catch {
    // ESRCH: the group is already empty.
  }
}

export interface PodProcessOptions {
  command: string
  args: string[]
  env: NodeJS.ProcessEnv
  /** Called with each complete output line when pod logs are shown. */
  onLine?: ((stream: 'stdout' | 'stderr', line: string) => void) | undefined
}

/**
 * Emits 'exit' (ProcessExit) once. When the main process exits, every other process of its
 * group is SIGKILLed, as the container runtime does when a container's PID 1 ends.
 */
export class PodProcess extends EventEmitter {
  readonly child: ChildProcess
  readonly pid: number | undefined
  exit: ProcessExit | undefined
  #stdout = ''
  #stderr = ''

  constructor(options: PodProcessOptions) {
    super()
    if (!exitHookInstalled) {
      exitHookInstalled = true
      process.on('exit', killAllPodGroups)
    }
    // detached: setsid(), so the pod is its own process group and session; a Ctrl-C on the
    // lab's terminal reaches the lab only, and the lab decides what the pods get.
    this.child = spawn(options.command, options.args, {
      env: options.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.pid = this.child.pid
    if (this.pid !== undefined) {
      liveGroups.add(this.pid)
      recordGroup(this.pid)
    }
    this.#capture('stdout', options.onLine)
    this.#capture('stderr', options.onLine)
    this.child.once('error', (error: NodeJS.ErrnoException) => {
      if (this.pid === undefined) this.#finish({ code: null, signal: null, error: describe(error) })
    })
    this.child.once('exit', (code, signal) => this.#finish({ code, signal }))
  }

  /** The last lines the process wrote to stderr (stdout when stderr is empty). */
  outputTail(): string {
    return (this.#stderr.trim() === '' ? this.#stdout : this.#stderr).trim()
  }

  /** Sends `signal` to the main process only, as the kubelet does with SIGTERM. */
  signal(signal: NodeJS.Signals): void {
    if (this.exit !== undefined) return
    try {
      this.child.kill(signal)
    } catch {
      // Already gone; 'exit' follows.
    }
  }

  /** Sends `signal` to every process of the pod's group. */
  signalGroup(signal: NodeJS.Signals): void {
    if (this.pid !== undefined && liveGroups.has(this.pid)) killGroup(this.pid, signal)
  }

  #finish(exit: ProcessExit): void {
    if (this.exit !== undefined) return
    this.exit = exit
    if (this.pid !== undefined) {
      killGroup(this.pid, 'SIGKILL')
      liveGroups.delete(this.pid)
    }
    this.emit('exit', exit)
  }

  #capture(stream: 'stdout' | 'stderr', onLine: PodProcessOptions['onLine']): void {
    let partial = ''
    this.child[stream]?.setEncoding('utf8').on('data', (chunk: string) => {
      if (stream === 'stdout') this.#stdout = (this.#stdout + chunk).slice(-OUTPUT_TAIL_CHARS)
      else this.#stderr = (this.#stderr + chunk).slice(-OUTPUT_TAIL_CHARS)
      if (onLine === undefined) return
      const lines = (partial + chunk).split('\n')
      partial = lines.pop() ?? ''
      for (const line of lines) onLine(stream, line)
    })
  }
}

function describe(error: NodeJS.ErrnoException): string {
  if (error.code === 'ENOENT') return `command not found (${error.code})`
  if (error.code === 'EACCES') return `permission denied (${error.code})`
  return error.message
}
