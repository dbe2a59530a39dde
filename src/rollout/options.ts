// Every option of the rollout lab: its default, its range and its parsing, in one place.
// Names mirror Kubernetes fields where one exists; durations are milliseconds inside the lab.
import {
  DURATION_GRAMMAR,
  formatDuration,
  parseDuration as parseContractDuration,
} from '../contract.js'

export { formatDuration }

import { INGRESS_KINDS, type IngressKind } from './drivers/ingress.js'
import { SERVICE_KINDS, type ServiceKind } from './drivers/types.js'

/** An option the user got wrong. The CLI turns it into one line and exit code 2. */
export class LabOptionError extends Error {
  override name = 'LabOptionError'
}

/** `maxSurge` / `maxUnavailable` as written: an absolute count or a percentage of replicas. */
export type IntOrPercent = { kind: 'count'; value: number } | { kind: 'percent'; value: number }

/** A request shape (method and path) and its relative weight in the load mix. */
export interface WeightedPath {
  path: string
  weight: number
  /** GET unless given; a POST carries a body and is never retried. @default 'GET' */
  method?: 'GET' | 'POST'
}

/** A client kind (clients/index.ts) and its relative weight in the load mix. */
export interface WeightedClient {
  kind: string
  weight: number
}

export interface LabOptions {
  /** The command each pod runs, then its arguments. */
  command: string[]
  /** Prefix of pod names (`NAME-<template hash>-<suffix>`). @default 'app' */
  name: string
  /** spec.replicas. @default 3 */
  replicas: number
  /** Rolling updates performed one after another. @default 1 */
  rollouts: number
  /** strategy.rollingUpdate.maxSurge. @default 25 % */
  maxSurge: IntOrPercent
  /** strategy.rollingUpdate.maxUnavailable. @default 25 % */
  maxUnavailable: IntOrPercent
  /** minReadySeconds, in ms. @default 0 */
  minReadyMs: number
  /** progressDeadlineSeconds, in ms: a rolling update that makes no progress this long fails. @default 60 000 */
  progressDeadlineMs: number
  /** terminationGracePeriodSeconds, in ms. @default 30 000 */
  gracePeriodMs: number
  /** lifecycle.preStop.sleep, in ms. @default 0 */
  preStopSleepMs: number
  /** readinessProbe.httpGet.path. @default '/' */
  readinessPath: string
  /** readinessProbe.periodSeconds, in ms. @default 1 000 */
  readinessPeriodMs: number
  /** readinessProbe.timeoutSeconds, in ms. @default 1 000 */
  readinessTimeoutMs: number
  /** readinessProbe.failureThreshold. @default 3 */
  readinessFailureThreshold: number
  /** readinessProbe.successThreshold. @default 1 */
  readinessSuccessThreshold: number
  /** Name of the environment variable that carries each pod's port. @default 'PORT' */
  portEnv: string
  /**
   * Name of an environment variable carrying a second port per pod, where the readiness probe
   * goes instead (probes served by a separate listener, like LAMEDUCK_PROBE_PORT or
   * LIGHTSHIP_PORT). @default undefined (probes on the pod's port)
   */
  probePortEnv: string | undefined
  /** Extra environment for every pod (`--env KEY=VALUE`), applied last. */
  env: Record<string, string>
  /**
   * The data path: 'model' (pods on loopback behind a userland balancer) or 'iptables' (pods
   * in network namespaces behind kube-proxy-style iptables rules; needs root). @default 'model'
   */
  service: ServiceKind
  /**
   * A real ingress in front of the pods: 'nginx' or 'haproxy' routes to the pods' addresses
   * with an upstream keep-alive pool and the proxy's default retry policy; 'none' sends the
   * load to the Service.
   * @default 'none'
   */
  ingress: IngressKind
  /** Mean delay before an endpoint change reaches the Service, in ms. @default 1 000 */
  propagationDelayMs: number
  /** Each change's delay is the mean ± up to this much, uniformly, in ms. @default 250 */
  propagationJitterMs: number
  /** Requests per second, open loop. @default 200 */
  rate: number
  /** Keep-alive connections one client pool may hold (http.Agent maxSockets). @default 50 */
  connections: number
  /** Independent pools per pooled client kind, as several upstream services. @default 4 */
  pools: number
  /** Request shapes and weights: GET paths (`--path`) and POSTs (`--post`). @default [{ path: '/', weight: 1 }] */
  paths: WeightedPath[]
  /** Client kinds and weights. @default the HTTP/1.1 kinds, weight 1 each */
  clients: WeightedClient[]
  /** The path the `ws` client kind opens its WebSockets on. @default '/' */
  wsPath: string
  /** Per-request deadline from the moment it is issued, in ms. @default 5 000 */
  timeoutMs: number
  /** The load stops after this many requests even if the rollouts are not done. @default 200 000 */
  maxRequests: number
  /** The whole run stops with an error when it lasts longer than this, in ms. @default 600 000 */
  maxDurationMs: number
  /** Failed requests tolerated before the verdict is FAIL (exit 1). @default 0 */
  maxFailures: number
  /** Write the full result as JSON here. */
  jsonFile: string | undefined
  /** Write a self-contained HTML report here. */
  htmlFile: string | undefined
  /** Copy every pod's stdout and stderr to the lab's stderr, prefixed with the pod name. */
  podLogs: boolean
  /** Settings taken from a manifest (--from): the file, where each setting came from, notes. */
  from?: FromSummary
}

