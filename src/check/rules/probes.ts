// Probes: whether traffic waits for readiness, whether the drain is visible, whether the
// probes reach the app at all (KUBERNETES.md pitfalls 8 and 9).
import { type Container, get, integer, record, text } from '../model.js'
import { seconds } from '../timeline.js'
import { drainWindow } from './drain.js'
import type { Rule } from './types.js'

/** lameduck's default probe paths. */
export const READINESS_PATH = '/readyz'
export const LIVENESS_PATH = '/livez'
export const PROBE_PORT_ENV = 'LAMEDUCK_PROBE_PORT'
/** Kubernetes probe defaults. */
export const DEFAULT_PERIOD_SECONDS = 10
export const DEFAULT_FAILURE_THRESHOLD = 3

const PROBES = ['readinessProbe', 'livenessProbe', 'startupProbe'] as const

function probe(c: Container, name: (typeof PROBES)[number]): Record<string, unknown> | undefined {
  return record(c.spec[name])
}

function httpPath(p: Record<string, unknown> | undefined): string | undefined {
  const path = text(get(p, ['httpGet', 'path']))
  if (path === undefined) return get(p, ['httpGet']) === undefined ? undefined : '/'
  return path.split('?', 1)[0]
}

function probePort(p: Record<string, unknown>): { port: unknown; field: string } | undefined {
  for (const field of ['httpGet', 'tcpSocket', 'grpc']) {
    const handler = record(p[field])
    if (handler !== undefined) return { port: handler['port'], field }
  }
  return undefined
}

/** A port as a number when it is one (or a numeric string), else the name. */
function portValue(port: unknown): number | string | undefined {
  if (typeof port === 'number') return port
  if (typeof port === 'string') return /^\d+$/.test(port) ? Number(port) : port
  return undefined
}

function resolvePort(c: Container, port: unknown): number | string | undefined {
  const value = portValue(port)
  if (typeof value !== 'string') return value
  return c.ports.find((p) => p.name === value)?.containerPort ?? value
}

/** What a probe checks, comparable across probes; named ports resolved. */
function handlerKey(c: Container, p: Record<string, unknown>): string | undefined {
  const http = record(p['httpGet'])
  if (http !== undefined) {
    return `http ${text(http['scheme']) ?? 'HTTP'} ${text(http['host']) ?? ''} ${resolvePort(c, http['port'])} ${httpPath(p)}`
  }
  const tcp = record(p['tcpSocket'])
  if (tcp !== undefined) return `tcp ${resolvePort(c, tcp['port'])}`
  const exec = record(p['exec'])
  if (exec !== undefined) return `exec ${JSON.stringify(exec['command'])}`
  const grpc = record(p['grpc'])
  if (grpc !== undefined)
    return `grpc ${resolvePort(c, grpc['port'])} ${text(grpc['service']) ?? ''}`
  return undefined
}

function describeHandler(c: Container, p: Record<string, unknown>): string {
  const path = httpPath(p)
  if (path !== undefined)
    return `GET ${path} on port ${resolvePort(c, get(p, ['httpGet', 'port']))}`
  if (p['tcpSocket'] !== undefined)
    return `a TCP connect to port ${resolvePort(c, get(p, ['tcpSocket', 'port']))}`
  if (p['grpc'] !== undefined) return 'a gRPC health check'
  if (p['exec'] !== undefined) return 'an exec command'
  return 'no handler'
}

export const noReadinessProbe: Rule = {
  id: 'no-readiness-probe',
  severity: 'error',
  summary: 'a container that takes traffic has no readinessProbe',
  check({ model, report }) {
    for (const w of model.workloads) {
      for (const c of w.serving) {
        if (probe(c, 'readinessProbe') !== undefined) continue
        report({
          object: w,
          container: c,
          path: c.path,
          message: `container ${c.name} takes traffic but has no readinessProbe: Kubernetes routes to it as soon as it starts, before it listens, and rollouts stop old pods without waiting for the new ones to serve`,
          fix: `readinessProbe: {httpGet: {path: ${READINESS_PATH}, port: ${c.ports[0]?.name ?? c.ports[0]?.containerPort ?? 8080}}, periodSeconds: 5, failureThreshold: 2}`,
        })
      }
    }
  },
}

export const livenessSameAsReadiness: Rule = {
  id: 'liveness-same-as-readiness',
  severity: 'warning',
  summary:
    'the liveness probe checks readiness: a dependency outage or overload restarts healthy pods',
  check({ model, report }) {
    for (const w of model.workloads) {
      for (const c of w.containers) {
        const liveness = probe(c, 'livenessProbe')
        const readiness = probe(c, 'readinessProbe')
        if (liveness === undefined) continue
        const same =
          readiness !== undefined &&
          handlerKey(c, liveness) !== undefined &&
          handlerKey(c, liveness) === handlerKey(c, readiness)
        const onReadyz = httpPath(liveness) === READINESS_PATH
        if (!same && !onReadyz) continue
        report({
          object: w,
          container: c,
          path: [...c.path, 'livenessProbe'],
          message: `container ${c.name}: the liveness probe is ${same ? 'the same check as readiness' : 'on the readiness path'} (${describeHandler(c, liveness)}): readiness fails when dependencies fail or the pod drains, and a liveness failure restarts the container, so one slow database restarts every pod`,
          fix: `livenessProbe: {httpGet: {path: ${LIVENESS_PATH}, port: ${String(get(liveness, ['httpGet', 'port']) ?? get(readiness, ['httpGet', 'port']) ?? 8080)}}} (lameduck's liveness answers 200 while the process is alive)`,
        })
      }
    }
  },
}

