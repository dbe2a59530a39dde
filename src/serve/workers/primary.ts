// The primary of `lameduck serve --workers`: forks N workers with node:cluster, owns the
// signals, keeps one readiness for the pod, drains every worker together, reloads them one
// by one, restarts crashed ones with backoff, and sums every worker's metrics for a scrape.
// The worker side is src/cluster.ts.
import cluster, { type Worker } from 'node:cluster'
import {
  isProtocolMessage,
  METRICS_COLLECT_TIMEOUT_MS,
  type PodState,
  PROTOCOL,
  type ToPrimary,
  type ToWorker,
  WORKERS_ENV,
} from '../../cluster.js'
import {
  FORCE_EXIT_MARGIN_MS,
  FORCED_HOOK_BUDGET_MS,
  forceExitAfterMs,
  MAX_TIMER_MS,
} from '../../contract.js'
import { STATE_RANK, type State } from '../../lifecycle.js'
import { type Figures, longest, type PhaseDurations, type PodFigures } from '../../metrics.js'
import type { LoggerLike } from '../../options.js'
import { type CrashPolicy, CrashTracker } from './crashes.js'

export interface WorkersOptions {
  /** How many workers serve at once. */
  workers: number
  /** The application's entry script, its arguments, and node's own flags for it. */
  exec: string
  args: readonly string[]
  execArgv: readonly string[]
  /** Every worker's environment. It carries the lameduck settings (LAMEDUCK_*), so every
   * worker drains with the same drainDelay and shutdownTimeout as the primary computes. */
  env: NodeJS.ProcessEnv
  drainDelay: number
  shutdownTimeout: number
  hookTimeout: number
  /** Signals that shut the pod down; a second one forces. */
  signals: readonly NodeJS.Signals[]
  /** The signal that reloads the workers one by one. */
  reloadSignal: NodeJS.Signals
  /** The lame-duck phase of a worker retired by a reload. */
  reloadDrainDelay: number
  /** How long a replacement worker may take to become ready before the reload gives up. */
  readyTimeout: number
  crashes: CrashPolicy
  logger: LoggerLike | false
}

/** How long after it listens a worker may take to call lameduck() before a warning. */
const SILENT_WORKER_MS = 2_000

/** A worker's place in the pod. `serving` workers count towards readiness. */
type Role = 'serving' | 'replacement' | 'retiring'

interface Slot {
  worker: Worker
  role: Role
  /** The state the worker's lameduck reported; undefined until its first lameduck() call. */
  state: State | undefined
  /** What the worker was told last (re-sent when it first reports, in case it was busy
   * loading when the message arrived). */
  command: ToWorker | undefined
  /** SIGTERMed while still loading: it served nothing, so its end by that signal is clean. */
  stoppedLoading: boolean
  startedAt: number
  /** The worker's figures as it last sent them (a scrape, or its final ones at `exiting`). */
  figures: Figures | undefined
}

/** One scrape's collection of every worker's figures. */
interface Collection {
  /** The scraped worker and its request id. */
  requester: Slot
  id: number
  /** Asked, not answered yet. */
  waiting: Set<Slot>
  answers: Map<Slot, Figures>
  timer: NodeJS.Timeout | undefined
}

type Pod = 'starting' | 'ready' | 'not ready' | 'draining' | 'stopped'

export interface Primary {
  /** Resolves to the pod's exit code once every worker has exited. */
  readonly done: Promise<number>
}

/**
 * Starts the primary. Call once per process: node:cluster's settings are global.
 *
 * Shutdown, on the first signal:
 * 1. Every worker is told at once; readiness answers 503 in all of them; each runs the
 *    lameduck contract with the same drainDelay and shutdownTimeout.
 * 2. Each worker reports its own deadline; the primary SIGKILLs any worker still alive a
 *    margin past the latest one (a worker stuck in a synchronous loop cannot end itself).
 * 3. The primary exits last: 0 only if every worker exited 0 on its own.
 * A second signal is forwarded, which forces every worker.
 */
