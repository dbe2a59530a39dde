import { describeValue, LameduckError } from './errors.js'

/** A drain callback or shutdown hook. The signal aborts when the hook's time is up, so a
 * hook that can stop early (a query, a flush) should pass it on. */
export type Hook = (signal: AbortSignal) => unknown

export type HookPhase = 'drain' | 'shutdown'

/** How one hook ended. The first cause wins: a hook that throws after its timeout is a
 * timeout, and so is one that blocked the event loop past its timeout before returning.
 * `skipped`: never started, because a second signal's budget for hooks had run out. */
export type HookResult =
  | { name: string; phase: HookPhase; status: 'ok'; durationMs: number }
  | { name: string; phase: HookPhase; status: 'error'; durationMs: number; error: unknown }
  | { name: string; phase: HookPhase; status: 'timeout'; durationMs: number; timeoutMs: number }
  | { name: string; phase: HookPhase; status: 'skipped'; durationMs: 0 }

export interface RegisteredHook {
  name: string
  fn: Hook
  timeoutMs: number
}

export function validateHook(
  method: string,
  name: unknown,
  fn: unknown,
  options: unknown,
  defaultTimeout: number,
): RegisteredHook {
  if (typeof name !== 'string' || name.trim() === '') {
    throw new LameduckError(
      'LAMEDUCK_ERR_INVALID_HOOK',
      `Expected the name passed to ${method} to be a non-empty string, got ${describeValue(name)}`,
    )
  }
  if (typeof fn !== 'function') {
    throw new LameduckError(
      'LAMEDUCK_ERR_INVALID_HOOK',
      `Expected the hook '${name}' passed to ${method} to be a function, got ${describeValue(fn)}`,
    )
  }
  let timeoutMs = defaultTimeout
  if (options !== undefined) {
    const timeout = (options as { timeout?: unknown } | null)?.timeout
    if (typeof options !== 'object' || options === null) {
      throw new LameduckError(
        'LAMEDUCK_ERR_INVALID_HOOK',
        `Expected the options of hook '${name}' to be an object such as { timeout: 5000 }, got ${describeValue(options)}`,
      )
    }
    if (timeout !== undefined) {
      if (
        typeof timeout !== 'number' ||
        !Number.isInteger(timeout) ||
        timeout < 1 ||
        timeout > 2_147_483_647
      ) {
        throw new LameduckError(
          'LAMEDUCK_ERR_INVALID_HOOK',
          `Expected the \`timeout\` of hook '${name}' to be an integer >= 1 of milliseconds, got ${describeValue(timeout)}`,
        )
      }
      timeoutMs = timeout
    }
  }
  return { name, fn: fn as Hook, timeoutMs }
}

/**
 * Runs one hook bounded by its timeout. `cut`, when it resolves, ends the wait early and
 * counts as a timeout (a forced shutdown shortens every hook's budget). Never rejects.
 */
export async function runHook(
  hook: RegisteredHook,
  phase: HookPhase,
  cut?: Promise<void>,
): Promise<HookResult> {
  const started = performance.now()
  const controller = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const elapsed = () => Math.round(performance.now() - started)
  const timedOut = new Promise<'timeout'>((resolve) => {
    // Not unref'd: while a hook runs, the shutdown itself keeps the process alive, or a
    // hanging hook would let the event loop drain and the process exit 0 mid-shutdown.
    timer = setTimeout(resolve, hook.timeoutMs, 'timeout')
    cut?.then(() => resolve('timeout'))
  })
  try {
    const result = await Promise.race([
      Promise.resolve()
        .then(() => hook.fn(controller.signal))
        .then(() => 'ok' as const),
      timedOut,
    ])
    // A hook that blocks the event loop keeps its own timer from firing: judge by the clock.
    if (result === 'timeout' || performance.now() - started >= hook.timeoutMs) {
      controller.abort(new Error(`hook '${hook.name}' timed out`))
      return {
        name: hook.name,
        phase,
        status: 'timeout',
        durationMs: elapsed(),
        timeoutMs: hook.timeoutMs,
      }
    }
    return { name: hook.name, phase, status: 'ok', durationMs: elapsed() }
  } catch (error) {
    controller.abort(error)
    if (performance.now() - started >= hook.timeoutMs) {
      return {
        name: hook.name,
        phase,
        status: 'timeout',
        durationMs: elapsed(),
        timeoutMs: hook.timeoutMs,
      }
    }
    return { name: hook.name, phase, status: 'error', durationMs: elapsed(), error }
  } finally {
    clearTimeout(timer)
  }
}
