/** When a crashed worker is restarted, and when crashes come too fast to go on. */
export interface CrashPolicy {
  /** Delay before the first restart; each crash still in the window doubles it. */
  restartDelayMs: number
  /** The delay never exceeds this. */
  restartDelayMaxMs: number
  /** This many crashes within `windowMs` is a crash loop: the primary gives up. */
  limit: number
  windowMs: number
}

export type CrashVerdict =
  | { kind: 'restart'; delayMs: number; recent: number }
  | { kind: 'loop'; recent: number }

/**
 * Counts worker crashes in a sliding window. The restart delay is exponential in the number
 * of crashes in the window, so a worker that crashes once a day restarts at once while a
 * worker that crashes at start backs off, and the count falls back as crashes age out.
 */
export class CrashTracker {
  readonly #policy: CrashPolicy
  readonly #times: number[] = []

  constructor(policy: CrashPolicy) {
    this.#policy = policy
  }

  /** Records a crash at `now` (milliseconds) and says what to do about it. */
  crash(now: number): CrashVerdict {
    const { limit, windowMs, restartDelayMs, restartDelayMaxMs } = this.#policy
    this.#times.push(now)
    while (this.#times.length > 0 && (this.#times[0] as number) <= now - windowMs)
      this.#times.shift()
    const recent = this.#times.length
    if (recent >= limit) return { kind: 'loop', recent }
    const delayMs = Math.min(restartDelayMs * 2 ** (recent - 1), restartDelayMaxMs)
    return { kind: 'restart', delayMs, recent }
  }
}
