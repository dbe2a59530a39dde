// lameduck serve [options] -- <command> [args...]      (proxy mode)
// lameduck serve --workers N|auto [options] <app.js>   (workers mode, in serve-workers.ts)
import { constants } from 'node:os'
import { parseArgs } from 'node:util'
import {
  childStopHookMs,
  DEFAULT_CHECK_TIMEOUT_MS,
  DEFAULT_CHILD_STOP_TIMEOUT_MS,
  DEFAULT_SHUTDOWN_TIMEOUT_MS,
  ENV,
  FORCE_EXIT_MARGIN_MS,
  KUBERNETES_DRAIN_DELAY_MS,
  MIN_MS,
} from '../contract.js'
import { LameduckError } from '../errors.js'
import { jsonLogger, resolveOptions } from '../options.js'
import { runProxyMode, ServeStartError, stopBudgetMs } from '../serve/proxy-mode.js'
import { parseUpstream } from '../serve/upstream.js'
import { parseArgsMessage } from './args.js'
import { CliError, durationFlag, envMs } from './errors.js'

export const DEFAULT_PORT = 8080
export { DEFAULT_CHILD_STOP_TIMEOUT_MS }
export const DEFAULT_MAX_HEADER_SIZE = 16_384
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000
/** node's own default for receiving a whole request. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 300_000
/** Longer than the 60 s idle timeout of AWS ALB and ingress-nginx's upstream keep-alive, so
 * the load balancer, not the proxy, closes an idle connection (the side that closes first
 * is the one whose close can race a request). */
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 65_000

export const HELP = `Usage: lameduck serve [options] -- <command> [args...]
       lameduck serve --workers N|auto [options] <app.js>

Runs <command> (a service in any language) as a supervised child and stands in front of it
as an HTTP/1.1 proxy managed by lameduck: probes on /readyz /livez /startupz, and on SIGTERM
readiness 503, a lame-duck phase with Connection: close, in-flight requests completed
through the proxy, and only then the stop signal to the child. The child runs in its own
process group and gets PORT set to the upstream's port. SIGHUP and SIGUSR2 are forwarded to
the child; if lameduck is SIGKILLed, the child's process group is SIGKILLed too.

Exit code: 0 when everything stopped on its own; 1 when anything was forced (connections at
--shutdown-timeout, the child SIGKILLed after --child-stop-timeout, a second signal); the
child's status (its code, or 128 + signal) when it failed or exited on its own; 2 on bad
input. lameduck serve is gone at the latest drain-delay + shutdown-timeout +
child-stop-timeout + ${(childStopHookMs(0) + FORCE_EXIT_MARGIN_MS) / 1000}s after the signal: give terminationGracePeriodSeconds that much.
Durations: 500ms, 2s, 1m, or a bare number of seconds. Docs: docs/serve.md.

Proxy
  --port PORT                  port to listen on (default $PORT, else ${DEFAULT_PORT})
  --host HOST                  address to listen on (default: every address)
  --upstream HOST:PORT         where <command> listens (default: a free 127.0.0.1 port,
                               given to it as $PORT)
  --upstream-health PATH       ready once GET PATH on the upstream answers 200-399, and each
                               readiness probe asks again (default: a TCP connect)
Child
  --stop-signal SIG            signal that stops the child, sent once the drain is done
                               (default SIGTERM; env LAMEDUCK_STOP_SIGNAL)
  --child-stop-timeout DURATION
                               time the child gets after the stop signal before its process
                               group is SIGKILLed (default ${DEFAULT_CHILD_STOP_TIMEOUT_MS / 1000}s; env LAMEDUCK_CHILD_STOP_TIMEOUT_MS)
Shutdown (lameduck's settings; docs/options.md)
  --drain-delay DURATION       lame-duck phase (default ${KUBERNETES_DRAIN_DELAY_MS / 1000}s on Kubernetes, else 0;
                               env ${ENV.drainDelay})
  --shutdown-timeout DURATION  in-flight requests' deadline once the listener is closed
                               (default ${DEFAULT_SHUTDOWN_TIMEOUT_MS / 1000}s; env ${ENV.shutdownTimeout})
  --check-timeout DURATION     bound on each upstream health check (default ${DEFAULT_CHECK_TIMEOUT_MS / 1000}s;
                               env ${ENV.checkTimeout})
  --probe-port PORT            answer probes on this port instead (env LAMEDUCK_PROBE_PORT)
HTTP limits
  --max-header-size BYTES      request head size limit, else 431 (default ${DEFAULT_MAX_HEADER_SIZE})
  --headers-timeout DURATION   time a client gets to send a request head, else 408
                               (default ${DEFAULT_HEADERS_TIMEOUT_MS / 1000}s)
  --request-timeout DURATION   time a client gets to send a whole request (default ${DEFAULT_REQUEST_TIMEOUT_MS / 1000}s)
  --keep-alive-timeout DURATION
                               idle keep-alive connections close after this (default ${DEFAULT_KEEP_ALIVE_TIMEOUT_MS / 1000}s)
Workers (Node apps only)
  --workers N|auto             fork N node:cluster workers of <app.js> instead of proxying
Other
  --quiet                      no log lines (errors still go to stderr)
  -h, --help                   show this help
Flags win over the environment variables, which win over the defaults.

Examples
  # FastAPI under uvicorn; uvicorn reads its port from the shell here
  lameduck serve --upstream-health /health -- sh -c 'exec uvicorn main:app --port "$PORT"'
  # Flask under gunicorn (gunicorn binds to $PORT by itself)
  lameduck serve --drain-delay 10s --child-stop-timeout 5s -- gunicorn main:app
  # a fixed upstream address
  lameduck serve --port 8080 --upstream 127.0.0.1:8081 -- uvicorn main:app --port 8081
  # in a Dockerfile: exec form, and not through npx or npm, so lameduck is PID 1 and
  # receives SIGTERM itself
  CMD ["lameduck", "serve", "--upstream-health", "/health", "--", "gunicorn", "main:app"]
`