/** Where the settings a manifest can give came from (--from). */
export interface FromSummary {
  file: string
  /** Per setting: `file:line (field)`, `--flag`, or `default`. */
  origins: Record<string, string>
  /** What in the manifest is not used, one sentence each. */
  notes: string[]
}

export const DEFAULTS = {
  name: 'app',
  replicas: 3,
  rollouts: 1,
  maxSurge: { kind: 'percent', value: 25 },
  maxUnavailable: { kind: 'percent', value: 25 },
  minReadyMs: 0,
  // Kubernetes' default is 600 s; pods in the lab start in well under a second.
  progressDeadlineMs: 60_000,
  gracePeriodMs: 30_000,
  preStopSleepMs: 0,
  readinessPath: '/',
  // Kubernetes' default period is 10 s; 1 s is the smallest it accepts and keeps a rollout short.
  readinessPeriodMs: 1_000,
  readinessTimeoutMs: 1_000,
  readinessFailureThreshold: 3,
  readinessSuccessThreshold: 1,
  portEnv: 'PORT',
  service: 'model',
  ingress: 'none',
  // kube-proxy's iptables minSyncPeriod is 1 s: a change reaches the data path 0..1 s later,
  // plus the time of the sync itself.
  propagationDelayMs: 1_000,
  propagationJitterMs: 250,
  rate: 200,
  connections: 50,
  // Several pools and a kind that opens a connection per request spread the load over every
  // endpoint, so each deleted pod carries traffic across its shutdown even at low rates.
  pools: 4,
  paths: [{ path: '/', weight: 1 }],
  clients: [
    { kind: 'agent-lifo', weight: 1 },
    { kind: 'agent-fifo', weight: 1 },
    { kind: 'fetch', weight: 1 },
    { kind: 'new-connection', weight: 1 },
  ],
  wsPath: '/',
  timeoutMs: 5_000,
  maxRequests: 200_000,
  maxDurationMs: 600_000,
  maxFailures: 0,
} as const satisfies Partial<LabOptions>

/** Limits checked up front; each message names the option and echoes the value. */
export const LIMITS = {
  replicas: [1, 50],
  rollouts: [1, 100],
  count: [0, 1_000],
  durationMs: [0, 3_600_000],
  readinessPeriodMs: [100, 3_600_000],
  readinessTimeoutMs: [50, 3_600_000],
  progressDeadlineMs: [1_000, 3_600_000],
  timeoutMs: [10, 600_000],
  threshold: [1, 100],
  rate: [1, 20_000],
  connections: [1, 10_000],
  pools: [1, 64],
  maxRequests: [1, 10_000_000],
  maxDurationMs: [1_000, 86_400_000],
  maxFailures: [0, 10_000_000],
  weight: [1, 1_000_000],
} as const

