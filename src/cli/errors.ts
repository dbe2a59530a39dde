import { DURATION_GRAMMAR, MAX_TIMER_MS, parseDuration, parseEnvMs } from '../contract.js'

/**
 * An error the user can fix: bad arguments, unreadable input. The CLI prints its message
 * on one line (no stack trace) and exits with `exitCode` (2 unless a command says otherwise).
 */
export class CliError extends Error {
  override name = 'CliError'
  readonly exitCode: number
  constructor(message: string, options: { exitCode?: number; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.exitCode = options.exitCode ?? 2
  }
}

/** A duration flag (`--drain-delay 10s`) in milliseconds, from `min` to MAX_TIMER_MS. */
export function durationFlag(option: string, text: string, min = 0): number {
  const ms = parseDuration(text)
  if (ms === undefined || ms < min || ms > MAX_TIMER_MS) {
    throw new CliError(
      `--${option} expects ${DURATION_GRAMMAR}${min > 0 ? `, at least ${min}ms` : ''}, got '${text}'`,
    )
  }
  return ms
}

/** A whole-number flag (`--workers 4`) from `min` to `max`. */
export function integerFlag(option: string, text: string, min: number, max: number): number {
  const value = Number(text)
  if (!/^\d+$/.test(text.trim())) {
    throw new CliError(`--${option} expects a whole number from ${min} to ${max}, got '${text}'`)
  }
  if (value < min || value > max) {
    throw new CliError(`--${option} must be from ${min} to ${max}, got '${text}'`)
  }
  return value
}

/** A `LAMEDUCK_*_MS` variable in milliseconds; undefined when unset or empty. */
export function envMs(env: NodeJS.ProcessEnv, name: string, min: number): number | undefined {
  const raw = env[name]
  if (raw === undefined || raw.trim() === '') return undefined
  const ms = parseEnvMs(raw, min)
  if (ms === undefined) {
    throw new CliError(
      `the environment variable ${name} expects a whole number of milliseconds${min > 0 ? ` >= ${min}` : ''}, got '${raw}'`,
    )
  }
  return ms
}
