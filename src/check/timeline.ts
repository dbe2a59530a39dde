// The termination timeline of one container: what happens between the pod's deletion and
// SIGKILL, in seconds, from the manifest and lameduck's settings.
//
//   0 ── preStop ──► SIGTERM ── drain ──► close ──► hooks ──► exit ... margin ... G: SIGKILL
//
// The kubelet runs the preStop hook first and sends SIGTERM when it returns; the grace
// period G counts from deletion and includes the hook. lameduck then keeps serving for
// drainDelay (readiness 503, `Connection: close`), closes the listener and waits up to
// shutdownTimeout for in-flight requests, runs onShutdown hooks (hookTimeout each), and
// exits. Under `lameduck serve` (proxy mode) the hooks give way to the child's stop time:
// once the proxy has drained, the child gets the stop signal and up to child-stop-timeout
// before it is SIGKILLed. The margin covers process start-up of the force-exit timer, logging and the
// kubelet's own latency.

import {
  DEFAULT_CHILD_STOP_TIMEOUT_MS,
  DEFAULT_HOOK_TIMEOUT_MS,
  DEFAULT_SHUTDOWN_TIMEOUT_MS,
  ENV,
  KUBERNETES_DRAIN_DELAY_MS,
  MAX_TIMER_MS,
  MIN_MS,
  parseDuration,
  parseEnvMs,
  shutdownPhasesMs,
} from '../contract.js'
import type { LameduckUse } from './adoption.js'
import { preStopSleep } from './commands.js'
import { imageInfo } from './images.js'
import type { Path } from './load.js'
import {
  type ConfigMap,
  type Container,
  get,
  integer,
  list,
  type Model,
  record,
  sameNamespace,
  text,
  type Workload,
} from './model.js'

/** Kubernetes' default terminationGracePeriodSeconds. */
export const DEFAULT_GRACE_SECONDS = 30
/** lameduck's drainDelay when KUBERNETES_SERVICE_HOST is set, as it is in every pod. */
export const DEFAULT_DRAIN_DELAY_MS = KUBERNETES_DRAIN_DELAY_MS
export { DEFAULT_CHILD_STOP_TIMEOUT_MS, DEFAULT_HOOK_TIMEOUT_MS, DEFAULT_SHUTDOWN_TIMEOUT_MS }
/** Slack between lameduck's own deadlines and SIGKILL: the force-exit margin, the time
 * `lameduck serve` takes to SIGKILL and reap its child, logging and the kubelet's own latency. */
export const SAFETY_MARGIN_SECONDS = 5

export const TIMING_ENV: readonly string[] = [
  ENV.drainDelay,
  ENV.shutdownTimeout,
  ENV.hookTimeout,
  ENV.childStopTimeout,
]

/** `none`: the container does not run lameduck, so the setting does not apply (0). */
export type SettingSource = 'flag' | 'env' | 'configmap' | 'default' | 'none'

/** One lameduck timing as the container will see it. */
export interface Setting {
  variable: string
  /** The `lameduck serve` flag that sets it (`--drain-delay`), when one is written. */
  flag?: string
  ms: number
  seconds: number
  source: SettingSource
  /** The env entry (relative to the object) that sets it, when there is one. */
  path: Path | undefined
  /** What is written, when it is a value lameduck rejects (the default is shown instead). */
  invalid: string | undefined
  /** Where the value comes from when the checker cannot read it (the default is shown instead). */
  unknown: string | undefined
}

export type PreStopKind = 'none' | 'sleep' | 'exec-sleep' | 'exec' | 'httpGet' | 'tcpSocket'

export interface PreStop {
  kind: PreStopKind
  /** Seconds counted on the timeline; 0 when not known. */
  seconds: number
  /** False for httpGet and for exec commands without a recognisable sleep. */
  known: boolean
  /** The exec command does more than sleep: `seconds` is a lower bound. */
  atLeast: boolean
  /** The exec sleep goes through `sh -c`. */
  viaShell: boolean
  /** Path of the handler (`…lifecycle.preStop`) relative to the object. */
  path: Path
}

/** The app's own drain, for programs the image table knows (CoreDNS's `lameduck`). */
export interface SelfDrain {
  seconds: number
  /** Where the checker read it. */
  where: string
}

