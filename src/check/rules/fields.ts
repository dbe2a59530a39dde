// Values the API server would reject, reported where they are written instead of being read
// as defaults: a string where an integer belongs, a field at the wrong level.
import type { Path } from '../load.js'
import {
  type Container,
  get,
  labelSelector,
  list,
  matchesSelector,
  type ObjectInfo,
  record,
} from '../model.js'
import type { Report, Rule } from './types.js'

const PROBES = ['readinessProbe', 'livenessProbe', 'startupProbe'] as const
const PROBE_INTEGERS = [
  'initialDelaySeconds',
  'periodSeconds',
  'timeoutSeconds',
  'successThreshold',
  'failureThreshold',
  'terminationGracePeriodSeconds',
] as const

/** Pod fields sometimes written inside a container. */
const POD_FIELDS = new Set([
  'terminationGracePeriodSeconds',
  'restartPolicy',
  'nodeSelector',
  'affinity',
  'tolerations',
  'serviceAccountName',
  'volumes',
  'initContainers',
  'hostNetwork',
  'dnsPolicy',
  'topologySpreadConstraints',
  'priorityClassName',
])
/** Container fields sometimes written at the pod level. */
const CONTAINER_FIELDS = new Set([
  'image',
  'ports',
  'command',
  'args',
  'env',
  'envFrom',
  'readinessProbe',
  'livenessProbe',
  'startupProbe',
  'lifecycle',
  'resources',
])
/** Workload fields sometimes written in the pod template. */
const WORKLOAD_FIELDS = new Set([
  'replicas',
  'strategy',
  'minReadySeconds',
  'progressDeadlineSeconds',
])

/** API versions of Deployments, StatefulSets, DaemonSets and ReplicaSets that need a selector. */
const SELECTOR_REQUIRED = new Set(['apps/v1', 'apps/v1beta2'])

function describeValue(value: unknown): string {
  if (typeof value === 'string') return `the string ${JSON.stringify(value)}`
  if (typeof value === 'number') return `${value}`
  if (Array.isArray(value)) return 'a list'
  if (value === null) return 'null'
  return typeof value === 'object' ? 'a mapping' : JSON.stringify(value)
}

function isInteger(value: unknown): boolean {
  return typeof value === 'number' && Number.isInteger(value)
}