/** Parses `500ms`, `1.5s`, `2m` or a bare number of seconds (as the Kubernetes fields are). */
export function parseDuration(option: string, text: string, range: readonly [number, number]) {
  const ms = parseContractDuration(text)
  if (ms === undefined) {
    throw new LabOptionError(`--${option} expects ${DURATION_GRAMMAR}, got '${text}'`)
  }
  checkRange(option, ms, range, text, formatDuration)
  return ms
}

/** Parses a whole number within `range`. */
export function parseInteger(option: string, text: string, range: readonly [number, number]) {
  const value = Number(text)
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value)) {
    throw new LabOptionError(
      `--${option} expects a whole number from ${range[0]} to ${range[1]}, got '${text}'`,
    )
  }
  checkRange(option, value, range, text, String)
  return value
}

/** Parses `maxSurge` / `maxUnavailable`: `1` or `25%`. */
export function parseIntOrPercent(option: string, text: string): IntOrPercent {
  const match = /^(\d+)(%?)$/.exec(text.trim())
  if (match === null) {
    throw new LabOptionError(
      `--${option} expects a whole number or a percentage such as 1 or 25%, got '${text}'`,
    )
  }
  const value = Number(match[1])
  if (match[2] === '%') {
    checkRange(option, value, [0, 100], text, (n) => `${n}%`)
    return { kind: 'percent', value }
  }
  checkRange(option, value, LIMITS.count, text, String)
  return { kind: 'count', value }
}

/** Parses `--path`: `PATH` (weight 1) or `WEIGHT:PATH`, e.g. `9:/` and `1:/?delay=2000`. */
export function parseWeightedPath(text: string, option = 'path'): WeightedPath {
  const match = /^(?:(\d+):)?(\/.*)$/.exec(text)
  if (match === null) {
    throw new LabOptionError(
      `--${option} expects PATH or WEIGHT:PATH with PATH starting with '/', e.g. 9:/ or 1:/?delay=2000, got '${text}'`,
    )
  }
  const weight = match[1] === undefined ? 1 : Number(match[1])
  checkRange(option, weight, LIMITS.weight, text, (n) => `weight ${n}`)
  return { path: match[2]!, weight, method: option === 'post' ? 'POST' : 'GET' }
}

/** Parses `--client [WEIGHT:]KIND` against the kinds the load generator knows. */
export function parseWeightedClient(text: string, kinds: readonly string[]): WeightedClient {
  const match = /^(?:(\d+):)?([a-z0-9-]+)$/.exec(text.trim())
  if (match === null || !kinds.includes(match[2]!)) {
    throw new LabOptionError(
      `--client expects KIND or WEIGHT:KIND with KIND one of ${kinds.join(', ')}, got '${text}'`,
    )
  }
  const weight = match[1] === undefined ? 1 : Number(match[1])
  checkRange('client', weight, LIMITS.weight, text, (n) => `weight ${n}`)
  return { kind: match[2]!, weight }
}

/** Parses `--service`: one of the data path drivers. */
export function parseServiceKind(text: string | undefined): ServiceKind {
  if (text === undefined) return DEFAULTS.service
  const kind = SERVICE_KINDS.find((k) => k === text.trim())
  if (kind === undefined) {
    throw new LabOptionError(`--service expects one of ${SERVICE_KINDS.join(', ')}, got '${text}'`)
  }
  return kind
}

/** Parses `--ingress`: none, or a real proxy in front of the pods. */
export function parseIngressKind(text: string | undefined): IngressKind {
  if (text === undefined) return DEFAULTS.ingress
  const kind = INGRESS_KINDS.find((k) => k === text.trim())
  if (kind === undefined) {
    throw new LabOptionError(`--ingress expects one of ${INGRESS_KINDS.join(', ')}, got '${text}'`)
  }
  return kind
}

