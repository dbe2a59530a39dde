import { Console } from 'node:console'
import { constants } from 'node:os'
import {
  DEFAULT_CHECK_TIMEOUT_MS,
  DEFAULT_HOOK_TIMEOUT_MS,
  DEFAULT_PROBE_PATHS,
  DEFAULT_SHUTDOWN_TIMEOUT_MS,
  defaultDrainDelayMs,
  ENV,
  MAX_TIMER_MS,
  MIN_MS,
  parseEnvMs,
} from './contract.js'
import { describeValue, LameduckError } from './errors.js'

export {
  DEFAULT_CHECK_TIMEOUT_MS,
  DEFAULT_HOOK_TIMEOUT_MS,
  DEFAULT_PROBE_PATHS,
  DEFAULT_SHUTDOWN_TIMEOUT_MS,
  KUBERNETES_DRAIN_DELAY_MS,
  MAX_TIMER_MS,
} from './contract.js'
export const DEFAULT_SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT']

/** Anything with `info`, `warn` and `error`: console, pino, winston, bunyan. Called as
 * `logger.info(fields, message)`, the argument order pino and bunyan use. */
export interface LoggerLike {
  info(fields: Record<string, unknown>, message: string): void
  warn(fields: Record<string, unknown>, message: string): void
  error(fields: Record<string, unknown>, message: string): void
}

/** A readiness check: passes when it returns (or resolves to) anything but `false`,
 * fails when it throws, rejects, returns `false`, or outlives `checkTimeout`. */
export type Check = () => unknown

export interface ProbeOptions {
  /** Readiness path; `false` to not serve it. @default '/readyz' */
  readiness?: string | false
  /** Liveness path; `false` to not serve it. @default '/livez' */
  liveness?: string | false
  /** Startup path; `false` to not serve it. @default '/startupz' */
  startup?: string | false
  /** Path of a Prometheus text exposition (state, in-flight requests, open connections,
   * the shutdown's phase durations and forced connections), computed when scraped; `false`
   * to not serve it. @default false */
  metrics?: string | false
  /** Serve probes on a separate server on this port instead of on each managed server.
   * Env `LAMEDUCK_PROBE_PORT`. @default undefined (probes on the managed servers) */
  port?: number
  /** Host for the separate probe server (only with `port`). @default '0.0.0.0' */
  host?: string
}

export interface LameduckOptions {
  /** Milliseconds of lame duck after the signal: readiness answers 503, the listener stays
   * open, every response carries `Connection: close`. Env `LAMEDUCK_DRAIN_DELAY_MS`.
   * @default 10000 when `KUBERNETES_SERVICE_HOST` is set, else 0 */
  drainDelay?: number
  /** Milliseconds in-flight requests get once the listener is closed; then their sockets are
   * destroyed. Env `LAMEDUCK_SHUTDOWN_TIMEOUT_MS`. @default 20000 */
  shutdownTimeout?: number
  /** Default timeout of each `onShutdown` hook and `onDrain` callback, in milliseconds.
   * Env `LAMEDUCK_HOOK_TIMEOUT_MS`. @default 5000 */
  hookTimeout?: number
  /** Signals that start the shutdown; a second one forces it. Env `LAMEDUCK_SIGNALS`
   * (comma-separated). @default ['SIGTERM', 'SIGINT'] */
  signals?: readonly string[]
  /** Call `process.exit` with the outcome's exit code when done. @default true */
  exit?: boolean
  /** Become ready as soon as every managed server listens; with `false`, call `ready()`.
   * @default true */
  autoReady?: boolean
  /** Where readiness, liveness and startup probes are answered; `false` disables them.
   * @default { readiness: '/readyz', liveness: '/livez', startup: '/startupz' } */
  probes?: ProbeOptions | false
  /** Named readiness checks, run when a readiness probe arrives. @default {} */
  checks?: Record<string, Check>
  /** Milliseconds a readiness check may take before it counts as failed.
   * Env `LAMEDUCK_CHECK_TIMEOUT_MS`. @default 1000 */
  checkTimeout?: number
  /** Where lifecycle events are logged; `false` for silence.
   * @default one JSON line per event on stderr */
  logger?: LoggerLike | false
}

