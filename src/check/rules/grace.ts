// The grace period against the time the container needs to stop (KUBERNETES.md pitfalls 2-4).
import { containerArgv, flagValue, idleCommand } from '../commands.js'
import { imageInfo, type ShutdownTimeout } from '../images.js'
import { type Container, get, integer, list, type Model, type Workload } from '../model.js'
import { budgetSum, seconds, type Timeline } from '../timeline.js'
import { durationSeconds } from '../values.js'
import type { Rule } from './types.js'

/** After a preStop hook that used the whole grace period, the kubelet still allows this. */
export const MIN_GRACE_AFTER_PRESTOP_SECONDS = 2

function graceText(t: Timeline): string {
  return `grace ${seconds(t.grace.seconds)}${t.grace.written ? '' : ' (the default)'}`
}

/** A grace period of 0 or 1 s: grace-period-zero's, which the other grace rules leave alone. */
function isZero(t: Timeline): boolean {
  return t.grace.written && t.grace.seconds <= 1
}

/** A placeholder that only holds resources (`pause`, `sleep infinity`): nothing to stop. */
function placeholder(c: Container): boolean {
  return /(^|\/)pause(:|@|$)/.test(c.image ?? '') || idleCommand(containerArgv(c.spec))
}

/** Why the grace period of `w` matters although no Service in the input selects it. */
function longRunning(w: Workload): string | undefined {
  const active = w.containers.filter((c) => !placeholder(c))
  if (active.length === 0) return undefined
  if (active.some((c) => c.ports.length > 0)) return 'its container ports say it serves'
  if (active.some((c) => get(c.spec, ['lifecycle', 'preStop']) !== undefined))
    return 'it has a preStop hook'
  return undefined
}

function preStopText(c: Container): string | undefined {
  const hook = get(c.spec, ['lifecycle', 'preStop'])
  if (hook === undefined) return undefined
  const sleep = integer(get(hook, ['sleep', 'seconds']))
  if (sleep !== undefined) return `sleep ${sleep} s`
  const command = list(get(hook, ['exec', 'command']))
    .map(String)
    .join(' ')
  if (command !== '') return command.length > 40 ? `${command.slice(0, 37)}...` : command
  return get(hook, ['httpGet']) !== undefined ? 'an httpGet' : 'a hook'
}

function preStopUsesGrace(t: Timeline): boolean {
  return t.preStop.known && t.preStop.seconds > 0 && t.preStop.seconds >= t.grace.seconds
}

export const gracePeriodZero: Rule = {
  id: 'grace-period-zero',
  severity: 'error',
  scope: 'workloads',
  summary:
    'terminationGracePeriodSeconds 0 or 1 on a long-running workload: no time to stop, and a preStop hook cannot run',
  rationale:
    'with a grace period of 0 the preStop hook is skipped and the kubelet does not wait for the app (1 s is no better: the hook and the app share that second), cutting every in-flight request; this holds whether or not a Service in the input selects the pod',
  check({ model, report }) {
    for (const w of model.workloads) {
      const grace = integer(get(w.pod, ['terminationGracePeriodSeconds']))
      if (grace === undefined || grace > 1) continue
      const why = w.takesTraffic ? undefined : longRunning(w)
      if (!w.takesTraffic && why === undefined) continue
      const hooks = w.containers.flatMap((c) => {
        const text = preStopText(c)
        return text === undefined ? [] : [`${c.name}: ${text}`]
      })
      const hookText =
        hooks.length === 0
          ? ''
          : grace === 0
            ? `: the preStop hook (${hooks.join('; ')}) never runs`
            : `: the preStop hook (${hooks.join('; ')}) and the app's shutdown share that one second`
      const served = why === undefined ? '' : ` (no Service in the input selects it, but ${why})`
      report({
        object: w,
        path: [...w.podPath, 'terminationGracePeriodSeconds'],
        message: `terminationGracePeriodSeconds is ${grace}${hookText}${served}`,
        fix: 'remove the field (default 30 s) or set it to cover the preStop hook and the shutdown, e.g. terminationGracePeriodSeconds: 45',
      })
    }
  },
}

export const prestopExceedsGrace: Rule = {
  id: 'prestop-exceeds-grace',
  severity: 'error',
  scope: 'serving',
  summary: 'the preStop hook takes the whole grace period, leaving the app no time after SIGTERM',
  rationale: `the grace period counts from deletion and includes the preStop hook: the API server rejects a sleep action longer than it, and an exec sleep that uses it up leaves the app ${MIN_GRACE_AFTER_PRESTOP_SECONDS} s between SIGTERM and SIGKILL`,
  check({ timelines, report }) {
    for (const t of timelines) {
      if (t.grace.invalid || isZero(t) || !preStopUsesGrace(t)) continue
      const { preStop } = t
      const rejected = preStop.kind === 'sleep' && preStop.seconds > t.grace.seconds
      const consequence = rejected
        ? 'the API server rejects the sleep action'
        : `the app gets ${MIN_GRACE_AFTER_PRESTOP_SECONDS} s after SIGTERM`
      const needed = Math.ceil(t.totalSeconds)
      report({
        object: t.workload,
        container: t.container,
        path: [
          ...preStop.path,
          ...(preStop.kind === 'sleep' ? ['sleep', 'seconds'] : ['exec', 'command']),
        ],
        message: `preStop sleep ${seconds(preStop.seconds)} ≥ ${graceText(t)}: ${consequence}`,
        fix: Number.isFinite(needed)
          ? `shorten the preStop sleep (5-10 s is plenty) or raise terminationGracePeriodSeconds to at least ${needed} (${budgetSum(t)})`
          : 'sleep a fixed 5-10 s in preStop, never `infinity`',
      })
    }
  },
}

