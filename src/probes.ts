import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Check, LoggerLike, ResolvedProbes } from './options.js'

export type ProbeKind = 'readiness' | 'liveness' | 'startup' | 'metrics'

const SLASH = 47

/** What the probes need to know about the process. */
export interface ProbeState {
  /** True when the lifecycle is `ready`. */
  ready(): boolean
  /** True once the process has been ready at least once. */
  started(): boolean
  /** The status word readiness answers with when not ready: starting, draining, stopping... */
  status(): string
  /** Why the application called `notReady(reason)`, if it did. */
  reason(): string | undefined
  /** The `holdReadiness` tasks readiness waits for, if any. */
  waitingFor?(): string[]
}

/** How one check ended, as a probe's body shows it: `error` when it threw or rejected,
 * `false` when it returned false, `timeout` when it outlived its timeout. */
export type CheckFailure = 'error' | 'false' | 'timeout'

/** One check's result; `reason` is for the log only (an error message can carry a
 * connection string), `value` is what it returned. */
export type CheckResult =
  | { ok: true; value: unknown }
  | { ok: false; failure: CheckFailure; reason: string }

interface CheckRun {
  result: Promise<CheckResult>
  timedOut: boolean
}

/** The states in which the shutdown has started: liveness no longer runs its checks. */
const SHUTTING_DOWN = new Set(['draining', 'stopping', 'stopped'])

/**
 * Runs named readiness checks, each bounded by a timeout, with at most one run in flight
 * per check: probes that arrive while a check runs share its result. A run that timed out
 * but has not settled fails new probes at once instead of starting a second run.
 */
export class Checks {
  readonly #checks: ReadonlyMap<string, Check>
  readonly #timeoutMs: number
  readonly #logger: LoggerLike | false
  readonly #probe: 'readiness' | 'liveness'
  readonly #running = new Map<string, CheckRun>()
  readonly #lastFailure = new Map<string, string | undefined>()
  /** Completed runs per check, for tests and diagnostics. */
  readonly runs = new Map<string, number>()

  constructor(
    checks: ReadonlyMap<string, Check>,
    timeoutMs: number,
    logger: LoggerLike | false,
    probe: 'readiness' | 'liveness' = 'readiness',
  ) {
    this.#checks = checks
    this.#timeoutMs = timeoutMs
    this.#logger = logger
    this.#probe = probe
  }

  get size(): number {
    return this.#checks.size
  }

