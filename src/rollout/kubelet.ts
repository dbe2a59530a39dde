// The kubelet model: starts a pod's process with the environment a pod gets, probes its
// readiness, and terminates it the way the kubelet does when the pod is deleted.
//
// Termination of a deleted pod (G = grace period, P = preStop sleep):
//   1. At deletion the pod leaves the EndpointSlice at once; the Service model learns it
//      after the propagation delay. Nothing waits for that: this is the race.
//   2. The preStop sleep runs (skipped when G is 0).
//   3. SIGTERM goes to the main process only (PID 1 of the container).
//   4. SIGKILL goes to the whole process group when G - P has passed since SIGTERM, but never
//      sooner than 2 s after SIGTERM (kubelet's minimumGracePeriodInSeconds).
// Readiness probes keep running during termination, as the kubelet's do; the pod stays out of
// the EndpointSlice whatever they say.
import http from 'node:http'
import type { Clock } from './clock.js'
import type { DataPath, Endpoint } from './drivers/types.js'
import type { LabOptions } from './options.js'
import { PodProcess, type ProcessExit } from './process.js'
import type { Recorder } from './recorder.js'

/** kubelet gives a container at least this long between SIGTERM and SIGKILL. */
export const MIN_KILL_WINDOW_MS = 2_000

/** Kubernetes counts any status from 200 to 399 as a probe success. */
const PROBE_SUCCESS = (status: number) => status >= 200 && status < 400

export type PodState = 'starting' | 'ready' | 'not-ready' | 'terminating' | 'exited'

/** One pod's lifecycle, in ms since the lab started. */
export interface PodRecord {
  name: string
  /** 0 for the initial pods, then the rolling update that created it. */
  revision: number
  /** The pod's address: 127.0.0.1 in the model, its own in a network namespace. */
  host?: string
  port: number
  /** The port the readiness probe goes to, when not `port` (--probe-port-env). */
  probePort?: number
  pid: number | undefined
  startedAt: number
  readyAt?: number
  deletedAt?: number
  sigtermAt?: number
  sigkillAt?: number
  exitedAt?: number
  exit?: ProcessExit
  /** The lab stopped the pod at the end of the run (SIGKILL, not part of the measurement). */
  stoppedByLab?: boolean
}

export class Pod {
  readonly record: PodRecord
  readonly process: PodProcess
  state: PodState = 'starting'
  /** When the readiness probe last turned successful (for minReadySeconds). */
  readySince: number | undefined
  /** Why the last readiness probe failed, for error messages. */
  lastProbeFailure: string | undefined
  probes = 0
  refusedProbes = 0
  readonly exited: Promise<ProcessExit>

  constructor(record: PodRecord, process: PodProcess) {
    this.record = record
    this.process = process
    this.exited = new Promise((resolve) => {
      if (process.exit !== undefined) resolve(process.exit)
      else process.once('exit', resolve)
    })
  }

  get name(): string {
    return this.record.name
  }

  /** Ready and not terminating: it belongs in the EndpointSlice. */
  get serving(): boolean {
    return this.state === 'ready'
  }

  get terminating(): boolean {
    return this.state === 'terminating' || this.record.deletedAt !== undefined
  }
}

export interface KubeletEvents {
  /** Readiness or process state changed: the controller reconciles. */
  onChange: (pod: Pod) => void
  /** The process exited without having been deleted. */
  onUnexpectedExit: (pod: Pod, exit: ProcessExit) => void
}

export class Kubelet {
  readonly pods: Pod[] = []
  readonly #options: LabOptions
  readonly #clock: Clock
  readonly #recorder: Recorder
  readonly #dataPath: DataPath
  readonly #events: KubeletEvents
  readonly #timers = new Set<NodeJS.Timeout>()
  #closed = false

  constructor(
    options: LabOptions,
    clock: Clock,
    recorder: Recorder,
    dataPath: DataPath,
    events: KubeletEvents,
  ) {
    this.#options = options
    this.#clock = clock
    this.#recorder = recorder
    this.#dataPath = dataPath
    this.#events = events
  }

