// The rollout lab: runs a command as the replicas of a Deployment behind a Service (a data
// path driver: drivers/), drives keep-alive load through it, performs rolling updates, and
// records every request.
//
// The run, in order:
//   1. Build the data path (it stops the run here, before any pod, when it cannot be built),
//      start spec.replicas pods, wait until each is ready and routed to by the Service: a real
//      rollout starts from a steady state.
//   2. Start the load; let the keep-alive pool spread over the replicas (warm-up).
//   3. Perform --rollouts rolling updates one after another, each to a new revision.
//   4. Wait until every deleted pod has exited and the Service model has every change, then a
//      short tail, so requests sent on connections to gone pods are counted too.
//   5. Stop the load; wait until every request has an outcome (each has a deadline).
//   6. Stop the remaining pods (SIGKILL of their groups; not part of the measurement).
import { ENV } from '../contract.js'
import { clientKind } from './clients/index.js'
import { Clock } from './clock.js'
import { DeploymentController } from './deployment.js'
import { createDataPath } from './drivers/index.js'
import { Ingress, type IngressSummary } from './drivers/ingress.js'
import type { DataPath } from './drivers/types.js'
import { Kubelet, type Pod } from './kubelet.js'
import { removeLeftovers } from './leftovers.js'
import { listeningPorts } from './listening.js'
import { LoadGenerator, type LoadSummary } from './load.js'
import { formatDuration, type LabOptions } from './options.js'
import type { ProcessExit } from './process.js'
import { BUCKET_MS, type LabEvent, Recorder } from './recorder.js'
import { buildResult, type LabResult, type RolloutSummary } from './result.js'

/** Load runs this long before the first rolling update, so the pool spans every replica. */
export const WARMUP_MS = 1_000
/** Load goes on this long after the last deleted pod exited. */
export const TAIL_MS = 500
/** Lines of a pod's output quoted in an error. */
const OUTPUT_LINES_QUOTED = 8

export type LabPhase = 'starting' | 'warm-up' | 'rolling' | 'draining' | 'finishing' | 'done'

/** The run could not be carried out: it says why, in one sentence and the pod's output. */
export class LabError extends Error {
  override name = 'LabError'
  /** What was measured before the failure, when the load had started. */
  partial: LabResult | undefined
}

/** The lab was interrupted (SIGINT / SIGTERM to the lab). */
export class LabAborted extends Error {
  override name = 'LabAborted'
  /** What was measured until the interruption, when the load had started. */
  partial: LabResult | undefined
}

/** What a progress display needs, read on every tick. */
export interface LabStatus {
  t: number
  phase: LabPhase
  rollout: number
  rollouts: number
  readyPods: number
  terminatingPods: number
  endpoints: number
  sent: number
  inFlight: number
  failed: number
}

export interface LabObserver {
  onEvent?: (event: LabEvent) => void
  onTick?: (status: LabStatus) => void
}