/** Parses `--env KEY=VALUE`. */
export function parseEnv(text: string): [string, string] {
  const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(text)
  if (match === null) {
    throw new LabOptionError(`--env expects KEY=VALUE with KEY a variable name, got '${text}'`)
  }
  return [match[1]!, match[2]!]
}

function checkRange(
  option: string,
  value: number,
  [min, max]: readonly [number, number],
  text: string,
  format: (n: number) => string,
) {
  if (value < min || value > max) {
    throw new LabOptionError(
      `--${option} must be from ${format(min)} to ${format(max)}, got '${text}'`,
    )
  }
}

export interface Fenceposts {
  maxSurge: number
  maxUnavailable: number
}

/**
 * Resolves maxSurge / maxUnavailable to pod counts as the Deployment controller does
 * (ResolveFenceposts): surge rounds up, unavailable rounds down, and when both come out 0,
 * maxUnavailable becomes 1 so the rollout can progress.
 */
export function resolveFenceposts(
  replicas: number,
  surge: IntOrPercent,
  unavailable: IntOrPercent,
): Fenceposts {
  const maxSurge =
    surge.kind === 'count' ? surge.value : Math.ceil((surge.value * replicas) / 100 - 1e-9)
  let maxUnavailable =
    unavailable.kind === 'count'
      ? unavailable.value
      : Math.floor((unavailable.value * replicas) / 100 + 1e-9)
  maxUnavailable = Math.min(maxUnavailable, replicas)
  if (maxSurge === 0 && maxUnavailable === 0) maxUnavailable = 1
  return { maxSurge, maxUnavailable }
}

/** Cross-field rules, checked after every option is parsed. */
export function validate(options: LabOptions): void {
  if (options.command.length === 0 || options.command[0] === '') {
    throw new LabOptionError(
      'missing the command to run; usage: lameduck rollout [options] -- <command> [args...]',
    )
  }
  if (options.maxSurge.value === 0 && options.maxUnavailable.value === 0) {
    throw new LabOptionError(
      '--max-surge and --max-unavailable cannot both be 0 (a Deployment rejects it: the rollout could never progress)',
    )
  }
  if (options.preStopSleepMs > options.gracePeriodMs) {
    throw new LabOptionError(
      `--pre-stop-sleep (${formatDuration(options.preStopSleepMs)}) must not exceed --termination-grace-period (${formatDuration(options.gracePeriodMs)}), as Kubernetes rejects a sleep action longer than the grace period`,
    )
  }
  if (options.progressDeadlineMs <= options.minReadyMs) {
    throw new LabOptionError(
      `--progress-deadline (${formatDuration(options.progressDeadlineMs)}) must exceed --min-ready (${formatDuration(options.minReadyMs)}), as Kubernetes requires`,
    )
  }
  if (options.propagationJitterMs > options.propagationDelayMs) {
    throw new LabOptionError(
      `--propagation-jitter (${formatDuration(options.propagationJitterMs)}) must not exceed --propagation-delay (${formatDuration(options.propagationDelayMs)})`,
    )
  }
  if (!options.wsPath.startsWith('/')) {
    throw new LabOptionError(`--ws-path expects a path starting with '/', got '${options.wsPath}'`)
  }
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(options.portEnv)) {
    throw new LabOptionError(`--port-env expects a variable name, got '${options.portEnv}'`)
  }
  if (options.probePortEnv !== undefined) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(options.probePortEnv)) {
      throw new LabOptionError(
        `--probe-port-env expects a variable name, got '${options.probePortEnv}'`,
      )
    }
    if (options.probePortEnv === options.portEnv) {
      throw new LabOptionError(
        `--probe-port-env must differ from --port-env (both are '${options.portEnv}')`,
      )
    }
  }
  if (!/^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/.test(options.name)) {
    throw new LabOptionError(
      `--name expects a DNS label (lowercase letters, digits, '-', at most 32 characters), got '${options.name}'`,
    )
  }
}