export const invalidField: Rule = {
  id: 'invalid-field',
  severity: 'error',
  scope: 'workloads',
  summary: 'a value of the wrong type, or a field at the wrong level, that the API server rejects',
  rationale:
    'the API server rejects the object (or, with validation off, drops the field and uses the default), so what the manifest says is not what runs; the checker does not guess a value for it either',
  check({ model, report }) {
    const emit = (
      object: ObjectInfo,
      path: Path,
      message: string,
      fix: string,
      r?: Partial<Report>,
    ) => report({ object, path, message, fix, ...r })
    const integerAt = (
      object: ObjectInfo,
      base: unknown,
      path: Path,
      at: Path,
      name: string,
      container?: Container,
    ) => {
      const value = get(base, path)
      if (value === undefined || isInteger(value)) return
      const asNumber = typeof value === 'string' && /^\d+$/.test(value.trim())
      emit(
        object,
        at,
        `${name} is ${describeValue(value)}; the API expects an integer`,
        asNumber ? `${name}: ${value.trim()} (without quotes)` : `${name}: <an integer>`,
        container === undefined ? {} : { container },
      )
    }
    const intOrPercentAt = (object: ObjectInfo, value: unknown, at: Path, name: string) => {
      if (value === undefined || isInteger(value)) return
      if (typeof value === 'string' && /^\d+%$/.test(value.trim())) return
      const bare = typeof value === 'string' && /^\d+$/.test(value.trim())
      emit(
        object,
        at,
        `${name} is ${describeValue(value)}; the API expects an integer or a percentage like "25%"`,
        bare
          ? `${name}: ${value.trim()} (a number, or "${value.trim()}%" for a percentage)`
          : `${name}: 1`,
      )
    }
    for (const w of model.workloads) {
      const spec = record(w.source.value['spec'])
      // apps/v1 (and v1beta2) require a selector, and it must select the pod template;
      // earlier versions defaulted it from the template's labels. A template without labels
      // is left alone: a kustomize base gets both from commonLabels (metrics-server's).
      const labels = Object.entries(w.podLabels)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ')
      if (
        SELECTOR_REQUIRED.has(String(w.source.value['apiVersion'])) &&
        spec !== undefined &&
        labels !== ''
      ) {
        const selector = labelSelector(spec['selector'])
        if (selector === undefined) {
          emit(
            w,
            ['spec'],
            `${w.kind} has no spec.selector; ${String(w.source.value['apiVersion'])} requires one`,
            `spec.selector: {matchLabels: {${labels}}}`,
          )
        } else if (!matchesSelector(selector, w.podLabels)) {
          emit(
            w,
            ['spec', 'selector'],
            `spec.selector does not select the pod template's labels (${labels})`,
            'the same labels in spec.selector.matchLabels and spec.template.metadata.labels',
          )
        }
      }
      for (const field of ['replicas', 'minReadySeconds', 'progressDeadlineSeconds']) {
        integerAt(w, spec, [field], ['spec', field], field)
      }
      for (const base of [
        ['strategy', 'rollingUpdate'],
        ['updateStrategy', 'rollingUpdate'],
        ['strategy', 'canary'],
      ]) {
        for (const field of ['maxSurge', 'maxUnavailable']) {
          intOrPercentAt(w, get(spec, [...base, field]), ['spec', ...base, field], field)
        }
      }
      integerAt(
        w,
        w.pod,
        ['terminationGracePeriodSeconds'],
        [...w.podPath, 'terminationGracePeriodSeconds'],
        'terminationGracePeriodSeconds',
      )
      for (const key of Object.keys(w.pod)) {
        if (CONTAINER_FIELDS.has(key)) {
          emit(
            w,
            [...w.podPath, key],
            `${key} is written in the pod spec, but it is a container field`,
            `move ${key} into the container it is for (under containers:)`,
          )
        } else if (WORKLOAD_FIELDS.has(key) && w.kind !== 'Pod') {
          emit(
            w,
            [...w.podPath, key],
            `${key} is written in the pod template, but it belongs to the ${w.kind} spec`,
            `move ${key} up to spec.${key}`,
          )
        }
      }
      if (w.kind !== 'Pod' && spec !== undefined) {
        for (const key of ['terminationGracePeriodSeconds', 'containers']) {
          if (spec[key] !== undefined) {
            emit(
              w,
              ['spec', key],
              `${key} is written in the ${w.kind} spec, but it is a pod field`,
              `move ${key} into spec.template.spec`,
            )
          }
        }
      }
      for (const c of w.containers) {
        const path = c.path
        for (const key of Object.keys(c.spec)) {
          if (POD_FIELDS.has(key)) {
            emit(
              w,
              [...path, key],
              `${key} is written in a container, but it is a pod field`,
              `move ${key} to ${w.kind === 'Pod' ? 'spec' : 'spec.template.spec'}.${key}`,
              { container: c },
            )
          }
        }
        list(c.spec['ports']).forEach((port, i) => {
          integerAt(
            w,
            port,
            ['containerPort'],
            [...path, 'ports', i, 'containerPort'],
            'containerPort',
            c,
          )
        })
        integerAt(
          w,
          c.spec,
          ['lifecycle', 'preStop', 'sleep', 'seconds'],
          [...path, 'lifecycle', 'preStop', 'sleep', 'seconds'],
          'sleep.seconds',
          c,
        )
        for (const name of PROBES) {
          const probe = record(c.spec[name])
          if (probe === undefined) continue
          for (const field of PROBE_INTEGERS) {
            integerAt(w, probe, [field], [...path, name, field], `${name}.${field}`, c)
          }
          for (const handler of ['httpGet', 'tcpSocket', 'grpc']) {
            const port = get(probe, [handler, 'port'])
            if (typeof port === 'string' && /^\d+$/.test(port.trim())) {
              emit(
                w,
                [...path, name, handler, 'port'],
                `${name} port is ${describeValue(port)}: a quoted number is read as a port name, and a name needs a letter`,
                `port: ${port.trim()} (without quotes)`,
                { container: c },
              )
            }
          }
        }
      }
    }
    for (const hpa of model.autoscalers) {
      const spec = get(hpa.source.value, ['spec'])
      for (const field of ['minReplicas', 'maxReplicas']) {
        integerAt(hpa, spec, [field], ['spec', field], field)
      }
    }
    for (const b of model.budgets) {
      for (const field of ['minAvailable', 'maxUnavailable']) {
        intOrPercentAt(b, get(b.source.value, ['spec', field]), ['spec', field], field)
      }
    }
  },
}