export interface ResolvedProbes {
  readiness: string | false
  liveness: string | false
  startup: string | false
  metrics: string | false
  port: number | undefined
  host: string
}

export interface ResolvedOptions {
  drainDelay: number
  shutdownTimeout: number
  hookTimeout: number
  signals: readonly NodeJS.Signals[]
  exit: boolean
  autoReady: boolean
  probes: ResolvedProbes | false
  checks: ReadonlyMap<string, Check>
  checkTimeout: number
  logger: LoggerLike | false
}

const KNOWN_OPTIONS = new Set([
  'drainDelay',
  'shutdownTimeout',
  'hookTimeout',
  'signals',
  'exit',
  'autoReady',
  'probes',
  'checks',
  'checkTimeout',
  'logger',
])
const KNOWN_PROBE_OPTIONS = new Set(['readiness', 'liveness', 'startup', 'metrics', 'port', 'host'])
/** SIGKILL and SIGSTOP cannot be caught. */
const UNCATCHABLE = new Set(['SIGKILL', 'SIGSTOP'])

function invalid(option: string, expected: string, value: unknown): never {
  throw new LameduckError(
    'LAMEDUCK_ERR_INVALID_OPTION',
    `Expected the \`${option}\` option to be ${expected}, got ${describeValue(value)}`,
  )
}

/** Edit distance between two short strings (insertions, deletions, substitutions). */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1]?.toLowerCase() === b[j - 1]?.toLowerCase() ? 0 : 1
      current[j] = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + cost,
      )
    }
    previous = current
  }
  return previous[b.length] as number
}

/** Rejects an unknown option, suggesting the known one it is closest to (a typo). */
function unknownOption(option: string, key: string, known: ReadonlySet<string>, value: unknown) {
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const candidate of known) {
    const d = distance(key, candidate)
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  const hint =
    best !== undefined && bestDistance <= Math.max(2, Math.floor(key.length / 3))
      ? `did you mean \`${best}\`? `
      : ''
  throw new LameduckError(
    'LAMEDUCK_ERR_INVALID_OPTION',
    `Unknown option \`${option}\` (${describeValue(value)}): ${hint}expected one of ${[...known].join(', ')}`,
  )
}

function invalidEnv(name: string, expected: string, value: string): never {
  throw new LameduckError(
    'LAMEDUCK_ERR_INVALID_ENV',
    `Expected the environment variable ${name} to be ${expected}, got ${describeValue(value)}`,
  )
}

function milliseconds(option: string, value: unknown, min: number): number {
  const range = min === 0 ? 'a non-negative integer' : `an integer >= ${min}`
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < min ||
    value > MAX_TIMER_MS
  ) {
    invalid(option, `${range} of milliseconds (at most ${MAX_TIMER_MS})`, value)
  }
  return value
}

function envMilliseconds(name: string, raw: string, min: number): number {
  const value = parseEnvMs(raw, min)
  if (value === undefined) {
    const range = min === 0 ? 'a non-negative integer' : `an integer >= ${min}`
    invalidEnv(name, `${range} of milliseconds (at most ${MAX_TIMER_MS})`, raw)
  }
  return value
}

function signalList(values: readonly unknown[], fail: (expected: string) => never) {
  const out: NodeJS.Signals[] = []
  for (const value of values) {
    if (typeof value !== 'string' || !(value in constants.signals) || UNCATCHABLE.has(value)) {
      fail(
        `a list of catchable signal names such as 'SIGTERM' (${describeValue(value)} is not one)`,
      )
    }
    if (!out.includes(value as NodeJS.Signals)) out.push(value as NodeJS.Signals)
  }
  return out
}