export async function runLab(
  options: LabOptions,
  observer: LabObserver = {},
  signal?: AbortSignal,
): Promise<LabResult> {
  const clock = new Clock()
  const recorder = new Recorder(clock)
  if (observer.onEvent !== undefined) recorder.on('event', observer.onEvent)
  const service: DataPath = createDataPath(options, clock, recorder)
  let address: { host: string; port: number }
  let notes: string[]
  const leftovers = removeLeftovers()
  try {
    const { notes: said = [], ...where } = await service.start()
    address = where
    notes = leftovers === undefined ? said : [leftovers, ...said]
  } catch (error) {
    await service.close()
    if (service instanceof Ingress) service.dispose()
    throw new LabError((error as Error).message)
  }
  const drain = drainWarning(options, process.env)

  let phase: LabPhase = 'starting'
  let failure: Error | undefined
  const waiters = new Set<() => void>()
  const wake = () => {
    for (const waiter of waiters) waiter()
  }
  const fail = (error: Error) => {
    failure ??= error
    wake()
  }
  const onAbort = () => fail(new LabAborted('interrupted'))
  signal?.addEventListener('abort', onAbort, { once: true })
  if (signal?.aborted) onAbort()

  let load: LoadGenerator | undefined
  const kubelet = new Kubelet(options, clock, recorder, service, {
    onChange: (pod) => {
      if (pod.readySince !== undefined) controller.noteAvailable(pod)
      controller.reconcile()
      wake()
    },
    onUnexpectedExit: (pod, exit) =>
      fail(
        new LabError(unexpectedExit(pod, exit, options.command[0]!, clock.now(), options.portEnv)),
      ),
  })
  const controller = new DeploymentController(options, clock, kubelet, fail)
  const rollouts: RolloutSummary[] = []
  const warnings: string[] = []
  recorder.on('event', (event: LabEvent) => {
    if (event.type === 'warning' && event.detail !== undefined) warnings.push(event.detail)
  })
  if (drain !== undefined) recorder.event('warning', undefined, drain)
  for (const note of notes) recorder.event('warning', undefined, note)
  for (const note of options.from?.notes ?? []) {
    recorder.event('warning', undefined, `--from ${options.from?.file}: ${note}`)
  }

  const status = (): LabStatus => ({
    t: clock.now(),
    phase,
    rollout: controller.revision,
    rollouts: options.rollouts,
    readyPods: kubelet.pods.filter((pod) => pod.serving).length,
    terminatingPods: kubelet.pods.filter((pod) => pod.state === 'terminating').length,
    endpoints: service.endpoints().length,
    sent: load?.sent ?? 0,
    inFlight: load?.inFlight ?? 0,
    failed: recorder.failed(),
  })
  // The sampler doubles as the lab's heartbeat: it keeps the event loop alive, re-runs the
  // level-triggered controller and enforces the deadlines.
  const sampler = setInterval(() => {
    const now = status()
    const routed = service
      .endpoints()
      .map((endpoint) => kubelet.pods.find((pod) => pod.name === endpoint.pod))
    recorder.sample({
      inFlight: now.inFlight,
      endpoints: now.endpoints,
      endpointsTerminating: routed.filter((pod) => pod?.state === 'terminating').length,
      endpointsGone: routed.filter((pod) => pod === undefined || pod.state === 'exited').length,
      readyPods: now.readyPods,
      runningPods: kubelet.pods.filter((pod) => pod.state !== 'exited').length,
    })
    controller.reconcile()
    service.prune()
    checkDeadlines()
    observer.onTick?.(now)
    wake()
  }, BUCKET_MS)

  const checkDeadlines = () => {
    const now = clock.now()
    if (now > options.maxDurationMs) {
      fail(
        new LabError(
          `the run lasted longer than ${formatDuration(options.maxDurationMs)} (--max-duration) in phase ${phase}`,
        ),
      )
    }
    if (phase === 'starting' && now > options.progressDeadlineMs) {
      fail(new LabError(notReady(kubelet.pods, options, 'the initial pods')))
    }
    if (phase === 'rolling' && now - controller.lastProgressAt > options.progressDeadlineMs) {
      const pods = kubelet.pods.filter(
        (pod) => pod.record.revision === controller.revision && !pod.terminating,
      )
      fail(new LabError(notReady(pods, options, `rolling update ${controller.revision}`)))
    }
  }

  /** Resolves when `predicate` holds; rejects with the run's failure. */
  const until = (predicate: () => boolean) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (failure !== undefined) {
          waiters.delete(check)
          reject(failure)
        } else if (predicate()) {
          waiters.delete(check)
          resolve()
        }
      }
      waiters.add(check)
      check()
    })
  const pause = async (ms: number) => {
    const deadline = clock.now() + ms
    await until(() => clock.now() >= deadline)
  }

  let loadSummary: LoadSummary | undefined
  let ingress: IngressSummary | undefined
  /** With an ingress, requests are traced to pods from its log once the load has stopped. */
  const annotate = () =>
    service instanceof Ingress ? service.annotate(recorder.requests) : undefined
  try {
    controller.createInitial()
    await until(
      () =>
        controller.active().length === options.replicas &&
        controller.active().every((pod) => pod.serving && service.routesTo(pod.name)),
    )
    // A client kind in another language whose toolchain is missing is skipped, saying so.
    const clients: typeof options.clients = []
    for (const weighted of options.clients) {
      try {
        await clientKind(weighted.kind)?.prepare?.()
        clients.push(weighted)
      } catch (error) {
        recorder.event(
          'warning',
          undefined,
          `--client ${weighted.kind} skipped: ${(error as Error).message}`,
        )
      }
    }
    if (clients.length === 0) {
      throw new LabError(`no client kind can run here: ${warnings.join('; ')}`)
    }
    // A client kind whose protocol the service does not speak would fail every request:
    // say so once, before the load and the rolling updates.
    for (const { kind: name } of clients) {
      const kind = clientKind(name)
      if (kind?.preflight === undefined) continue
      try {
        await kind.preflight({ ...address, wsPath: options.wsPath })
      } catch (error) {
        throw new LabError(`--client ${name}: ${(error as Error).message}`)
      }
    }
    load = new LoadGenerator({
      host: address.host,
      port: address.port,
      userland: service.kind === 'model' && !(service instanceof Ingress),
      rate: options.rate,
      connections: options.connections,
      pools: options.pools,
      paths: options.paths,
      clients,
      wsPath: options.wsPath,
      timeoutMs: options.timeoutMs,
      maxRequests: options.maxRequests,
      clock,
      recorder,
      service,
    })
    await load.ready()
    load.start()
    phase = 'warm-up'
    await pause(WARMUP_MS)

    phase = 'rolling'
    for (let index = 1; index <= options.rollouts; index++) {
      const rollout: RolloutSummary = { index, startedAt: clock.now() }
      rollouts.push(rollout)
      recorder.event('rollout-started', undefined, `${index}/${options.rollouts}`)
      controller.startRollout()
      await until(() => controller.complete())
      rollout.completedAt = clock.now()
      recorder.event('rollout-complete', undefined, `${index}/${options.rollouts}`)
    }

    phase = 'draining'
    await until(
      () =>
        service.settled() &&
        kubelet.pods.every((pod) => pod.record.deletedAt === undefined || pod.state === 'exited'),
    )
    await pause(TAIL_MS)
    phase = 'finishing'
    loadSummary = await load.stop()
    ingress = annotate()
    if (recorder.undelivered.length > 0) {
      recorder.event(
        'warning',
        undefined,
        `${recorder.undelivered.length} requests never reached the Service model before their deadline: the lab's own process was too busy to accept their connections. They are left out of the counts and the run is inconclusive; lower --rate or use a less busy machine`,
      )
    }
    if (loadSummary.behind) {
      recorder.event(
        'warning',
        undefined,
        `the load generator fell behind: ${loadSummary.achievedRate} req/s achieved of ${loadSummary.targetRate}, issued up to ${loadSummary.maxLagMs} ms late; the machine may be too busy for this rate`,
      )
    }
  } catch (error) {
    if (error instanceof LabError && load !== undefined) {
      // Report what was measured up to the failure.
      controller.halt()
      loadSummary = await load.stop()
      await kubelet.stopAll()
      ingress = annotate()
      error.partial = result(error.message)
    } else if (error instanceof LabAborted && load !== undefined) {
      // Interrupted: report at once what has an outcome; requests still in flight are left
      // out rather than counted as failures the lab itself caused.
      controller.halt()
      load.abort()
      loadSummary = load.summary()
      await kubelet.stopAll()
      ingress = annotate()
      error.partial = result(undefined, true)
    }
    throw error
  } finally {
    signal?.removeEventListener('abort', onAbort)
    clearInterval(sampler)
    controller.halt()
    load?.abort()
    await kubelet.stopAll()
    await service.close()
    if (service instanceof Ingress) service.dispose()
    phase = 'done'
  }
  return result(undefined)

  function result(error: string | undefined, interrupted = false): LabResult {
    return buildResult({
      interrupted,
      options,
      recorder,
      pods: kubelet.pods.map((pod) => pod.record),
      dataPath: service.describe(),
      ...(ingress === undefined ? {} : { ingress }),
      connectionsPerPod: service.connectionsPerPod,
      load: loadSummary,
      rollouts,
      warnings,
      error,
    })
  }
}

