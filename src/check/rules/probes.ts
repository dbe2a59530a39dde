// Probes: whether traffic waits for readiness, whether the drain is visible, whether the
// probes reach the app at all (KUBERNETES.md pitfalls 8 and 9).
import { DEFAULT_PROBE_PATHS, ENV } from '../../contract.js'
import { type Container, get, integer, record, text } from '../model.js'
import { seconds } from '../timeline.js'
import { drainWindow } from './drain.js'
import type { Rule } from './types.js'

/** lameduck's default probe paths. */
export const READINESS_PATH = DEFAULT_PROBE_PATHS.readiness
export const LIVENESS_PATH = DEFAULT_PROBE_PATHS.liveness
export const PROBE_PORT_ENV = ENV.probePort
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

/** The port a fix may name: one the Service targets, or one the container declares; never made up. */
function knownPort(c: Container): string | number | undefined {
  const routed = c.routes[0]?.port.target
  if (routed !== undefined) return routed
  return c.ports[0]?.name ?? c.ports[0]?.containerPort
}

export const noReadinessProbe: Rule = {
  id: 'no-readiness-probe',
  severity: 'error',
  scope: 'serving',
  summary: 'a container that takes traffic has no readinessProbe',
  rationale:
    'without a readiness probe Kubernetes routes to a container as soon as it starts, before it listens, and a rollout stops old pods without waiting for the new ones to serve',
  check({ model, report }) {
    for (const w of model.workloads) {
      for (const c of w.serving) {
        if (probe(c, 'readinessProbe') !== undefined) continue
        const port = knownPort(c)
        const portText = port === undefined ? '<the port the app listens on>' : String(port)
        // A TCP connect cannot check a UDP port: only the app's own check can.
        const udp =
          c.routes.length > 0 && c.routes.every((r) => r.port.protocol.toUpperCase() !== 'TCP')
        report({
          object: w,
          container: c,
          path: c.path,
          message: 'no readinessProbe',
          fix:
            c.lameduck !== undefined
              ? `readinessProbe: {httpGet: {path: ${READINESS_PATH}, port: ${portText}}, periodSeconds: 5, failureThreshold: 2}`
              : udp
                ? `a readinessProbe on the app's own health check (exec, or HTTP on its health port); the Service's port ${portText} is UDP, which a tcpSocket probe cannot check`
                : `readinessProbe: {tcpSocket: {port: ${portText}}, periodSeconds: 5} (or the app's own HTTP or gRPC health check on that port, if it has one)`,
        })
      }
    }
  },
}

export const livenessSameAsReadiness: Rule = {
  id: 'liveness-same-as-readiness',
  severity: 'warning',
  scope: 'lameduck',
  summary:
    'the liveness probe checks readiness: a dependency outage or overload restarts healthy pods',
  rationale:
    'lameduck’s readiness runs your dependency checks and answers 503 while draining; a liveness failure restarts the container, so one slow database restarts every pod',
  check({ model, report }) {
    for (const w of model.workloads) {
      for (const c of w.containers) {
        if (c.lameduck === undefined) continue
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
          message: `the liveness probe is ${same ? 'the same check as readiness' : 'on the readiness path'} (${describeHandler(c, liveness)})`,
          fix: `livenessProbe: {httpGet: {path: ${LIVENESS_PATH}, port: ${String(get(liveness, ['httpGet', 'port']) ?? get(readiness, ['httpGet', 'port']) ?? knownPort(c) ?? '<the app port>')}}} (lameduck's liveness answers 200 while the process is alive)`,
        })
      }
    }
  },
}

export const readinessPath: Rule = {
  id: 'readiness-path',
  severity: 'info',
  scope: 'lameduck',
  summary: 'the readiness probe does not use lameduck’s /readyz, which answers 503 from SIGTERM on',
  rationale:
    'a probe elsewhere does not turn 503 when the pod drains, which load balancers that health-check pods rely on (unless the app serves lameduck’s readiness there)',
  check({ model, report }) {
    for (const w of model.workloads) {
      for (const c of w.serving) {
        if (c.lameduck === undefined) continue
        const readiness = probe(c, 'readinessProbe')
        if (readiness === undefined || httpPath(readiness) === READINESS_PATH) continue
        const http = httpPath(readiness) !== undefined
        report({
          object: w,
          container: c,
          path: [...c.path, 'readinessProbe', ...(http ? ['httpGet', 'path'] : [])],
          message: `the readiness probe is ${describeHandler(c, readiness)}, not lameduck's ${READINESS_PATH}`,
          fix: `readinessProbe: {httpGet: {path: ${READINESS_PATH}, port: ${String(get(readiness, ['httpGet', 'port']) ?? knownPort(c) ?? '<the app port>')}}}, or set lameduck's probes.readiness to ${http ? 'this path' : 'the path you probe'}`,
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
  scope: 'lameduck',
  summary: 'readiness needs periodSeconds × failureThreshold to see the 503, longer than the drain',
  rationale:
    'in-cluster routing does not wait for the probe, but a load balancer that health-checks the pod on the probe’s schedule still sends requests after the listener closes',
  check({ timelines, report }) {
    for (const t of timelines) {
      if (t.lameduck === undefined) continue
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
        message: `readiness sees the 503 after ${period} s × ${threshold} = ${seconds(detect)}, but the app drains ${seconds(t.drain.seconds)} after SIGTERM${t.preStop.seconds > 0 ? ' (readiness stays 200 during preStop)' : ''}`,
        fix: probeFix(t.drain.seconds, t.drain.variable),
      })
    }
  },
}

export const probePortUndefined: Rule = {
  id: 'probe-port-undefined',
  severity: 'error',
  scope: 'containers',
  summary: 'a probe names a port the container does not declare',
  rationale:
    'a named probe port must be one of the container’s named ports, or the probe always fails',
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
            message: `${name} uses port '${value}', which is not a named port of the container (${names.length > 0 ? `names: ${names.join(', ')}` : 'it names none'})`,
            fix: `name the port the app listens on: ports: [{name: ${value}, containerPort: <that port>}], or probe it by number`,
          })
        }
      }
    }
  },
}

export const probePortMismatch: Rule = {
  id: 'probe-port-mismatch',
  severity: 'warning',
  scope: 'lameduck',
  summary: 'a lameduck probe uses a port number the container does not declare',
  rationale:
    'lameduck answers probes on the app’s own port (or LAMEDUCK_PROBE_PORT); another port reaches something else, or nothing',
  check({ model, report }) {
    for (const w of model.workloads) {
      for (const c of w.containers) {
        if (c.lameduck === undefined || c.ports.length === 0) continue
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
            message: `${name} probes port ${value}, but the container declares ${c.ports.map((port) => port.containerPort).join(', ')}`,
            fix: `probe the app's port: port: ${c.ports[0]!.name ?? c.ports[0]!.containerPort}`,
          })
        }
      }
    }
  },
}