function probePath(option: string, value: unknown, fallback: string | false): string | false {
  if (value === undefined) return fallback
  if (value === false) return false
  if (typeof value !== 'string' || !value.startsWith('/') || /[?#\s]/.test(value)) {
    invalid(option, "a path starting with '/' (no query, no spaces) or false", value)
  }
  return value
}

function port(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 65_535) {
    invalid(option, 'an integer port from 0 to 65535', value)
  }
  return value
}

function resolveProbes(value: unknown, env: NodeJS.ProcessEnv): ResolvedProbes | false {
  if (value === false) return false
  if (
    value !== undefined &&
    (typeof value !== 'object' || value === null || Array.isArray(value))
  ) {
    invalid('probes', 'an object such as { readiness: "/readyz", port: 9000 } or false', value)
  }
  const given = (value ?? {}) as Record<string, unknown>
  for (const key of Object.keys(given)) {
    if (!KNOWN_PROBE_OPTIONS.has(key)) {
      unknownOption(`probes.${key}`, key, KNOWN_PROBE_OPTIONS, given[key])
    }
  }
  const probes: ResolvedProbes = {
    readiness: probePath('probes.readiness', given.readiness, DEFAULT_PROBE_PATHS.readiness),
    liveness: probePath('probes.liveness', given.liveness, DEFAULT_PROBE_PATHS.liveness),
    startup: probePath('probes.startup', given.startup, DEFAULT_PROBE_PATHS.startup),
    metrics: probePath('probes.metrics', given.metrics, false),
    port: given.port === undefined ? undefined : port('probes.port', given.port),
    host: '0.0.0.0',
  }
  const envPort = env[ENV.probePort]
  if (envPort !== undefined && envPort.trim() !== '') {
    const text = envPort.trim()
    if (!/^\d+$/.test(text) || Number(text) > 65_535) {
      invalidEnv(ENV.probePort, 'an integer port from 0 to 65535', envPort)
    }
    probes.port = Number(text)
  }
  if (given.host !== undefined) {
    if (typeof given.host !== 'string' || given.host === '') {
      invalid('probes.host', 'a non-empty host name or address', given.host)
    }
    if (given.port === undefined)
      invalid('probes.host', 'set only together with probes.port', given.host)
    probes.host = given.host
  }
  const paths = [probes.readiness, probes.liveness, probes.startup, probes.metrics].filter(
    (p) => p !== false,
  )
  if (new Set(paths).size !== paths.length) {
    invalid(
      'probes',
      'an object whose readiness, liveness, startup and metrics paths differ',
      value,
    )
  }
  return probes
}

function resolveLogger(value: unknown): LoggerLike | false {
  if (value === undefined) return jsonLogger
  if (value === false) return false
  if (value instanceof Console || value === globalThis.console)
    return consoleLogger(value as Console)
  const logger = value as Record<string, unknown> | null
  if (
    typeof logger !== 'object' ||
    logger === null ||
    typeof logger.info !== 'function' ||
    typeof logger.warn !== 'function' ||
    typeof logger.error !== 'function'
  ) {
    invalid('logger', 'an object with info, warn and error methods (console, pino) or false', value)
  }
  return logger as unknown as LoggerLike
}

/**
 * Applies defaults, then the options given in code, then `LAMEDUCK_*` environment variables
 * (an operator's override wins over the code, so a Deployment can be tuned without a
 * rebuild), and validates everything. Throws a LameduckError naming the first bad value.
 */
