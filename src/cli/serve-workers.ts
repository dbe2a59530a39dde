// lameduck serve --workers N|auto [options] app.js [args...]
// lameduck serve --workers N|auto [options] -- node [node flags] app.js [args...]
import { existsSync, statSync } from 'node:fs'
import { basename, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { ENV, formatDuration, MIN_MS } from '../contract.js'
import { LameduckError } from '../errors.js'
import { jsonLogger, resolveOptions } from '../options.js'
import { autoWorkers } from '../serve/workers/count.js'
import { startPrimary, type WorkersOptions } from '../serve/workers/primary.js'
import { CliError, durationFlag, integerFlag } from './errors.js'

export const WORKER_DEFAULTS = {
  reloadDrainMs: 1_000,
  readyTimeoutMs: 60_000,
  restartDelayMs: 100,
  restartDelayMaxMs: 10_000,
  crashLimit: 5,
  crashWindowMs: 30_000,
} as const
/** More workers than this is a typo, not a pod. */
const MAX_WORKERS = 1_024
const RELOAD_SIGNAL: NodeJS.Signals = 'SIGHUP'

const d = formatDuration

export const WORKERS_HELP = `Usage: lameduck serve --workers N|auto [options] app.js [args...]
       lameduck serve --workers N|auto [options] -- node [node flags] app.js [args...]

Runs a Node app as N workers (node:cluster) behind one primary that is safe as PID 1 and owns
the signals. The app calls lameduck(server) as it would alone; inside a worker it follows the
primary. Readiness is the pod's: ready when every worker is ready; on SIGTERM every worker
answers 503 at once, drains for the same drain delay and exits, and the primary exits last
with 0 only if every worker finished on its own. A second signal forces every worker.
SIGHUP reloads the workers one at a time: a new worker is ready before an old one drains.
A crashed worker is restarted with exponential backoff; a crash loop exits 1.
Durations: 500ms, 2s, 1m, or a bare number of seconds. LAMEDUCK_* variables apply as for
the library; a flag wins over the variable. Docs: docs/serve.md.

Workers
  --workers N|auto             how many workers; auto: one per CPU the container may use
                               (its cgroup CPU limit, else the machine's CPUs)
Shutdown (the library's settings, passed to every worker)
  --drain-delay DURATION       lame-duck phase (LAMEDUCK_DRAIN_DELAY_MS; default 10s on
                               Kubernetes, else 0)
  --shutdown-timeout DURATION  in-flight requests' time once listeners close
                               (LAMEDUCK_SHUTDOWN_TIMEOUT_MS; default 20s)
  --hook-timeout DURATION      each hook's default timeout (LAMEDUCK_HOOK_TIMEOUT_MS; default 5s)
  --signals LIST               signals that shut the pod down (LAMEDUCK_SIGNALS; default
                               SIGTERM,SIGINT); ${RELOAD_SIGNAL} is the reload signal
Reload (${RELOAD_SIGNAL})
  --reload-drain DURATION      lame-duck phase of a worker retired by a reload; its
                               keep-alive clients move to the other workers
                               (default ${d(WORKER_DEFAULTS.reloadDrainMs)})
  --ready-timeout DURATION     a new worker must be ready within this, or the reload stops
                               and the old workers keep serving (default ${d(WORKER_DEFAULTS.readyTimeoutMs)})
Crashes
  --restart-delay DURATION     delay before restarting a crashed worker, doubled for each
                               crash in the window (default ${d(WORKER_DEFAULTS.restartDelayMs)})
  --restart-delay-max DURATION the delay's ceiling (default ${d(WORKER_DEFAULTS.restartDelayMaxMs)})
  --crash-limit N              this many crashes within --crash-window is a crash loop: the
                               pod shuts down and exits 1 (default ${WORKER_DEFAULTS.crashLimit})
  --crash-window DURATION      (default ${d(WORKER_DEFAULTS.crashWindowMs)})
  -h, --help                   show this help

Examples
  lameduck serve --workers auto dist/server.js
  lameduck serve --workers 4 --drain-delay 10s -- node --enable-source-maps dist/server.js
  kill -HUP <primary pid>      reload every worker without failing a request
`

const OPTIONS = {
  workers: { type: 'string' },
  'drain-delay': { type: 'string' },
  'shutdown-timeout': { type: 'string' },
  'hook-timeout': { type: 'string' },
  signals: { type: 'string' },
  'reload-drain': { type: 'string' },
  'ready-timeout': { type: 'string' },
  'restart-delay': { type: 'string' },
  'restart-delay-max': { type: 'string' },
  'crash-limit': { type: 'string' },
  'crash-window': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

/** Node flags that take their value as the next argument. */
const NODE_FLAGS_WITH_VALUE = new Set([
  '-r',
  '--require',
  '--import',
  '--loader',
  '--experimental-loader',
  '-C',
  '--conditions',
  '--env-file',
  '--inspect-port',
  '--title',
  '--stack-size',
])

/** Splits argv into lameduck's own options and the app's command: the command starts at
 * the first argument that is not an option (or its value), or after `--`. */
function split(argv: string[]): { own: string[]; command: string[]; dashed: boolean } {
  const own: string[] = []
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (arg === '--') return { own, command: argv.slice(i + 1), dashed: true }
    if (!arg.startsWith('-')) return { own, command: argv.slice(i), dashed: false }
    own.push(arg)
    const name = arg.replace(/^-+/, '').split('=')[0] as string
    const spec = (OPTIONS as Record<string, { type: string }>)[name]
    if (spec?.type === 'string' && !arg.includes('=') && i + 1 < argv.length) {
      own.push(argv[++i] as string)
    }
  }
  return { own, command: [], dashed: false }
}

interface AppCommand {
  exec: string
  args: string[]
  execArgv: string[]
}

function appCommand(command: string[], dashed: boolean): AppCommand {
  let rest = command
  const execArgv: string[] = []
  if (dashed) {
    const [program, ...after] = command
    if (program === undefined) {
      throw new CliError(
        'missing the command after --; usage: lameduck serve --workers N -- node app.js',
      )
    }
    if (!/^node(\.exe)?$/.test(basename(program)) && program !== process.execPath) {
      throw new CliError(
        `--workers forks Node workers with node:cluster, so the command must be \`node [node flags] app.js\`, got '${program}'; for a service in another language use lameduck serve without --workers`,
      )
    }
    let i = 0
    while (i < after.length && (after[i] as string).startsWith('-')) {
      const flag = after[i] as string
      if (
        flag === '-e' ||
        flag === '--eval' ||
        flag === '-p' ||
        flag === '--print' ||
        flag === '-'
      ) {
        throw new CliError(`--workers runs a script file; node's ${flag} is not supported`)
      }
      execArgv.push(flag)
      if (NODE_FLAGS_WITH_VALUE.has(flag) && i + 1 < after.length)
        execArgv.push(after[++i] as string)
      i++
    }
    rest = after.slice(i)
  }
  const [script, ...args] = rest
  if (script === undefined) {
    throw new CliError(
      'missing the app to run; usage: lameduck serve --workers N|auto app.js [args...] (or -- node app.js)',
    )
  }
  const exec = resolve(script)
  if (!existsSync(exec) || !statSync(exec).isFile()) {
    throw new CliError(`cannot find the app script '${script}' (looked for ${exec})`)
  }
  return { exec, args, execArgv }
}

function workerCount(text: string | undefined): number {
  if (text === undefined) {
    throw new CliError('--workers is required: a number of workers from 1 to 1024, or auto')
  }
  if (text.trim() === 'auto') return autoWorkers()
  return integerFlag('workers', text, 1, MAX_WORKERS)
}

/** Parses the command line into the primary's options; throws CliError on bad input. */
export function parseWorkersArgs(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): { help: true } | { help: false; options: WorkersOptions } {
  const { own, command, dashed } = split(argv)
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>
  try {
    parsed = parseArgs({ args: own, options: OPTIONS, strict: true })
  } catch (error) {
    const message = (error as Error).message
    const unknown = /Unknown option '([^']+)'/.exec(message)
    throw new CliError(
      `${unknown === null ? message.split('\n')[0] : `unknown option '${unknown[1]}'`}; run \`lameduck serve --help\` for the options`,
    )
  }
  const v = parsed.values
  if (v.help) return { help: true }
  try {
    const workers = workerCount(v.workers)
    const duration = (name: keyof typeof v, fallback: number, min = 0) => {
      const text = v[name]
      return typeof text === 'string' ? durationFlag(name, text, min) : fallback
    }
    const workerEnv: NodeJS.ProcessEnv = { ...env }
    const setting = (
      flag: keyof typeof v,
      option: 'drainDelay' | 'shutdownTimeout' | 'hookTimeout',
    ) => {
      const text = v[flag]
      if (typeof text === 'string')
        workerEnv[ENV[option]] = String(durationFlag(flag, text, MIN_MS[option]))
    }
    setting('drain-delay', 'drainDelay')
    setting('shutdown-timeout', 'shutdownTimeout')
    setting('hook-timeout', 'hookTimeout')
    if (v.signals !== undefined) workerEnv[ENV.signals] = v.signals
    const resolved = resolveOptions({}, workerEnv)
    if (resolved.signals.includes(RELOAD_SIGNAL)) {
      throw new CliError(
        `${RELOAD_SIGNAL} reloads the workers, so it cannot also be a shutdown signal (--signals / LAMEDUCK_SIGNALS: ${resolved.signals.join(',')})`,
      )
    }
    // Every worker drains with exactly the primary's settings, whatever the app passes.
    workerEnv[ENV.drainDelay] = String(resolved.drainDelay)
    workerEnv[ENV.shutdownTimeout] = String(resolved.shutdownTimeout)
    workerEnv[ENV.hookTimeout] = String(resolved.hookTimeout)
    workerEnv[ENV.signals] = resolved.signals.join(',')
    const app = appCommand(command, dashed)
    const restartDelayMs = duration('restart-delay', WORKER_DEFAULTS.restartDelayMs)
    const restartDelayMaxMs = duration('restart-delay-max', WORKER_DEFAULTS.restartDelayMaxMs)
    if (restartDelayMaxMs < restartDelayMs) {
      throw new CliError(
        `--restart-delay-max (${d(restartDelayMaxMs)}) must not be below --restart-delay (${d(restartDelayMs)})`,
      )
    }
    return {
      help: false,
      options: {
        workers,
        ...app,
        env: workerEnv,
        drainDelay: resolved.drainDelay,
        shutdownTimeout: resolved.shutdownTimeout,
        hookTimeout: resolved.hookTimeout,
        signals: resolved.signals,
        reloadSignal: RELOAD_SIGNAL,
        reloadDrainDelay: duration('reload-drain', WORKER_DEFAULTS.reloadDrainMs),
        readyTimeout: duration('ready-timeout', WORKER_DEFAULTS.readyTimeoutMs, 1),
        crashes: {
          restartDelayMs,
          restartDelayMaxMs,
          limit:
            typeof v['crash-limit'] === 'string'
              ? integerFlag('crash-limit', v['crash-limit'], 1, 1_000)
              : WORKER_DEFAULTS.crashLimit,
          windowMs: duration('crash-window', WORKER_DEFAULTS.crashWindowMs, 1),
        },
        logger: jsonLogger,
      },
    }
  } catch (error) {
    if (error instanceof LameduckError) {
      throw new CliError(error.message)
    }
    throw error
  }
}

/** `lameduck serve --workers ...`: resolves to the pod's exit code. */
export async function serveWorkers(argv: string[]): Promise<number> {
  const parsed = parseWorkersArgs(argv)
  if (parsed.help) {
    process.stdout.write(WORKERS_HELP)
    return 0
  }
  return await startPrimary(parsed.options).done
}
