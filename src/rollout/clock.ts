import { performance } from 'node:perf_hooks'

/** Milliseconds since the lab started, to 0.1 ms: the one time base of every record. */
export class Clock {
  readonly startedAt = new Date()
  readonly #origin = performance.now()

  now(): number {
    return Math.round((performance.now() - this.#origin) * 10) / 10
  }
}

/** Resolves after `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason)
      return
    }
    const onAbort = () => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