export interface Timeline {
  workload: Workload
  container: Container
  /**
   * Why the container counts as a lameduck app; undefined for any other app, whose own
   * shutdown time the checker cannot know (drain, shutdown and hooks are then 0, `none`).
   */
  lameduck: LameduckUse | undefined
  /**
   * The grace period; `invalid` when the field is written but is not an integer (the
   * invalid-field rule reports it and the grace rules stay silent).
   */
  grace: { seconds: number; written: boolean; invalid: boolean; path: Path }
  preStop: PreStop
  /** A drain the program does on its own after SIGTERM (see images.ts). */
  selfDrain: SelfDrain | undefined
  drain: Setting
  shutdown: Setting
  hooks: Setting
  /** `lameduck serve` in proxy mode: the child's stop time (hooks are then 0, `none`). */
  childStop: Setting | undefined
  marginSeconds: number
  /** preStop + self drain + drain + shutdown + hooks + child stop + margin. */
  totalSeconds: number
  /** Assumptions the reader should know about. */
  notes: string[]
}

/** A `lameduck serve` duration in milliseconds, or undefined when serve rejects it. */
export function parseServeDuration(raw: string, min: number): number | undefined {
  const ms = parseDuration(raw)
  return ms !== undefined && ms >= min && ms <= MAX_TIMER_MS ? ms : undefined
}

function findConfigMap(model: Model, workload: Workload, name: string): ConfigMap | undefined {
  return model.configMapsByName.get(name)?.find((map) => sameNamespace(map, workload))
}

/**
 * The value of `variable` in the container, as the kubelet assembles it: `env` entries win
 * over `envFrom`, a later entry over an earlier one.
 */
function readSetting(
  model: Model,
  workload: Workload,
  container: Container,
  variable: string,
  fallbackMs: number,
  min: number,
  notes: string[],
): Setting {
  const setting = (ms: number, source: SettingSource, extra: Partial<Setting> = {}): Setting => ({
    variable,
    ms,
    seconds: ms / 1000,
    source,
    path: undefined,
    invalid: undefined,
    unknown: undefined,
    ...extra,
  })
  const fromText = (raw: string, source: SettingSource, path: Path | undefined): Setting => {
    if (raw.trim() === '') return setting(fallbackMs, 'default', { path })
    const ms = parseEnvMs(raw, min)
    return ms === undefined
      ? setting(fallbackMs, 'default', { path, invalid: raw })
      : setting(ms, source, { path })
  }
  const env = list(container.spec['env'])
  for (let i = env.length - 1; i >= 0; i--) {
    const entry = record(env[i])
    if (entry === undefined || entry['name'] !== variable) continue
    const path: Path = [...container.path, 'env', i]
    const value = entry['value']
    if (typeof value === 'string') return fromText(value, 'env', [...path, 'value'])
    if (typeof value === 'number') return fromText(String(value), 'env', [...path, 'value'])
    const from = record(entry['valueFrom'])
    if (from === undefined) return setting(fallbackMs, 'default', { path })
    const ref = record(from['configMapKeyRef'])
    if (ref !== undefined) {
      const mapName = text(ref['name']) ?? ''
      const key = text(ref['key']) ?? ''
      const data = findConfigMap(model, workload, mapName)?.data[key]
      if (data !== undefined) return fromText(data, 'configmap', [...path, 'valueFrom'])
      return setting(fallbackMs, 'default', {
        path: [...path, 'valueFrom'],
        unknown: `ConfigMap ${mapName} key ${key}, which is not in the input`,
      })
    }
    const secret = record(from['secretKeyRef'])
    const source =
      secret !== undefined
        ? `Secret ${text(secret['name']) ?? ''} key ${text(secret['key']) ?? ''}`
        : from['fieldRef'] !== undefined
          ? 'a fieldRef'
          : from['resourceFieldRef'] !== undefined
            ? 'a resourceFieldRef'
            : 'a valueFrom'
    return setting(fallbackMs, 'default', { path: [...path, 'valueFrom'], unknown: source })
  }
  const envFrom = list(container.spec['envFrom'])
  for (let i = envFrom.length - 1; i >= 0; i--) {
    const entry = record(envFrom[i])
    if (entry === undefined) continue
    const prefix = text(entry['prefix']) ?? ''
    if (!variable.startsWith(prefix)) continue
    const key = variable.slice(prefix.length)
    const ref = record(entry['configMapRef'])
    if (ref === undefined) continue
    const map = findConfigMap(model, workload, text(ref['name']) ?? '')
    const data = map?.data[key]
    if (data !== undefined) return fromText(data, 'configmap', [...container.path, 'envFrom', i])
  }
  for (const entry of envFrom) {
    const ref = record(get(entry, ['configMapRef'])) ?? record(get(entry, ['secretRef']))
    const kind = get(entry, ['configMapRef']) !== undefined ? 'ConfigMap' : 'Secret'
    const name = text(ref?.['name']) ?? ''
    if (kind === 'ConfigMap' && findConfigMap(model, workload, name) !== undefined) continue
    const note = `envFrom ${kind} ${name} is not in the input; LAMEDUCK_* settings in it are not seen`
    if (!notes.includes(note)) notes.push(note)
  }
  return setting(fallbackMs, 'default')
}