export function startPrimary(options: WorkersOptions): Primary {
  const slots = new Map<number, Slot>()
  const crashes = new CrashTracker(options.crashes)
  const log = (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, msg: string) => {
    if (options.logger !== false) options.logger[level]({ role: 'primary', ...fields }, msg)
  }
  let pod: Pod = 'starting'
  let started = false
  let shutdown: { signal: string; forced: boolean; exitCode: 0 | 1 } | undefined
  let backstop: { timer: NodeJS.Timeout; at: number } | undefined
  const restarts = new Set<NodeJS.Timeout>()
  let reloading = false
  let reloadAgain = false
  let lastPod = ''
  let resolveDone: (code: number) => void = () => {}
  const done = new Promise<number>((resolve) => {
    resolveDone = resolve
  })

  cluster.setupPrimary({
    exec: options.exec,
    args: [...options.args],
    execArgv: [...options.execArgv],
  })

  const serving = () => [...slots.values()].filter((s) => s.role === 'serving').length
  const send = (slot: Slot, message: ToWorker) => {
    if (slot.worker.isConnected()) slot.worker.send(message)
  }

  function podState(): PodState {
    const ready = [...slots.values()].filter(
      (s) => s.role === 'serving' && s.state === 'ready',
    ).length
    const reason = `${ready} of ${options.workers} workers ready`
    if (pod === 'draining' || pod === 'stopped')
      return { ready: false, started, status: 'draining', reason: undefined }
    return { ready: pod === 'ready', started, status: pod, reason }
  }

  /** Recomputes pod readiness and tells every worker when it changed. */
  function update(): void {
    if (shutdown === undefined) {
      const ready =
        [...slots.values()].filter((s) => s.role === 'serving' && s.state === 'ready').length >=
        options.workers
      const next: Pod = ready ? 'ready' : started ? 'not ready' : 'starting'
      if (next !== pod) {
        pod = next
        if (ready) started = true
        const state = podState()
        log(
          ready ? 'info' : 'warn',
          { event: 'pod', state: pod, reason: state.reason },
          `lameduck serve: pod ${pod} (${state.reason})`,
        )
      }
    }
    const state = podState()
    const key = JSON.stringify(state)
    if (key === lastPod) return
    lastPod = key
    for (const slot of slots.values()) send(slot, { lameduck: PROTOCOL, type: 'pod', pod: state })
  }

  function fork(role: Role): Slot {
    const worker = cluster.fork({ ...options.env, [WORKERS_ENV]: String(process.pid) })
    const slot: Slot = {
      worker,
      role,
      state: undefined,
      command: undefined,
      stoppedLoading: false,
      startedAt: performance.now(),
      figures: undefined,
    }
    slots.set(worker.id, slot)
    log(
      'info',
      { event: 'worker-start', worker: worker.id, pid: worker.process.pid, slot: role },
      `lameduck serve: worker ${worker.id} started (pid ${worker.process.pid}, ${role})`,
    )
    worker.on('message', (message: unknown) => {
      if (isProtocolMessage(message)) onMessage(slot, message as ToPrimary)
    })
    worker.once('listening', () => {
      // A worker that listens but never reports is an app that does not call lameduck():
      // it can never be ready, and neither can the pod. Say so once, not silently.
      setTimeout(() => {
        if (slot.state === undefined && slots.has(worker.id)) {
          log(
            'warn',
            { event: 'worker-silent', worker: worker.id, pid: worker.process.pid },
            `lameduck serve: worker ${worker.id} listens but its app has not called lameduck(server); the pod is ready only when every worker's app does`,
          )
        }
      }, SILENT_WORKER_MS).unref()
    })
    worker.on('exit', (code: number | null, signal: string | null) =>
      onExit(slot, code, signal as NodeJS.Signals | null),
    )
    // A failed send (the worker is exiting) is not an error of the pod: 'exit' follows.
    worker.on('error', () => {})
    return slot
  }

  function onMessage(slot: Slot, message: ToPrimary): void {
    if (message.type === 'exiting') {
      record(slot, message.figures)
      send(slot, { lameduck: PROTOCOL, type: 'exit' })
      return
    }
    if (message.type === 'metrics') {
      collect(slot, message.id)
      return
    }
    if (message.type === 'figures') {
      const collection = collections.get(message.id)
      record(slot, message.figures)
      if (collection === undefined || !collection.waiting.delete(slot)) return
      collection.answers.set(slot, message.figures)
      if (collection.waiting.size === 0) answer(message.id)
      return
    }
    if (message.type === 'deadline') {
      if (shutdown !== undefined) extendBackstop(message.ms)
      else if (slot.role === 'retiring') retireBackstop(slot, message.ms)
      return
    }
    const first = slot.state === undefined
    const previous = slot.state
    slot.state = message.state
    if (first) {
      send(slot, { lameduck: PROTOCOL, type: 'pod', pod: podState() })
      if (slot.command !== undefined) send(slot, slot.command)
    }
    if (message.state === 'ready' && previous !== 'ready') {
      log(
        'info',
        {
          event: 'worker-ready',
          worker: slot.worker.id,
          pid: slot.worker.process.pid,
          slot: slot.role,
          ms: Math.round(performance.now() - slot.startedAt),
        },
        `lameduck serve: worker ${slot.worker.id} ready`,
      )
    }
    slot.worker.emit('lameduck-state', message.state)
    update()
  }

  /** Tells a worker to shut down: over IPC once its lameduck() runs, else by SIGTERM (a
   * worker still loading serves nothing and has no handler yet). */
  function command(slot: Slot, message: ToWorker): void {
    slot.command = message
    if (slot.state !== undefined) send(slot, message)
    else {
      slot.stoppedLoading = true
      slot.worker.process.kill('SIGTERM')
    }
  }

  function onExit(slot: Slot, code: number | null, signal: NodeJS.Signals | null): void {
    slots.delete(slot.worker.id)
    // Its counters stay in the pod's: what it last sent (its final figures when it finished
    // its shutdown; those of the last scrape when it crashed or was killed).
    exited.closed += slot.figures?.closed ?? 0
    exited.forced += slot.figures?.forced ?? 0
    for (const [id, collection] of collections) {
      if (collection.waiting.delete(slot) && collection.waiting.size === 0) answer(id)
    }
    const id = slot.worker.id
    const fields = { worker: id, pid: slot.worker.process.pid, code, signal, slot: slot.role }
    const how = signal === null ? `code ${code}` : signal
    if (shutdown !== undefined) {
      const clean = code === 0 || (slot.stoppedLoading && signal === 'SIGTERM')
      if (!clean) shutdown.exitCode = 1
      log(
        clean ? 'info' : 'warn',
        { event: 'worker-exit', ...fields },
        `lameduck serve: worker ${id} exited (${how})`,
      )
      update()
      if (slots.size === 0) finish()
      return
    }
    if (slot.role === 'retiring') {
      clearTimeout(retireTimers.get(slot))
      log(
        code === 0 ? 'info' : 'warn',
        { event: 'worker-exit', ...fields },
        `lameduck serve: worker ${id} retired (${how})`,
      )
      slot.worker.emit('retired')
      update()
      return
    }
    if (slot.role === 'replacement') {
      // The reload waiting on it reports the failure.
      log('error', { event: 'worker-exit', ...fields }, `lameduck serve: worker ${id} (${how})`)
      update()
      return
    }
    const verdict = crashes.crash(performance.now())
    if (verdict.kind === 'loop') {
      log(
        'error',
        {
          event: 'crash-loop',
          ...fields,
          crashes: verdict.recent,
          windowMs: options.crashes.windowMs,
        },
        `lameduck serve: worker ${id} exited (${how}); ${verdict.recent} crashes within ${options.crashes.windowMs} ms: shutting the pod down, exit code 1`,
      )
      update()
      beginShutdown('crash-loop', 1)
      return
    }
    log(
      'error',
      { event: 'worker-crash', ...fields, crashes: verdict.recent, restartInMs: verdict.delayMs },
      `lameduck serve: worker ${id} exited (${how}); restarting in ${verdict.delayMs} ms`,
    )
    update()
    const timer = setTimeout(() => {
      restarts.delete(timer)
      // A reload may have filled the place meanwhile.
      if (shutdown === undefined && serving() < options.workers) fork('serving')
    }, verdict.delayMs)
    restarts.add(timer)
  }

  // Metrics. A scrape reaches one worker, which asks here; every live worker that runs
  // lameduck is asked for its figures, and the answer sums them once all have answered or
  // METRICS_COLLECT_TIMEOUT_MS has passed.
  const collections = new Map<number, Collection>()
  let nextCollection = 0
  /** Counters of the workers that have exited, so the pod's never go down. */
  const exited = { closed: 0, forced: 0 }
  /** The longest of each shutdown phase among the pod's workers since the pod's shutdown
   * began (a reload's retiring workers do not count: their drain is not the pod's). */
  let podPhases: PhaseDurations | undefined

  function record(slot: Slot, figures: Figures): void {
    slot.figures = figures
    if (shutdown !== undefined && slot.role !== 'retiring')
      podPhases = longest(podPhases, figures.phases)
  }

  function collect(requester: Slot, id: number): void {
    const key = ++nextCollection
    const collection: Collection = {
      requester,
      id,
      waiting: new Set(),
      answers: new Map(),
      timer: undefined,
    }
    collections.set(key, collection)
    for (const slot of slots.values()) {
      // A worker still loading has no lameduck to answer; it counts as starting.
      if (slot.state === undefined || !slot.worker.isConnected()) continue
      collection.waiting.add(slot)
      slot.worker.send({ lameduck: PROTOCOL, type: 'collect', id: key })
    }
    if (collection.waiting.size === 0) answer(key)
    else collection.timer = setTimeout(() => answer(key), METRICS_COLLECT_TIMEOUT_MS).unref()
  }

  function answer(key: number): void {
    const collection = collections.get(key)
    if (collection === undefined) return
    collections.delete(key)
    clearTimeout(collection.timer)
    const { requester, answers } = collection
    const pod: PodFigures = {
      state: metricsState(),
      inFlight: 0,
      open: 0,
      closed: exited.closed,
      forced: exited.forced,
      phases: shutdown === undefined ? undefined : podPhases,
      workers: { starting: 0, ready: 0, draining: 0, stopping: 0, stopped: 0 },
      unanswered: collection.waiting.size,
    }
    for (const figures of answers.values()) {
      pod.inFlight += figures.inFlight
      pod.open += figures.open
    }
    for (const slot of slots.values()) {
      // A worker that did not answer this time still has its counters as last sent.
      pod.closed += slot.figures?.closed ?? 0
      pod.forced += slot.figures?.forced ?? 0
      pod.workers[slot.state ?? 'starting']++
    }
    if (slots.has(requester.worker.id))
      send(requester, { lameduck: PROTOCOL, type: 'metrics', id: collection.id, pod })
  }

  /** The pod's state for the metrics, as readiness reports it: ready or starting (also when
   * short of ready workers) until the shutdown; then the least advanced of the workers. */
  function metricsState(): State {
    if (shutdown === undefined) return pod === 'ready' ? 'ready' : 'starting'
    let state: State = 'stopped'
    for (const slot of slots.values()) {
      if (slot.state !== undefined && STATE_RANK[slot.state] < STATE_RANK[state]) state = slot.state
    }
    return STATE_RANK[state] < STATE_RANK.draining ? 'draining' : state
  }

  const retireTimers = new Map<Slot, NodeJS.Timeout>()
  function retireBackstop(slot: Slot, ms: number): void {
    clearTimeout(retireTimers.get(slot))
    const timer = setTimeout(() => {
      log(
        'error',
        { event: 'worker-kill', worker: slot.worker.id, pid: slot.worker.process.pid },
        `lameduck serve: retiring worker ${slot.worker.id} outlived its own deadline; SIGKILL`,
      )
      slot.worker.process.kill('SIGKILL')
    }, ms + FORCE_EXIT_MARGIN_MS)
    retireTimers.set(slot, timer)
  }

  function extendBackstop(ms: number): void {
    const at = performance.now() + ms + FORCE_EXIT_MARGIN_MS
    if (backstop !== undefined && backstop.at >= at) return
    armBackstop(ms + FORCE_EXIT_MARGIN_MS)
  }

  function armBackstop(budget: number): void {
    if (backstop !== undefined) clearTimeout(backstop.timer)
    // A sum of deadlines past setTimeout's limit would fire after 1 ms.
    const ms = Math.min(budget, MAX_TIMER_MS)
    const timer = setTimeout(() => {
      if (shutdown !== undefined) shutdown.exitCode = 1
      log(
        'error',
        { event: 'force-exit', workers: [...slots.keys()] },
        `lameduck serve: ${slots.size} worker(s) still running past the deadline; SIGKILL`,
      )
      for (const slot of slots.values()) slot.worker.process.kill('SIGKILL')
    }, ms)
    backstop = { timer, at: performance.now() + ms }
  }

  function beginShutdown(signal: string, exitCode: 0 | 1): void {
    if (shutdown !== undefined) return
    shutdown = { signal, forced: false, exitCode }
    for (const timer of restarts) clearTimeout(timer)
    restarts.clear()
    const drains = started
    log(
      'info',
      { event: 'pod', state: 'draining', reason: signal, workers: slots.size },
      `lameduck serve: draining (${signal}): ${slots.size} worker(s) answer readiness 503 and drain for ${drains ? options.drainDelay : 0} ms`,
    )
    pod = 'draining'
    update()
    // Until the workers report their own deadlines, assume the pod's settings.
    armBackstop(
      forceExitAfterMs({
        drainDelayMs: drains ? options.drainDelay : 0,
        shutdownTimeoutMs: options.shutdownTimeout,
        hooksMs: options.hookTimeout,
      }) + FORCE_EXIT_MARGIN_MS,
    )
    const message: ToWorker = {
      lameduck: PROTOCOL,
      type: 'signal',
      signal: (signal.startsWith('SIG') ? signal : 'SIGTERM') as NodeJS.Signals,
    }
    for (const slot of slots.values()) {
      // A worker retiring in a reload is already shutting down; telling it again would
      // count as a second signal and force it.
      if (slot.role !== 'retiring') command(slot, message)
    }
    if (slots.size === 0) finish()
  }

  function force(signal: NodeJS.Signals): void {
    if (shutdown === undefined || shutdown.forced) return
    shutdown.forced = true
    shutdown.exitCode = 1
    log(
      'warn',
      { event: 'force', signal, workers: slots.size },
      `lameduck serve: second ${signal}: forcing ${slots.size} worker(s)`,
    )
    for (const slot of slots.values()) {
      if (slot.state === undefined) slot.worker.process.kill('SIGKILL')
      else send(slot, { lameduck: PROTOCOL, type: 'signal', signal })
    }
    armBackstop(FORCED_HOOK_BUDGET_MS + 2 * FORCE_EXIT_MARGIN_MS)
  }

  let finished = false
  function finish(): void {
    if (finished) return
    finished = true
    if (backstop !== undefined) clearTimeout(backstop.timer)
    for (const timer of retireTimers.values()) clearTimeout(timer)
    const exitCode = shutdown?.exitCode ?? 1
    pod = 'stopped'
    log(
      exitCode === 0 ? 'info' : 'warn',
      { event: 'stopped', reason: shutdown?.signal, exitCode },
      `lameduck serve: every worker exited; exit code ${exitCode}`,
    )
    resolveDone(exitCode)
  }

  /** Waits until the slot reports ready (true), or exits or times out (false). */
  function whenReady(slot: Slot): Promise<boolean> {
    return new Promise((resolve) => {
      // Unref'd: the worker itself keeps the primary alive while it starts.
      const timer = setTimeout(() => settle(false), options.readyTimeout).unref()
      const onState = (state: State) => {
        if (state === 'ready') settle(true)
      }
      const onExit = () => settle(false)
      function settle(ok: boolean) {
        clearTimeout(timer)
        slot.worker.off('lameduck-state', onState)
        slot.worker.off('exit', onExit)
        resolve(ok)
      }
      slot.worker.on('lameduck-state', onState)
      slot.worker.once('exit', onExit)
    })
  }

  /** Rolling reload: for each worker serving now, start its replacement, wait until it is
   * ready, then retire the old one and wait until it has exited. */
  async function reload(signal: NodeJS.Signals): Promise<void> {
    if (shutdown !== undefined) return
    if (reloading) {
      reloadAgain = true
      log(
        'info',
        { event: 'reload', phase: 'queued', signal },
        `lameduck serve: ${signal} during a reload: another reload follows this one`,
      )
      return
    }
    reloading = true
    const began = performance.now()
    const old = [...slots.values()].filter((s) => s.role === 'serving')
    log(
      'info',
      { event: 'reload', phase: 'start', signal, workers: old.length },
      `lameduck serve: ${signal}: reloading ${old.length} worker(s) one at a time`,
    )
    let replaced = 0
    let failure: string | undefined
    for (const previous of old) {
      if (shutdown !== undefined) break
      if (!slots.has(previous.worker.id)) continue
      const next = fork('replacement')
      const ready = await whenReady(next)
      // A shutdown during the wait has already told the replacement what to do.
      if (shutdown !== undefined) break
      if (!ready) {
        failure =
          next.worker.process.exitCode !== null || next.worker.process.signalCode !== null
            ? `worker ${next.worker.id} exited before it was ready`
            : `worker ${next.worker.id} was not ready within ${options.readyTimeout} ms`
        if (slots.has(next.worker.id)) {
          next.role = 'retiring'
          command(next, { lameduck: PROTOCOL, type: 'retire', drainDelay: 0 })
        }
        break
      }
      if (shutdown !== undefined) break
      if (!slots.has(previous.worker.id)) {
        // The old worker crashed while its replacement started: the replacement takes its
        // place, unless a restart already did.
        if (serving() < options.workers) next.role = 'serving'
        else {
          next.role = 'retiring'
          command(next, { lameduck: PROTOCOL, type: 'retire', drainDelay: 0 })
        }
        update()
        continue
      }
      next.role = 'serving'
      previous.role = 'retiring'
      update()
      const retired = new Promise<void>((resolve) => previous.worker.once('exit', () => resolve()))
      log(
        'info',
        { event: 'worker-retire', worker: previous.worker.id, replacedBy: next.worker.id },
        `lameduck serve: worker ${next.worker.id} ready; retiring worker ${previous.worker.id} (drain ${options.reloadDrainDelay} ms)`,
      )
      command(previous, {
        lameduck: PROTOCOL,
        type: 'retire',
        drainDelay: options.reloadDrainDelay,
      })
      await retired
      replaced++
    }
    const ms = Math.round(performance.now() - began)
    if (failure !== undefined) {
      log(
        'error',
        { event: 'reload', phase: 'failed', replaced, reason: failure, ms },
        `lameduck serve: reload stopped after ${replaced} worker(s): ${failure}; the others keep serving`,
      )
    } else if (shutdown === undefined) {
      log(
        'info',
        { event: 'reload', phase: 'done', replaced, ms },
        `lameduck serve: reload done: ${replaced} worker(s) replaced in ${ms} ms`,
      )
    }
    reloading = false
    if (reloadAgain && shutdown === undefined) {
      reloadAgain = false
      void reload(signal)
    }
  }

  const handlers = new Map<NodeJS.Signals, () => void>()
  for (const signal of options.signals) {
    handlers.set(signal, () => {
      if (finished) return
      if (shutdown === undefined) beginShutdown(signal, 0)
      else force(signal)
    })
  }
  handlers.set(options.reloadSignal, () => void reload(options.reloadSignal))
  // Never removed: a signal that arrives between the last worker's exit and the primary's
  // own must not end the primary by its default action (and a different exit code).
  for (const [signal, handler] of handlers) process.on(signal, handler)

  log(
    'info',
    {
      event: 'primary',
      pid: process.pid,
      workers: options.workers,
      exec: options.exec,
      drainDelayMs: options.drainDelay,
      shutdownTimeoutMs: options.shutdownTimeout,
    },
    `lameduck serve: starting ${options.workers} worker(s) of ${options.exec}`,
  )
  for (let i = 0; i < options.workers; i++) fork('serving')
  return { done }
}