  /** Starts a pod: the data path gives it an address, then its command runs and is probed. */
  async start(name: string, revision: number): Promise<Pod> {
    const { probePortEnv } = this.#options
    const placement = await this.#dataPath.placePod(name, probePortEnv !== undefined)
    const { host, port, probePort } = placement
    if (this.#closed) {
      this.#dataPath.releasePod(name)
      throw new Error(`pod ${name} not started: the lab is stopping`)
    }
    const { command, args } = placement.wrap(
      this.#options.command[0]!,
      this.#options.command.slice(1),
    )
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      // Their presence is what tells software it runs in a pod. Nothing listens there: the lab
      // has no API server, and traffic stays on loopback.
      KUBERNETES_SERVICE_HOST: '127.0.0.1',
      KUBERNETES_SERVICE_PORT: '443',
      HOSTNAME: name,
      [this.#options.portEnv]: String(port),
      ...(probePortEnv === undefined ? {} : { [probePortEnv]: String(probePort) }),
      ...this.#options.env,
    }
    const child = new PodProcess({
      command,
      args,
      env,
      onLine: this.#options.podLogs
        ? (stream, line) =>
            process.stderr.write(`[${name}${stream === 'stderr' ? ' !' : ''}] ${line}\n`)
        : undefined,
    })
    const pod = new Pod(
      {
        name,
        revision,
        host,
        port,
        ...(probePort === undefined ? {} : { probePort }),
        pid: child.pid,
        startedAt: this.#clock.now(),
      },
      child,
    )
    this.pods.push(pod)
    this.#recorder.event('pod-created', name, `pid ${child.pid ?? '-'}, ${host}:${port}`)
    pod.exited.then((exit) => this.#onExit(pod, exit))
    if (child.exit === undefined) this.#probeLoop(pod)
    return pod
  }

  /** Deletes a pod and runs its termination; resolves when its process has exited. */
  async delete(pod: Pod): Promise<void> {
    if (pod.record.deletedAt !== undefined) return pod.exited.then(() => undefined)
    const deletedAt = this.#clock.now()
    pod.record.deletedAt = deletedAt
    const wasExited = pod.state === 'exited'
    if (!wasExited) pod.state = 'terminating'
    this.#recorder.event('pod-deleted', pod.name)
    this.#dataPath.publish(endpointOf(pod), false)
    this.#events.onChange(pod)
    if (wasExited) return

    const { gracePeriodMs, preStopSleepMs } = this.#options
    if (gracePeriodMs > 0 && preStopSleepMs > 0) {
      await Promise.race([this.#delay(preStopSleepMs), pod.exited])
    }
    if (pod.process.exit !== undefined) return
    const preStopUsed = this.#clock.now() - deletedAt
    pod.record.sigtermAt = this.#clock.now()
    this.#recorder.event('sigterm', pod.name)
    pod.process.signal('SIGTERM')
    const killAfter = Math.max(gracePeriodMs - preStopUsed, MIN_KILL_WINDOW_MS)
    const timer = this.#timer(() => {
      if (pod.process.exit !== undefined) return
      pod.record.sigkillAt = this.#clock.now()
      this.#recorder.event('sigkill', pod.name, 'grace period over')
      pod.process.signalGroup('SIGKILL')
    }, killAfter)
    await pod.exited
    clearTimeout(timer)
    this.#timers.delete(timer)
  }

  /** SIGKILLs every pod still running (end of the run); resolves when all have exited. */
  async stopAll(): Promise<void> {
    this.#closed = true
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
    const alive = this.pods.filter((pod) => pod.process.exit === undefined)
    for (const pod of alive) {
      pod.record.stoppedByLab = true
      pod.process.signalGroup('SIGKILL')
    }
    await Promise.all(alive.map((pod) => pod.exited))
  }

  #onExit(pod: Pod, exit: ProcessExit): void {
    const expected = pod.record.deletedAt !== undefined || pod.record.stoppedByLab === true
    pod.record.exitedAt = this.#clock.now()
    pod.record.exit = exit
    pod.state = 'exited'
    const how = pod.record.stoppedByLab
      ? 'stopped by the lab'
      : (exit.error ?? (exit.signal !== null ? `signal ${exit.signal}` : `code ${exit.code}`))
    this.#recorder.event('pod-exited', pod.name, how)
    this.#dataPath.releasePod(pod.name)
    this.#dataPath.publish(endpointOf(pod), false)
    if (!expected) this.#events.onUnexpectedExit(pod, exit)
    this.#events.onChange(pod)
  }