function readPreStop(container: Container): PreStop {
  const path: Path = [...container.path, 'lifecycle', 'preStop']
  const handler = record(get(container.spec, ['lifecycle', 'preStop']))
  const base = { seconds: 0, known: true, atLeast: false, viaShell: false, path }
  if (handler === undefined) return { ...base, kind: 'none' }
  const sleep = record(handler['sleep'])
  if (sleep !== undefined) {
    return { ...base, kind: 'sleep', seconds: Math.max(integer(sleep['seconds']) ?? 0, 0) }
  }
  const exec = record(handler['exec'])
  if (exec !== undefined) {
    const argv = list(exec['command']).filter((word): word is string => typeof word === 'string')
    const found = preStopSleep(argv)
    if (!found.sleeps) return { ...base, kind: 'exec', known: false }
    return {
      ...base,
      kind: 'exec-sleep',
      seconds: found.seconds,
      atLeast: !found.exact,
      viaShell: found.viaShell,
    }
  }
  if (handler['httpGet'] !== undefined) return { ...base, kind: 'httpGet', known: false }
  // tcpSocket is accepted by the API for compatibility but is not run as a lifecycle hook.
  if (handler['tcpSocket'] !== undefined) return { ...base, kind: 'tcpSocket' }
  return { ...base, kind: 'exec', known: false }
}

function none(variable: string): Setting {
  return {
    variable,
    ms: 0,
    seconds: 0,
    source: 'none',
    path: undefined,
    invalid: undefined,
    unknown: undefined,
  }
}

