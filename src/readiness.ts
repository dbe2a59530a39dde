// What holds readiness besides the servers and ready()/notReady(): tasks the application
// is waiting on (`holdReadiness`), and the promise of the first `ready`.
import { describeValue, LameduckError } from './errors.js'

/** Tasks that keep readiness at 503 until they settle, by name. */
export class ReadinessHolds {
  /** Names of the tasks still running, one entry per task (a name may repeat). */
  readonly #running: string[] = []

  /** The names still running, each once, in the order they were first held. */
  get names(): string[] {
    return [...new Set(this.#running)]
  }

  get size(): number {
    return this.#running.length
  }

  /**
   * Holds readiness until `task` (a promise, or a list of them, which counts as settled
   * once each has) settles, fulfilled or rejected; then calls `settled` with the rejection
   * reason, if any. The task's rejection is handled here: it never becomes an unhandled
   * rejection.
   */
  add(
    name: unknown,
    task: unknown,
    settled: (name: string, failure: { error: unknown } | undefined) => void,
  ): void {
    if (typeof name !== 'string' || name.trim() === '') {
      throw new LameduckError(
        'LAMEDUCK_ERR_INVALID_OPTION',
        `Expected the name passed to holdReadiness to be a non-empty string, got ${describeValue(name)}`,
      )
    }
    const tasks = Array.isArray(task) ? task : [task]
    if (tasks.length === 0 || !tasks.every(isThenable)) {
      throw new LameduckError(
        'LAMEDUCK_ERR_INVALID_OPTION',
        `Expected the task '${name}' passed to holdReadiness to be a promise or a non-empty array of promises, got ${describeValue(task)}`,
      )
    }
    this.#running.push(name)
    void Promise.allSettled(tasks).then((results) => {
      this.#running.splice(this.#running.indexOf(name), 1)
      const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
      settled(name, rejected === undefined ? undefined : { error: rejected.reason })
    })
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  )
}

/** A promise settled from outside, for `whenFirstReady()`. Its rejection is marked handled
 * until someone asks for the promise, so a process that never calls whenFirstReady() sees
 * no unhandled rejection when it shuts down before being ready. */
export class FirstReady {
  readonly promise: Promise<void>
  #resolve!: () => void
  #reject!: (error: Error) => void

  constructor() {
    this.promise = new Promise<void>((resolve, reject) => {
      this.#resolve = resolve
      this.#reject = reject
    })
    this.promise.catch(() => {})
  }

  resolve(): void {
    this.#resolve()
  }

  reject(error: Error): void {
    this.#reject(error)
  }
}