  #probeLoop(pod: Pod): void {
    // Like the kubelet's prober worker: the first probe at once, then one per period; a probe
    // never overlaps the previous one.
    let successes = 0
    let failures = 0
    const run = async () => {
      if (pod.process.exit !== undefined || pod.record.stoppedByLab) return
      const started = this.#clock.now()
      const failure = await this.#probe(pod)
      pod.probes++
      if (failure === undefined) {
        successes++
        failures = 0
      } else {
        failures++
        successes = 0
        pod.lastProbeFailure = failure
        if (failure.startsWith('connection refused')) pod.refusedProbes++
      }
      this.#applyProbe(pod, successes, failures)
      if (this.#closed || pod.process.exit !== undefined) return
      const wait = Math.max(0, started + this.#options.readinessPeriodMs - this.#clock.now())
      this.#timer(run, wait)
    }
    void run()
  }

  #applyProbe(pod: Pod, successes: number, failures: number): void {
    if (pod.process.exit !== undefined) return
    const { readinessSuccessThreshold, readinessFailureThreshold } = this.#options
    const wasReady = pod.readySince !== undefined
    if (!wasReady && successes >= readinessSuccessThreshold) {
      pod.readySince = this.#clock.now()
      pod.record.readyAt ??= pod.readySince
      if (!pod.terminating) pod.state = 'ready'
      this.#recorder.event('pod-ready', pod.name)
    } else if (wasReady && failures >= readinessFailureThreshold) {
      pod.readySince = undefined
      if (!pod.terminating) pod.state = 'not-ready'
      this.#recorder.event('pod-not-ready', pod.name, pod.lastProbeFailure)
    } else {
      return
    }
    this.#dataPath.publish(endpointOf(pod), pod.serving)
    this.#events.onChange(pod)
  }

  /** One HTTP GET probe; resolves to undefined on success, else why it failed. */
  #probe(pod: Pod): Promise<string | undefined> {
    return new Promise((resolve) => {
      const request = http.get(
        {
          host: pod.record.host ?? '127.0.0.1',
          port: pod.record.probePort ?? pod.record.port,
          path: this.#options.readinessPath,
          agent: false,
          // The kubelet's prober disables keep-alive and names itself.
          headers: { connection: 'close', 'user-agent': 'kube-probe/lameduck-lab' },
          timeout: this.#options.readinessTimeoutMs,
        },
        (response) => {
          response.resume()
          const status = response.statusCode ?? 0
          resolve(PROBE_SUCCESS(status) ? undefined : `HTTP ${status}`)
        },
      )
      request.on('timeout', () => {
        request.destroy()
        resolve(`timed out after ${this.#options.readinessTimeoutMs} ms`)
      })
      request.on('error', (error: NodeJS.ErrnoException) => {
        resolve(error.code === 'ECONNREFUSED' ? 'connection refused' : error.message)
      })
    })
  }

  #delay(ms: number): Promise<void> {
    return new Promise((resolve) => this.#timer(resolve, ms))
  }

  #timer(fn: () => void, ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      fn()
    }, ms)
    this.#timers.add(timer)
    return timer
  }
}

function endpointOf(pod: Pod): Endpoint {
  return { pod: pod.name, host: pod.record.host ?? '127.0.0.1', port: pod.record.port }
}
