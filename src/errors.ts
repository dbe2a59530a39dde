/**
 * Stable codes for every failure lameduck reports. The code never changes for a given
 * failure; the message may be reworded.
 */
export type ErrorCode =
  /** An option passed to `lameduck()` is invalid. */
  | 'LAMEDUCK_ERR_INVALID_OPTION'
  /** A `LAMEDUCK_*` environment variable is invalid. */
  | 'LAMEDUCK_ERR_INVALID_ENV'
  /** What was passed as a server is not a node:http or node:https server. */
  | 'LAMEDUCK_ERR_INVALID_SERVER'
  /** A hook or check is not a function, or its name or options are invalid. */
  | 'LAMEDUCK_ERR_INVALID_HOOK'
  /** A hook was registered after shutdown had started. */
  | 'LAMEDUCK_ERR_SHUTTING_DOWN'

export class LameduckError extends Error {
  override name = 'LameduckError'
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

/** Renders a value the way an error message should echo it: `-1` (number), `'abc'` (string). */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return `'${value}' (string)`
  if (typeof value === 'function') return 'a function'
  if (value === null) return '`null`'
  if (Array.isArray(value)) return `\`${safeJson(value)}\` (array)`
  if (typeof value === 'object') return `\`${safeJson(value)}\` (object)`
  return `\`${String(value)}\` (${typeof value})`
}

function safeJson(value: unknown): string {
  try {
    const text = JSON.stringify(value)
    return text.length > 80 ? `${text.slice(0, 77)}...` : text
  } catch {
    return String(value)
  }
}