function quote(output: string): string {
  const lines = output.split('\n').filter((line) => line.trim() !== '')
  if (lines.length === 0) return 'it wrote nothing to stderr or stdout'
  return `its output ends with:\n${lines
    .slice(-OUTPUT_LINES_QUOTED)
    .map((line) => `  | ${line}`)
    .join('\n')}`
}

/** The first line of an error report: Node's `Error: ...` / `TypeError [CODE]: ...`, Python's last `...Error: ...`. */
const ERROR_LINE = /^\s*(?:[A-Za-z_.]*(?:Error|Exception))(?: \[[A-Z0-9_]+\])?: .+$/m

/** The line of a pod's output that says what went wrong, when one does. */
export function errorLine(output: string): string | undefined {
  return ERROR_LINE.exec(output)?.[0].trim()
}

function unexpectedExit(
  pod: Pod,
  exit: ProcessExit,
  command: string,
  now: number,
  portEnv: string,
): string {
  if (exit.error !== undefined) return `cannot run '${command}' (pod ${pod.name}): ${exit.error}`
  const how =
    exit.signal !== null ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`
  const when =
    pod.record.readyAt === undefined
      ? `before it was ready (${((now - pod.record.startedAt) / 1_000).toFixed(1)} s after start)`
      : 'while running, without being deleted (the lab does not restart containers)'
  const output = pod.process.outputTail()
  const line = errorLine(output)
  const hint = /EADDRINUSE/.test(output)
    ? ` Several pods listened on the same port: does the command ignore $${portEnv} (${pod.record.port} for this pod)?`
    : ''
  return `pod ${pod.name} ${how} ${when}${line === undefined ? '' : `: ${line}.`}${hint}; ${quote(output)}`
}

function notReady(pods: Pod[], options: LabOptions, what: string): string {
  const stuck = pods.find((pod) => !pod.serving) ?? pods[0]
  const head = `${what} made no progress within ${formatDuration(options.progressDeadlineMs)} (--progress-deadline)`
  if (stuck === undefined) return `${head}`
  const port =
    stuck.record.probePort === undefined
      ? `${stuck.record.port} (${options.portEnv}=${stuck.record.port})`
      : `${stuck.record.probePort} (${options.probePortEnv}=${stuck.record.probePort})`
  let why: string
  if (stuck.probes === 0) {
    why = 'no readiness probe completed'
  } else if (stuck.refusedProbes === stuck.probes) {
    const elsewhere = stuck.record.pid === undefined ? [] : listeningPorts(stuck.record.pid)
    why =
      elsewhere.length > 0
        ? `it listens on port ${elsewhere.join(', ')} instead of its port ${port}: all ${stuck.probes} readiness probes were refused. The command ignores $${options.portEnv}: read the port from it (or pass --port-env with the variable the command reads)`
        : `nothing ever listened on its port ${port}: all ${stuck.probes} readiness probes were refused. Does the command listen on the port given in $${options.portEnv}?`
  } else {
    why = `its readiness probe GET ${options.readinessPath} on port ${port} still fails: ${stuck.lastProbeFailure}`
  }
  return `${head}: pod ${stuck.name} is not ready; ${why}`
}

/** The drain settings of the lameduck runtime a pod would read from its environment. */
const DRAIN_ENV = ENV.drainDelay

/**
 * A warning when the drain delay visible in the pods' environment (with the preStop sleep)
 * is shorter than the propagation delay plus its jitter: such pods stop listening while the
 * Service may still route to them.
 */
export function drainWarning(options: LabOptions, env: NodeJS.ProcessEnv): string | undefined {
  const text = options.env[DRAIN_ENV] ?? env[DRAIN_ENV]
  if (text === undefined || !/^\d+$/.test(text.trim())) return undefined
  const drainMs = Number(text)
  const worst = options.propagationDelayMs + options.propagationJitterMs
  if (options.preStopSleepMs + drainMs >= worst) return undefined
  const preStop =
    options.preStopSleepMs > 0
      ? ` plus the preStop sleep (${formatDuration(options.preStopSleepMs)})`
      : ''
  return `${DRAIN_ENV}=${drainMs}${preStop} is shorter than the propagation delay plus its jitter (${formatDuration(options.propagationDelayMs)} + ${formatDuration(options.propagationJitterMs)}): pods will close their listener while the Service may still route new connections to them; raise it above ${formatDuration(worst)}`
}