const OPTIONS = {
  port: { type: 'string' },
  host: { type: 'string' },
  upstream: { type: 'string' },
  'upstream-health': { type: 'string' },
  'stop-signal': { type: 'string' },
  'child-stop-timeout': { type: 'string' },
  'drain-delay': { type: 'string' },
  'shutdown-timeout': { type: 'string' },
  'check-timeout': { type: 'string' },
  'probe-port': { type: 'string' },
  'max-header-size': { type: 'string' },
  'headers-timeout': { type: 'string' },
  'request-timeout': { type: 'string' },
  'keep-alive-timeout': { type: 'string' },
  workers: { type: 'string' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

function parsePort(option: string, text: string, min = 1): number {
  const value = Number(text)
  if (!/^\d+$/.test(text.trim()) || value < min || value > 65_535) {
    throw new CliError(`${option} expects a port from ${min} to 65535, got '${text}'`)
  }
  return value
}

function parseSignal(option: string, text: string): NodeJS.Signals {
  const name = (text.startsWith('SIG') ? text : `SIG${text}`).toUpperCase()
  if (!(name in constants.signals) || name === 'SIGKILL' || name === 'SIGSTOP') {
    throw new CliError(
      `${option} expects a signal name such as SIGTERM, SIGINT or SIGQUIT (not SIGKILL or SIGSTOP), got '${text}'`,
    )
  }
  return name as NodeJS.Signals
}

/** Index of the first argument that is neither one of serve's options nor its value. */
function firstPositional(argv: readonly string[]): number {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string
    if (!arg.startsWith('-') || arg === '-') return i
    const name = arg.replace(/^--?/, '').split('=')[0] as string
    const spec = (OPTIONS as Record<string, { type: string }>)[name]
    if (spec?.type === 'string' && !arg.includes('=')) i++
  }
  return -1
}

/** The error for a command given without `--` before it, with the line that would work. */
function commandWithoutSeparator(argv: readonly string[], at: number): string {
  const word = argv[at] as string
  const fixed = ['lameduck serve', ...argv.slice(0, at), '--', ...argv.slice(at)].join(' ')
  const workers = /\.[cm]?js$/.test(word)
    ? `, or for a Node app on N workers: lameduck serve --workers N ${word}`
    : ''
  return `unexpected argument '${word}'; the command goes after --, as in: ${fixed}${workers}`
}

/** The proxy mode's settings from the command line and the environment. */
export function parseServeArgs(argv: string[], env: NodeJS.ProcessEnv = process.env) {
  const split = argv.indexOf('--')
  const own = split === -1 ? argv : argv.slice(0, split)
  if (split === -1) {
    // No `--`: a bare word is where the command was meant to start, and its own flags
    // (`python3 -m http.server`) are not serve's. Said before parseArgs trips on them.
    const at = firstPositional(argv)
    if (at !== -1) throw new CliError(commandWithoutSeparator(argv, at))
  }
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>
  try {
    parsed = parseArgs({ args: own, options: OPTIONS, allowPositionals: true, strict: true })
  } catch (error) {
    throw new CliError(
      parseArgsMessage(
        error,
        OPTIONS,
        'run `lameduck serve --help` for the options (the command goes after --)',
      ),
    )
  }
  const v = parsed.values
  if (v.help) return { help: true as const }
  if (v.workers !== undefined) return { help: false as const, workers: true as const }
  if (parsed.positionals.length > 0) {
    throw new CliError(
      `unexpected argument '${parsed.positionals[0]}' before --; the command goes after --, as in: lameduck serve --port 8080 -- uvicorn main:app`,
    )
  }
  const command = split === -1 ? [] : argv.slice(split + 1)
  if (command.length === 0 || command[0] === '') {
    throw new CliError(
      'expects the command to run after --, as in: lameduck serve --port 8080 -- uvicorn main:app',
    )
  }

  const port =
    v.port !== undefined
      ? parsePort('--port', v.port, 0)
      : env.PORT !== undefined && env.PORT.trim() !== ''
        ? parsePort('the environment variable PORT', env.PORT, 0)
        : DEFAULT_PORT
  let upstream: { host: string; port: number } | undefined
  if (v.upstream !== undefined) {
    const result = parseUpstream(v.upstream)
    if (typeof result === 'string') throw new CliError(`--upstream ${result}`)
    upstream = result
  }
  const health = v['upstream-health']
  if (health !== undefined && (!health.startsWith('/') || /[\s#]/.test(health))) {
    throw new CliError(
      `--upstream-health expects a path starting with '/' such as /health, got '${health}'`,
    )
  }
  const stopSignal =
    v['stop-signal'] !== undefined
      ? parseSignal('--stop-signal', v['stop-signal'])
      : env[ENV.stopSignal] !== undefined && env[ENV.stopSignal]?.trim() !== ''
        ? parseSignal(`the environment variable ${ENV.stopSignal}`, env[ENV.stopSignal] as string)
        : 'SIGTERM'
  const childStopTimeoutMs =
    v['child-stop-timeout'] !== undefined
      ? durationFlag('child-stop-timeout', v['child-stop-timeout'])
      : (envMs(env, ENV.childStopTimeout, MIN_MS.childStopTimeout) ?? DEFAULT_CHILD_STOP_TIMEOUT_MS)

  // The library's settings: a flag overrides its LAMEDUCK_* variable, which the library
  // would otherwise let win over anything given in code. The library validates the rest.
  const libraryEnv = { ...env }
  const libraryFlags = [
    ['drain-delay', 'drainDelay'],
    ['shutdown-timeout', 'shutdownTimeout'],
    ['check-timeout', 'checkTimeout'],
  ] as const
  const fromFlags: Record<string, number> = {}
  for (const [flag, option] of libraryFlags) {
    const text = v[flag]
    if (text === undefined) continue
    fromFlags[option] = durationFlag(flag, text, MIN_MS[option])
    delete libraryEnv[ENV[option]]
  }
  let probePort: number | undefined
  if (v['probe-port'] !== undefined) {
    probePort = parsePort('--probe-port', v['probe-port'], 0)
    delete libraryEnv[ENV.probePort]
  }
  let resolved: ReturnType<typeof resolveOptions>
  try {
    resolved = resolveOptions(
      { ...fromFlags, ...(probePort === undefined ? {} : { probes: { port: probePort } }) },
      libraryEnv,
    )
  } catch (error) {
    if (error instanceof LameduckError) throw new CliError(error.message)
    throw error
  }
  const maxHeaderSize =
    v['max-header-size'] === undefined ? DEFAULT_MAX_HEADER_SIZE : Number(v['max-header-size'])
  if (!Number.isInteger(maxHeaderSize) || maxHeaderSize < 1_024 || maxHeaderSize > 1_048_576) {
    throw new CliError(
      `--max-header-size expects a number of bytes from 1024 to 1048576, got '${v['max-header-size']}'`,
    )
  }
  const duration = (flag: keyof typeof v, fallback: number, min: number) => {
    const text = v[flag]
    return typeof text === 'string' ? durationFlag(flag, text, min) : fallback
  }
  return {
    help: false as const,
    workers: false as const,
    /** The environment lameduck() reads: without the variables a flag replaced. */
    libraryEnv,
    options: {
      command: command[0] as string,
      args: command.slice(1),
      port,
      host: v.host,
      upstream,
      upstreamHealth: health,
      stopSignal,
      childStopTimeoutMs,
      drainDelayMs: resolved.drainDelay,
      shutdownTimeoutMs: resolved.shutdownTimeout,
      checkTimeoutMs: resolved.checkTimeout,
      probePort: resolved.probes === false ? undefined : resolved.probes.port,
      maxHeaderSize,
      headersTimeoutMs: duration('headers-timeout', DEFAULT_HEADERS_TIMEOUT_MS, 1),
      requestTimeoutMs: duration('request-timeout', DEFAULT_REQUEST_TIMEOUT_MS, 0),
      keepAliveTimeoutMs: duration('keep-alive-timeout', DEFAULT_KEEP_ALIVE_TIMEOUT_MS, 1),
      logger: v.quiet ? (false as const) : jsonLogger,
      env: { ...env },
    },
  }
}

export async function run(argv: string[]): Promise<number> {
  // The workers mode has options of its own: hand it the whole command line.
  const own = argv.indexOf('--') === -1 ? argv : argv.slice(0, argv.indexOf('--'))
  if (own.some((arg) => arg === '--workers' || arg.startsWith('--workers='))) {
    return (await import('./serve-workers.js')).serveWorkers(argv)
  }
  const parsed = parseServeArgs(argv)
  if (parsed.help) {
    console.log(HELP)
    return 0
  }
  if (parsed.workers) return (await import('./serve-workers.js')).serveWorkers(argv)
  const { options, libraryEnv } = parsed
  // lameduck() reads process.env: hand it the environment where flags replaced variables.
  for (const name of [ENV.drainDelay, ENV.shutdownTimeout, ENV.checkTimeout, ENV.probePort]) {
    if (libraryEnv[name] === undefined) delete process.env[name]
  }
  try {
    return await runProxyMode(options)
  } catch (error) {
    if (error instanceof ServeStartError || error instanceof LameduckError) {
      throw new CliError(error.message, { cause: error })
    }
    throw error
  }
}

export { stopBudgetMs }