export const gracePeriodTooShort: Rule = {
  id: 'grace-period-too-short',
  severity: 'error',
  scope: 'serving',
  summary:
    'terminationGracePeriodSeconds is shorter than the preStop hook and the shutdown after it, plus a margin',
  rationale:
    'the kubelet SIGKILLs the container when the grace period runs out, whatever it is doing: a lameduck app is killed before its own shutdown deadline (in-flight requests cut, its outcome never logged), any other app gets less than the margin after a long preStop hook',
  check({ timelines, report }) {
    for (const t of timelines) {
      if (t.grace.invalid || isZero(t) || preStopUsesGrace(t)) continue
      if (t.totalSeconds <= t.grace.seconds) continue
      // Without lameduck the checker only knows the hook and the margin: an app with no
      // preStop hook is not held to any grace period.
      if (t.lameduck === undefined && t.preStop.seconds + (t.selfDrain?.seconds ?? 0) <= 0) continue
      const needed = Math.ceil(t.totalSeconds)
      const shrink =
        t.lameduck === undefined
          ? ''
          : [t.drain, t.shutdown, t.hooks]
              .filter((s) => s.ms > 0)
              .map((s) => s.variable)
              .join(', ')
      report({
        object: t.workload,
        container: t.container,
        path: t.grace.path,
        message: `${budgetSum(t)} > ${graceText(t)}`,
        fix: `set terminationGracePeriodSeconds: ${needed}${shrink === '' ? '' : `, or lower ${shrink}`}${t.preStop.seconds > 0 ? ' or the preStop sleep' : ''}`,
      })
    }
  },
}

/**
 * How long the program itself waits for in-flight requests after SIGTERM, when its flags
 * or env say so: gunicorn's --graceful-timeout, uvicorn's --timeout-graceful-shutdown,
 * OpenFaaS's write_timeout; or its configuration in the input, for the images that say
 * (nginx's worker_shutdown_timeout, ingress-nginx's worker-shutdown-timeout). Not Envoy's --drain-time-s: Envoy closes its listeners at once
 * on SIGTERM; it drains only when told to through its admin API (a preStop hook calling
 * drain_listeners?graceful, which the preStop rules time), on hot restart and on LDS
 * changes.
 */
function appTimeout(model: Model, workload: Workload, c: Container): ShutdownTimeout | undefined {
  const argv = containerArgv(c.spec) ?? []
  const words = argv.flatMap((w) => (w.includes(' ') ? w.split(/\s+/) : [w]))
  const argPath = [...c.path, c.spec['args'] !== undefined ? 'args' : 'command']
  const programs: [RegExp, string, string][] = [
    [/(^|\/)gunicorn$/, 'graceful-timeout', 'gunicorn'],
    [/(^|\/)uvicorn$/, 'timeout-graceful-shutdown', 'uvicorn'],
  ]
  for (const [program, flag, name] of programs) {
    if (!words.some((w) => program.test(w))) continue
    const value = flagValue(words, [flag])
    const seconds = value === undefined ? undefined : durationSeconds(value)
    if (seconds !== undefined) return { seconds, what: `${name} --${flag} ${value}`, path: argPath }
  }
  const configured = imageInfo(c.image)?.shutdownTimeout?.(model, workload, c)
  if (configured !== undefined) return configured
  if (/(^|\/)openfaas\/(gateway|of-watchdog)(:|@|$)/.test(c.image ?? '')) {
    const env = list(c.spec['env'])
    for (let i = env.length - 1; i >= 0; i--) {
      const e = env[i] as Record<string, unknown> | undefined
      if (e?.['name'] !== 'write_timeout' || typeof e['value'] !== 'string') continue
      const seconds = durationSeconds(e['value'])
      if (seconds !== undefined)
        return {
          seconds,
          what: `write_timeout ${e['value']} (OpenFaaS waits that long for requests on SIGTERM)`,
          path: [...c.path, 'env', i, 'value'],
        }
    }
  }
  return undefined
}

export const appTimeoutExceedsGrace: Rule = {
  id: 'app-timeout-exceeds-grace',
  severity: 'error',
  scope: 'serving-other',
  summary:
    "the app's own shutdown timeout (gunicorn, uvicorn and OpenFaaS flags, nginx's worker_shutdown_timeout) is longer than the grace period leaves it",
  rationale:
    'the program waits that long for in-flight requests after SIGTERM, but the kubelet SIGKILLs it when the grace period (which counts the preStop hook too) runs out: the slow requests it was waiting for are cut',
  check({ model, timelines, report }) {
    for (const t of timelines) {
      if (t.lameduck !== undefined || t.grace.invalid || isZero(t)) continue
      const found = appTimeout(model, t.workload, t.container)
      if (found === undefined || (!found.byPreStop && !t.preStop.known)) continue
      // A preStop hook that stops the program itself takes the program's time, no more.
      const before = found.byPreStop ? 0 : t.preStop.seconds
      const needed = before + found.seconds
      if (needed <= t.grace.seconds) continue
      const pre = before > 0 ? `preStop ${seconds(before)} + ` : ''
      report({
        object: t.workload,
        container: t.container,
        path: t.grace.written ? t.grace.path : found.path,
        message: `${pre}${found.what} = ${seconds(needed)} > ${graceText(t)}`,
        fix: `terminationGracePeriodSeconds: ${Math.ceil(needed + t.marginSeconds)} (${pre}${seconds(found.seconds)} + ${seconds(t.marginSeconds)} margin), or a shorter timeout`,
      })
    }
  },
}