  /** Runs every check; resolves to each one's result, by name, in the order given. */
  async results(): Promise<Map<string, CheckResult>> {
    const names = [...this.#checks.keys()]
    const results = await Promise.all(names.map((name) => this.#run(name)))
    const out = new Map<string, CheckResult>()
    results.forEach((result, i) => {
      const name = names[i] as string
      this.#report(name, result.ok ? undefined : result.reason)
      out.set(name, result)
    })
    return out
  }

  /** Runs every check; resolves to the failing ones, name → short reason. */
  async failures(): Promise<Record<string, string>> {
    const failed: Record<string, string> = {}
    for (const [name, result] of await this.results()) {
      if (!result.ok) failed[name] = result.reason
    }
    return failed
  }

  #run(name: string): Promise<CheckResult> {
    const running = this.#running.get(name)
    if (running !== undefined) {
      return running.timedOut
        ? Promise.resolve({
            ok: false,
            failure: 'timeout',
            reason: `timed out after ${this.#timeoutMs} ms (still running)`,
          })
        : running.result
    }
    const check = this.#checks.get(name) as Check
    const run: CheckRun = {
      result: Promise.resolve({ ok: true, value: undefined }),
      timedOut: false,
    }
    const settled = Promise.resolve()
      .then(check)
      .then(
        (value): CheckResult =>
          value === false
            ? { ok: false, failure: 'false', reason: 'returned false' }
            : { ok: true, value },
        (error: unknown): CheckResult => ({
          ok: false,
          failure: 'error',
          reason: (error instanceof Error ? error.message : String(error)) || 'failed',
        }),
      )
      .finally(() => {
        this.#running.delete(name)
        this.runs.set(name, (this.runs.get(name) ?? 0) + 1)
      })
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<CheckResult>((resolve) => {
      timer = setTimeout(() => {
        run.timedOut = true
        resolve({ ok: false, failure: 'timeout', reason: `timed out after ${this.#timeoutMs} ms` })
      }, this.#timeoutMs)
      timer.unref()
    })
    run.result = Promise.race([settled, timeout]).finally(() => clearTimeout(timer))
    this.#running.set(name, run)
    return run.result
  }

  /** Logs a check only when its outcome changes, not on every probe. */
  #report(name: string, failure: string | undefined): void {
    const known = this.#lastFailure.has(name)
    const previous = this.#lastFailure.get(name)
    this.#lastFailure.set(name, failure)
    if (this.#logger === false || (known && (previous === undefined) === (failure === undefined)))
      return
    if (failure !== undefined) {
      this.#logger.warn(
        { event: 'check', probe: this.#probe, check: name, ok: false, reason: failure },
        `${this.#probe} check '${name}' failing: ${failure}`,
      )
    } else if (known) {
      this.#logger.info(
        { event: 'check', probe: this.#probe, check: name, ok: true },
        `${this.#probe} check '${name}' passing again`,
      )
    }
  }
}

/** Renders the metrics exposition for one scrape; `res` is the scrape's own response. In a
 * worker of `lameduck serve --workers` the answer waits on the primary (bounded). */
export type MetricsRenderer = (res: ServerResponse) => string | Promise<string>

/** Answers readiness, liveness and startup probes with small JSON bodies, and metrics. */
export class Probes {
  readonly #paths = new Map<string, ProbeKind>()
  /** 1 at the char code of each probe path's second character: a cheap first filter. */
  readonly #second = new Uint8Array(128)
  readonly #state: ProbeState
  readonly #metrics: MetricsRenderer | undefined
  readonly checks: Checks
  readonly livenessChecks: Checks | undefined
  readonly #details: boolean

  constructor(
    paths: ResolvedProbes,
    state: ProbeState,
    checks: Checks,
    metrics?: MetricsRenderer,
    livenessChecks?: Checks,
  ) {
    if (paths.readiness !== false) this.#paths.set(paths.readiness, 'readiness')
    if (paths.liveness !== false) this.#paths.set(paths.liveness, 'liveness')
    if (paths.startup !== false) this.#paths.set(paths.startup, 'startup')
    if (paths.metrics !== false && metrics !== undefined) this.#paths.set(paths.metrics, 'metrics')
    // `& 127` folds every code into the table (NaN, for a path of '/' alone, becomes 0);
    // a collision only lets a target through to the exact lookup.
    for (const path of this.#paths.keys()) this.#second[path.charCodeAt(1) & 127] = 1
    this.#state = state
    this.#metrics = metrics
    this.checks = checks
    this.livenessChecks =
      livenessChecks !== undefined && livenessChecks.size > 0 ? livenessChecks : undefined
    this.#details = paths.details
  }

  /** The probe a request target asks for, ignoring any query string. Origin form
   * (`/readyz`) and absolute form (`http://host/readyz`, which proxies send) both count.
   * On the path of every request: most targets are ruled out by their second character. */
  match(url: string | undefined): ProbeKind | undefined {
    if (url === undefined) return undefined
    if (url.charCodeAt(0) !== SLASH) return this.#matchAbsolute(url)
    if (this.#second[url.charCodeAt(1) & 127] !== 1) return undefined
    const query = url.indexOf('?')
    return this.#paths.get(query === -1 ? url : url.slice(0, query))
  }

  #matchAbsolute(url: string): ProbeKind | undefined {
    const scheme = /^https?:\/\/[^/?#]*/i.exec(url)
    if (scheme === null) return undefined
    const path = url.slice(scheme[0].length)
    return path.charCodeAt(0) === SLASH ? this.match(path) : undefined
  }

  handle(kind: ProbeKind, req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      send(res, 405, { status: 'method not allowed' })
      return
    }
    if (kind === 'metrics') {
      const text = (this.#metrics as MetricsRenderer)(res)
      if (typeof text === 'string') sendMetrics(res, text)
      else
        void text.then((pod) => {
          if (!res.writableEnded && !res.destroyed) sendMetrics(res, pod)
        })
    } else if (kind === 'liveness') {
      this.#liveness(res)
    } else if (kind === 'startup') {
      if (this.#state.started()) send(res, 200, { status: 'started' })
      else send(res, 503, { status: 'starting' })
    } else {
      this.#readiness(res)
    }
  }

  /** 200 unless a liveness check fails. Once the shutdown has started the checks no longer
   * run: the shutdown has its own deadline, and a restart then would cut what it waits for. */
  #liveness(res: ServerResponse): void {
    const checks = this.livenessChecks
    if (checks === undefined || SHUTTING_DOWN.has(this.#state.status())) {
      send(res, 200, { status: 'alive' })
      return
    }
    checks.results().then((results) => {
      const body = this.#checkBody(results)
      if (body.failed === undefined) send(res, 200, { status: 'alive', checks: body.checks })
      else send(res, 503, { status: 'failing', ...body })
    })
  }

  #readiness(res: ServerResponse): void {
    if (!this.#state.ready()) {
      const reason = this.#state.reason()
      const waitingFor = this.#state.waitingFor?.() ?? []
      const body: Record<string, unknown> = { status: this.#state.status() }
      if (reason !== undefined) body.reason = reason
      if (waitingFor.length > 0) body.waitingFor = waitingFor
      send(res, 503, body)
      return
    }
    if (this.checks.size === 0) {
      send(res, 200, { status: 'ready' })
      return
    }
    this.checks.results().then((results) => {
      // The state may have changed while the checks ran (a SIGTERM): answer with the newest.
      const body = this.#checkBody(results)
      if (!this.#state.ready()) send(res, 503, { status: this.#state.status() })
      else if (body.failed === undefined) send(res, 200, { status: 'ready', checks: body.checks })
      else send(res, 503, { status: 'failing', ...body })
    })
  }

  /** Each check's result for a probe's body: ok, or how it failed; with `probes.details`,
   * what a passing check returned. A failure's message stays in the log, since an error
   * message can carry a connection string. */
  #checkBody(results: ReadonlyMap<string, CheckResult>): {
    failed?: string[]
    checks: Record<string, Record<string, unknown>>
  } {
    const checks: Record<string, Record<string, unknown>> = {}
    const failed: string[] = []
    for (const [name, result] of results) {
      if (!result.ok) {
        failed.push(name)
        checks[name] = { ok: false, failure: result.failure }
      } else if (this.#details && result.value !== undefined && typeof result.value !== 'boolean') {
        checks[name] = { ok: true, details: jsonValue(result.value) }
      } else {
        checks[name] = { ok: true }
      }
    }
    return failed.length === 0 ? { checks } : { failed, checks }
  }
}

/** `value` as JSON would carry it, or a note when it cannot be (a cycle, a BigInt). */
function jsonValue(value: unknown): unknown {
  try {
    const text = JSON.stringify(value)
    return text === undefined ? null : JSON.parse(text)
  } catch {
    return '(not serialisable to JSON)'
  }
}

function sendMetrics(res: ServerResponse, text: string): void {
  res.writeHead(200, {
    'content-type': 'text/plain; version=0.0.4; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  })
  res.end(text)
}

/** A JSON answer, newline-terminated like any text a terminal or `curl` prints. */
function send(res: ServerResponse, statusCode: number, body: Record<string, unknown>): void {
  if (res.writableEnded || res.destroyed) return
  const text = `${JSON.stringify(body)}\n`
  res.writeHead(statusCode, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  })
  res.end(text)
}
