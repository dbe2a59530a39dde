// The facts every part of lameduck shares: the runtime resolves its options from them,
// `lameduck serve` passes them on, `lameduck check` models the runtime with them and
// `lameduck rollout` configures pods with them. Each fact is written here once; change one
// and every part follows (test/contract.test.ts ties the checker's model to the runtime).
// Zero dependencies: the runtime imports this file.

/** The lame-duck phase on Kubernetes: long enough for kube-proxy (about 1 s), ingress
 * controllers and most cloud load balancers to stop routing new connections to the pod. */
export const KUBERNETES_DRAIN_DELAY_MS = 10_000
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 20_000
export const DEFAULT_HOOK_TIMEOUT_MS = 5_000
/** The kubelet's default probe `timeoutSeconds` is 1: a slower check fails the probe anyway. */
export const DEFAULT_CHECK_TIMEOUT_MS = 1_000
/** `lameduck serve`: the time the child gets after its stop signal before SIGKILL. */
export const DEFAULT_CHILD_STOP_TIMEOUT_MS = 10_000
/** setTimeout's largest delay; a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2_147_483_647

/** Slack past every phase's deadline before the process is ended, whatever still runs. */
export const FORCE_EXIT_MARGIN_MS = 1_000
/** What hooks get, in all, once a second signal has forced the shutdown. */
export const FORCED_HOOK_BUDGET_MS = 1_000
/** `lameduck serve`: after SIGKILL to the child's group, the wait for the kernel to reap it. */
export const CHILD_KILL_WAIT_MS = 1_000
/** `lameduck serve`: the hook that stops the child gets this on top of the child's own time,
 * to SIGKILL and reap it. */
export const CHILD_STOP_SLACK_MS = CHILD_KILL_WAIT_MS + 500

/** Where lameduck answers probes unless told otherwise. */
export const DEFAULT_PROBE_PATHS = {
  readiness: '/readyz',
  liveness: '/livez',
  startup: '/startupz',
} as const

/** The environment variables lameduck reads; a variable wins over the option given in code. */
export const ENV = {
  drainDelay: 'LAMEDUCK_DRAIN_DELAY_MS',
  shutdownTimeout: 'LAMEDUCK_SHUTDOWN_TIMEOUT_MS',
  hookTimeout: 'LAMEDUCK_HOOK_TIMEOUT_MS',
  checkTimeout: 'LAMEDUCK_CHECK_TIMEOUT_MS',
  signals: 'LAMEDUCK_SIGNALS',
  probePort: 'LAMEDUCK_PROBE_PORT',
  /** `lameduck serve` only. */
  childStopTimeout: 'LAMEDUCK_CHILD_STOP_TIMEOUT_MS',
  /** `lameduck serve` only. */
  stopSignal: 'LAMEDUCK_STOP_SIGNAL',
} as const
/** The least each timing accepts, in milliseconds (a hook or check given 0 ms could never pass). */
export const MIN_MS = {
  drainDelay: 0,
  shutdownTimeout: 0,
  hookTimeout: 1,
  checkTimeout: 1,
  childStopTimeout: 0,
} as const
/** Every variable of lameduck's starts with this. */
export const ENV_PREFIX = 'LAMEDUCK_'
/** Set in every Kubernetes container: its presence turns the default drain delay on. */
export const KUBERNETES_ENV = 'KUBERNETES_SERVICE_HOST'

/** The default drainDelay in an environment: on Kubernetes, the lame duck; elsewhere none. */
export function defaultDrainDelayMs(env: NodeJS.ProcessEnv): number {
  return (env[KUBERNETES_ENV] ?? '') !== '' ? KUBERNETES_DRAIN_DELAY_MS : 0
}

/** The phases a shutdown can take, each bounded by its own deadline. */
export interface ShutdownPhases {
  /** The lame duck; 0 for a process that was never ready. */
  drainDelayMs: number
  shutdownTimeoutMs: number
  /** Every onShutdown hook's timeout, plus the longest onDrain callback's; under
   * `lameduck serve` (proxy mode), the child's stop (see childStopHookMs). */
  hooksMs: number
}

/** The most the shutdown's phases take from the first signal, each to its deadline. */
export function shutdownPhasesMs(phases: ShutdownPhases): number {
  return phases.drainDelayMs + phases.shutdownTimeoutMs + phases.hooksMs
}

/** The time from the first signal by which lameduck has ended the process in any case:
 * every phase's deadline, then the force-exit margin (at most setTimeout's limit). */
export function forceExitAfterMs(phases: ShutdownPhases): number {
  return Math.min(shutdownPhasesMs(phases) + FORCE_EXIT_MARGIN_MS, MAX_TIMER_MS)
}

/** `lameduck serve` (proxy mode): the budget of the hook that stops the child. */
export function childStopHookMs(childStopTimeoutMs: number): number {
  return childStopTimeoutMs + CHILD_STOP_SLACK_MS
}

/** What a duration is, in error messages. */
export const DURATION_GRAMMAR = 'a duration such as 500ms, 2s or 1m (a bare number means seconds)'
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m)?$/

/**
 * A duration as every command line of lameduck's takes it — `500ms`, `2s`, `1m`, or a bare
 * number of seconds — in whole milliseconds; undefined when the text is not one.
 */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim())
  if (match === null) return undefined
  const unit = match[2] ?? 's'
  return Math.round(Number(match[1]) * (unit === 'ms' ? 1 : unit === 's' ? 1_000 : 60_000))
}

/** Milliseconds the way a duration is written: `0s`, `2m`, `1.5s`, `250ms`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s'
  if (ms % 60_000 === 0) return `${ms / 60_000}m`
  if (ms >= 1_000 && ms % 100 === 0) return `${ms / 1_000}s`
  return `${ms}ms`
}

/** An environment variable's whole number of milliseconds from `min` to MAX_TIMER_MS;
 * undefined when it is anything else. */
export function parseEnvMs(raw: string, min: number): number | undefined {
  const text = raw.trim()
  if (!/^\d+$/.test(text)) return undefined
  const value = Number(text)
  return value >= min && value <= MAX_TIMER_MS ? value : undefined
}