export function timelineOf(model: Model, workload: Workload, container: Container): Timeline {
  const notes: string[] = []
  const gracePath: Path = [...workload.podPath, 'terminationGracePeriodSeconds']
  const raw = get(workload.pod, ['terminationGracePeriodSeconds'])
  const written = integer(raw)
  const grace = {
    seconds: written ?? DEFAULT_GRACE_SECONDS,
    written: written !== undefined,
    invalid: raw !== undefined && raw !== null && written === undefined,
    path: gracePath,
  }
  const preStop = readPreStop(container)
  if (preStop.kind === 'httpGet')
    notes.push('preStop httpGet takes an unknown time; counted as 0 s')
  if (preStop.kind === 'exec')
    notes.push('preStop exec does not sleep that the checker can see; counted as 0 s')
  const lameduck = container.lameduck
  const selfDrain =
    lameduck === undefined
      ? imageInfo(container.image)?.drainSeconds?.(model, workload, container)
      : undefined
  const serve = lameduck?.serve
  // A `lameduck serve` flag wins over its variable, which wins over the default.
  const read = (variable: string, fallback: number, min: number, flag?: string): Setting => {
    if (lameduck === undefined) return none(variable)
    const raw = flag === undefined ? undefined : serve?.flags[flag]
    if (raw === undefined)
      return readSetting(model, workload, container, variable, fallback, min, notes)
    const ms = parseServeDuration(raw, min)
    const base = { ...none(variable), flag: `--${flag}`, path: undefined }
    return ms === undefined
      ? { ...base, ms: fallback, seconds: fallback / 1000, source: 'default', invalid: raw }
      : { ...base, ms, seconds: ms / 1000, source: 'flag' }
  }
  const drain = read(ENV.drainDelay, DEFAULT_DRAIN_DELAY_MS, MIN_MS.drainDelay, 'drain-delay')
  const shutdown = read(
    ENV.shutdownTimeout,
    DEFAULT_SHUTDOWN_TIMEOUT_MS,
    MIN_MS.shutdownTimeout,
    'shutdown-timeout',
  )
  // Proxy mode runs no onShutdown hooks of the app's: the child's stop takes their place.
  const proxy = serve?.mode === 'proxy'
  const hooks = proxy
    ? none(ENV.hookTimeout)
    : read(
        ENV.hookTimeout,
        DEFAULT_HOOK_TIMEOUT_MS,
        MIN_MS.hookTimeout,
        serve === undefined ? undefined : 'hook-timeout',
      )
  const childStop = proxy
    ? read(
        ENV.childStopTimeout,
        DEFAULT_CHILD_STOP_TIMEOUT_MS,
        MIN_MS.childStopTimeout,
        'child-stop-timeout',
      )
    : undefined
  for (const s of [drain, shutdown, hooks, ...(childStop === undefined ? [] : [childStop])]) {
    if (s.unknown !== undefined) {
      notes.push(
        `${s.variable} comes from ${s.unknown}; lameduck's default ${s.seconds} s is assumed`,
      )
    }
  }
  if (lameduck === undefined) {
    notes.push(
      'not a lameduck app: the time it takes to stop after SIGTERM is its own, only the margin is counted',
    )
  }
  // lameduck's own phases, as the runtime bounds them (in proxy mode the child's stop is the
  // hook); the safety margin stands for the force-exit margin and more.
  const phasesMs = shutdownPhasesMs({
    drainDelayMs: drain.ms,
    shutdownTimeoutMs: shutdown.ms,
    hooksMs: hooks.ms + (childStop?.ms ?? 0),
  })
  const totalSeconds =
    preStop.seconds + (selfDrain?.seconds ?? 0) + phasesMs / 1000 + SAFETY_MARGIN_SECONDS
  return {
    workload,
    container,
    lameduck,
    grace,
    preStop,
    selfDrain,
    drain,
    shutdown,
    hooks,
    childStop,
    marginSeconds: SAFETY_MARGIN_SECONDS,
    totalSeconds,
    notes,
  }
}

/** Timelines of every serving container of every workload that takes traffic. */
export function timelines(model: Model): Timeline[] {
  return model.workloads.flatMap((w) => w.serving.map((c) => timelineOf(model, w, c)))
}

/** `12 s`, `2.5 s`, `0.01 s`: seconds as a reader wants to see them. */
export function seconds(value: number): string {
  if (value === Number.POSITIVE_INFINITY) return '∞ s'
  return `${Number.isInteger(value) ? value : Number(value.toFixed(3))} s`
}

/**
 * "preStop 10 s + drain 10 s + shutdown 20 s + hooks 5 s + margin 5 s = 50 s"; under
 * `lameduck serve` (proxy mode) "child stop 10 s" in place of the hooks.
 */
export function budgetSum(t: Timeline): string {
  const parts: string[] = []
  if (t.preStop.kind !== 'none' && t.preStop.kind !== 'tcpSocket') {
    parts.push(
      t.preStop.known
        ? `preStop ${t.preStop.atLeast ? '≥ ' : ''}${seconds(t.preStop.seconds)}`
        : 'preStop ? s',
    )
  }
  if (t.selfDrain !== undefined) parts.push(`its own drain ${seconds(t.selfDrain.seconds)}`)
  if (t.lameduck !== undefined) {
    parts.push(
      `drain ${seconds(t.drain.seconds)}`,
      `shutdown ${seconds(t.shutdown.seconds)}`,
      t.childStop === undefined
        ? `hooks ${seconds(t.hooks.seconds)}`
        : `child stop ${seconds(t.childStop.seconds)}`,
    )
  }
  parts.push(`margin ${seconds(t.marginSeconds)}`)
  return `${parts.join(' + ')} = ${seconds(t.totalSeconds)}`
}