export function resolveOptions(
  options: LameduckOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): ResolvedOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new LameduckError(
      'LAMEDUCK_ERR_INVALID_OPTION',
      `Expected the options to be an object, got ${describeValue(options)}`,
    )
  }
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.has(key)) {
      unknownOption(key, key, KNOWN_OPTIONS, (options as Record<string, unknown>)[key])
    }
  }

  // The option given in code is validated even when an environment variable overrides it:
  // a bad value in code is a bug whatever the Deployment says.
  const timing = (option: keyof typeof MIN_MS & keyof LameduckOptions, fallback: number) => {
    const min = MIN_MS[option]
    const value = options[option]
    const fromCode = value === undefined ? fallback : milliseconds(option, value, min)
    const raw = env[ENV[option]]
    return raw === undefined || raw.trim() === ''
      ? fromCode
      : envMilliseconds(ENV[option], raw, min)
  }
  const drainDelay = timing('drainDelay', defaultDrainDelayMs(env))
  const shutdownTimeout = timing('shutdownTimeout', DEFAULT_SHUTDOWN_TIMEOUT_MS)
  const hookTimeout = timing('hookTimeout', DEFAULT_HOOK_TIMEOUT_MS)
  const checkTimeout = timing('checkTimeout', DEFAULT_CHECK_TIMEOUT_MS)

  let signals: readonly NodeJS.Signals[] = DEFAULT_SIGNALS
  if (options.signals !== undefined) {
    if (!Array.isArray(options.signals)) {
      invalid('signals', "an array of signal names such as ['SIGTERM']", options.signals)
    }
    signals = signalList(options.signals, (expected) =>
      invalid('signals', expected, options.signals),
    )
  }
  const envSignals = env[ENV.signals]
  if (envSignals !== undefined && envSignals.trim() !== '') {
    signals = signalList(
      envSignals.split(',').map((s) => s.trim()),
      (expected) => invalidEnv(ENV.signals, expected, envSignals),
    )
  }

  for (const flag of ['exit', 'autoReady'] as const) {
    if (options[flag] !== undefined && typeof options[flag] !== 'boolean') {
      invalid(flag, 'a boolean', options[flag])
    }
  }

  const checks = new Map<string, Check>()
  if (options.checks !== undefined) {
    if (
      typeof options.checks !== 'object' ||
      options.checks === null ||
      Array.isArray(options.checks)
    ) {
      invalid(
        'checks',
        'an object of named functions such as { db: () => pool.query("select 1") }',
        options.checks,
      )
    }
    for (const [name, check] of Object.entries(options.checks)) {
      if (typeof check !== 'function') invalid(`checks.${name}`, 'a function', check)
      checks.set(name, check)
    }
  }

  return {
    drainDelay,
    shutdownTimeout,
    hookTimeout,
    signals,
    exit: options.exit ?? true,
    autoReady: options.autoReady ?? true,
    probes: resolveProbes(options.probes, env),
    checks,
    checkTimeout,
    logger: resolveLogger(options.logger),
  }
}

function writeJsonLine(level: string, fields: Record<string, unknown>, message: string): void {
  const line = JSON.stringify({
    time: new Date().toISOString(),
    level,
    name: 'lameduck',
    msg: message,
    ...fields,
  })
  process.stderr.write(`${line}\n`)
}

/** The default logger: one JSON line per event on stderr. */
export const jsonLogger: LoggerLike = {
  info: (fields, message) => writeJsonLine('info', fields, message),
  warn: (fields, message) => writeJsonLine('warn', fields, message),
  error: (fields, message) => writeJsonLine('error', fields, message),
}

/** `key=value` for a log field: strings as they are unless they need quotes, the rest as
 * compact JSON, so an event stays on one line. */
function field(key: string, value: unknown): string {
  const text = typeof value === 'string' && /^[^\s="]+$/.test(value) ? value : JSON.stringify(value)
  return `${key}=${text}`
}

/**
 * `logger: console` (or any node:console Console): one readable line per event, the
 * message then its fields as `key=value`, through console.info, console.warn and
 * console.error. Passing `(fields, message)` to console as they are would print the fields
 * object first, over several lines.
 */
function consoleLogger(target: Console): LoggerLike {
  const line = (fields: Record<string, unknown>, message: string) => {
    const rest = Object.entries(fields)
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => field(key, value))
    return rest.length === 0 ? message : `${message} ${rest.join(' ')}`
  }
  return {
    info: (fields, message) => target.info(line(fields, message)),
    warn: (fields, message) => target.warn(line(fields, message)),
    error: (fields, message) => target.error(line(fields, message)),
  }
}