export const readinessPath: Rule = {
  id: 'readiness-path',
  severity: 'info',
  summary: 'the readiness probe does not use lameduck’s /readyz, which answers 503 from SIGTERM on',
  check({ model, report }) {
    for (const w of model.workloads) {
      for (const c of w.serving) {
        const readiness = probe(c, 'readinessProbe')
        if (readiness === undefined || httpPath(readiness) === READINESS_PATH) continue
        const http = httpPath(readiness) !== undefined
        report({
          object: w,
          container: c,
          path: [...c.path, 'readinessProbe', ...(http ? ['httpGet', 'path'] : [])],
          message: `container ${c.name}: the readiness probe is ${describeHandler(c, readiness)}, not lameduck's ${READINESS_PATH}; ${http ? 'unless the app serves lameduck readiness there, it' : 'it'} does not turn 503 when the pod drains, which load balancers that health-check pods rely on`,
          fix: `readinessProbe: {httpGet: {path: ${READINESS_PATH}, port: ${String(get(readiness, ['httpGet', 'port']) ?? c.ports[0]?.name ?? c.ports[0]?.containerPort ?? 8080)}}}, or set lameduck's probes.readiness to this path`,
        })
      }
    }
  },
}

/** Probe timing that sees the 503 within `drain` seconds, or a longer drain when it is tiny. */
function probeFix(drain: number, variable: string): string {
  if (drain < 2) {
    return `${variable}: "10000" with readinessProbe: {periodSeconds: 5, failureThreshold: 2}`
  }
  const period = Math.min(5, Math.floor(drain / 2))
  return `readinessProbe: {periodSeconds: ${period}, failureThreshold: 2} (${period * 2} s ≤ ${seconds(drain)}), or a longer ${variable}`
}

export const readinessSlowerThanDrain: Rule = {
  id: 'readiness-slower-than-drain',
  severity: 'info',
  summary: 'readiness needs periodSeconds × failureThreshold to see the 503, longer than the drain',
  check({ timelines, report }) {
    for (const t of timelines) {
      const readiness = probe(t.container, 'readinessProbe')
      if (readiness === undefined || httpPath(readiness) === undefined) continue
      if (!t.preStop.known || drainWindow(t) <= 0) continue
      const period = integer(readiness['periodSeconds']) ?? DEFAULT_PERIOD_SECONDS
      const threshold = integer(readiness['failureThreshold']) ?? DEFAULT_FAILURE_THRESHOLD
      const detect = period * threshold
      if (detect <= t.drain.seconds) continue
      report({
        object: t.workload,
        container: t.container,
        path: [
          ...t.container.path,
          'readinessProbe',
          readiness['periodSeconds'] !== undefined ? 'periodSeconds' : 'httpGet',
        ],
        message: `container ${t.container.name}: readiness sees the 503 after ${period} s × ${threshold} = ${seconds(detect)}, but the app drains ${seconds(t.drain.seconds)} after SIGTERM${t.preStop.seconds > 0 ? ' (readiness stays 200 during preStop)' : ''}; in-cluster routing does not wait for the probe, but a load balancer that health-checks the pod on this schedule still sends requests after the listener closes`,
        fix: probeFix(t.drain.seconds, t.drain.variable),
      })
    }
  },
}

export const probePortUndefined: Rule = {
  id: 'probe-port-undefined',
  severity: 'error',
  summary: 'a probe names a port the container does not declare',
  check({ model, report }) {
    for (const w of model.workloads) {
      for (const c of w.containers) {
        for (const name of PROBES) {
          const p = probe(c, name)
          const found = p === undefined ? undefined : probePort(p)
          if (found === undefined) continue
          const value = portValue(found.port)
          if (typeof value !== 'string' || c.ports.some((port) => port.name === value)) continue
          const names = c.ports.flatMap((port) => (port.name === undefined ? [] : [port.name]))
          report({
            object: w,
            container: c,
            path: [...c.path, name, found.field, 'port'],
            message: `container ${c.name}: ${name} uses port '${value}', which is not a named port of the container (${names.length > 0 ? `names: ${names.join(', ')}` : 'it names none'}): the probe always fails`,
            fix: `name the port: ports: [{name: ${value}, containerPort: 8080}], or use the number`,
          })
        }
      }
    }
  },
}

export const probePortMismatch: Rule = {
  id: 'probe-port-mismatch',
  severity: 'warning',
  summary: 'a probe uses a port number the container does not declare',
  check({ model, report }) {
    for (const w of model.workloads) {
      for (const c of w.containers) {
        if (c.ports.length === 0) continue
        const probePortEnv = (c.spec['env'] as unknown[] | undefined)
          ?.map((e) => record(e))
          .find((e) => e?.['name'] === PROBE_PORT_ENV)?.['value']
        for (const name of PROBES) {
          const p = probe(c, name)
          const found = p === undefined ? undefined : probePort(p)
          if (p === undefined || found === undefined || get(p, ['httpGet', 'host']) !== undefined)
            continue
          const value = portValue(found.port)
          if (typeof value !== 'number') continue
          if (c.ports.some((port) => port.containerPort === value)) continue
          if (probePortEnv !== undefined && Number(probePortEnv) === value) continue
          report({
            object: w,
            container: c,
            path: [...c.path, name, found.field, 'port'],
            message: `container ${c.name}: ${name} probes port ${value}, but the container declares ${c.ports.map((port) => port.containerPort).join(', ')}: lameduck answers probes on the app's port (or ${PROBE_PORT_ENV})`,
            fix: `probe the app's port: port: ${c.ports[0]!.name ?? c.ports[0]!.containerPort}`,
          })
        }
      }
    }
  },
}
