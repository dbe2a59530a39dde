// The objects the checker reasons about, built from parsed manifests: workloads with their
// pod template and containers, the Services that send them traffic, the
// PodDisruptionBudgets that cover them, and ConfigMaps that may hold LAMEDUCK_* settings.
import { isRecord, type ManifestObject, type Path } from './load.js'

export const WORKLOAD_KINDS = [
  'Deployment',
  'StatefulSet',
  'DaemonSet',
  'ReplicaSet',
  'Pod',
] as const
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number]

/** Kinds findings can point into; the parser keeps syntax trees (for positions) only for these. */
export const REPORTED_KINDS: ReadonlySet<string> = new Set<string>([
  ...WORKLOAD_KINDS,
  'Service',
  'PodDisruptionBudget',
])

/** Annotation listing rule ids (comma or space separated) not to report for the object. */
export const IGNORE_ANNOTATION = 'lameduck/ignore'

/** API groups each kind is read from; other groups (CRDs reusing a name) are skipped. */
const GROUPS: Record<string, readonly string[]> = {
  Deployment: ['apps', 'extensions'],
  StatefulSet: ['apps'],
  DaemonSet: ['apps', 'extensions'],
  ReplicaSet: ['apps', 'extensions'],
  Pod: [''],
  Service: [''],
  ConfigMap: [''],
  PodDisruptionBudget: ['policy'],
}

export interface ObjectInfo {
  kind: string
  name: string
  namespace: string | undefined
  source: ManifestObject
  /** Rule ids listed in the object's `lameduck/ignore` annotation. */
  ignore: ReadonlySet<string>
}

export interface Port {
  name: string | undefined
  containerPort: number
}

export interface Container {
  index: number
  name: string
  /** Path of the container relative to the object, e.g. `spec.template.spec.containers[0]`. */
  path: Path
  spec: Record<string, unknown>
  image: string | undefined
  ports: Port[]
}

export interface Workload extends ObjectInfo {
  kind: WorkloadKind
  /** Path of the pod spec: `spec.template.spec`, or `spec` for a Pod. */
  podPath: Path
  pod: Record<string, unknown>
  podLabels: Record<string, string>
  /** Desired replicas (spec.replicas, default 1); undefined for DaemonSets and Pods. */
  replicas: number | undefined
  /** Whether spec.replicas is written (an autoscaler may own it when it is not). */
  replicasWritten: boolean
  containers: Container[]
  /** Services in the input whose selector matches the pod template. */
  services: Service[]
  budgets: Budget[]
  /** Selected by a Service, or some container declares a port. */
  takesTraffic: boolean
  /**
   * The containers that receive traffic and get a termination timeline: those declaring a
   * port, or all of them when the workload takes traffic and none declares one.
   */
  serving: Container[]
}

export interface Service extends ObjectInfo {
  /** spec.selector; undefined when absent or empty (such a Service selects no pods). */
  selector: Record<string, string> | undefined
}

export interface LabelSelector {
  matchLabels: Record<string, string>
  matchExpressions: { key: string; operator: string; values: string[] }[]
}

export interface Budget extends ObjectInfo {
  /** spec.selector; undefined when absent (selects nothing), empty (selects all) when `{}`. */
  selector: LabelSelector | undefined
  minAvailable: number | string | undefined
  maxUnavailable: number | string | undefined
}

export interface ConfigMap extends ObjectInfo {
  data: Record<string, string>
}

export interface Model {
  objects: readonly ManifestObject[]
  workloads: Workload[]
  services: Service[]
  budgets: Budget[]
  configMaps: ConfigMap[]
  /** ConfigMaps by name (any namespace), for env lookups. */
  configMapsByName: Map<string, ConfigMap[]>
}

// Small readers for untyped manifest data: a wrong type reads as absent, so one odd field
// never stops the check of the rest.

export function get(value: unknown, path: Path): unknown {
  let current = value
  for (const key of path) {
    if (typeof key === 'number') current = Array.isArray(current) ? current[key] : undefined
    else current = isRecord(current) ? current[key] : undefined
    if (current === undefined) return undefined
  }
  return current
}

export function record(value: unknown): Record<string, unknown> | undefined {
  return isRecord(value) ? value : undefined
}

export function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : []
}

export function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined
}

export function integer(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined
}

function stringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {}
  if (!isRecord(value)) return out
  for (const [key, entry] of Object.entries(value)) {
    if (typeof entry === 'string' || typeof entry === 'number' || typeof entry === 'boolean') {
      out[key] = String(entry)
    }
  }
  return out
}

/** `${kind}/${name}`, how messages name an object. */
export function describe(object: ObjectInfo): string {
  return `${object.kind}/${object.name}`
}

/** Objects without a namespace are placed by `kubectl -n` or the Helm release: they match any. */
export function sameNamespace(a: ObjectInfo, b: ObjectInfo): boolean {
  return a.namespace === undefined || b.namespace === undefined || a.namespace === b.namespace
}

export function matchesSelector(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels)) {
    if (labels[key] !== value) return false
  }
  for (const { key, operator, values } of selector.matchExpressions) {
    const has = Object.hasOwn(labels, key)
    const value = labels[key]
    switch (operator) {
      case 'In':
        if (!has || !values.includes(value!)) return false
        break
      case 'NotIn':
        if (has && values.includes(value!)) return false
        break
      case 'Exists':
        if (!has) return false
        break
      case 'DoesNotExist':
        if (has) return false
        break
      default:
        return false
    }
  }
  return true
}

function labelSelector(value: unknown): LabelSelector | undefined {
  if (!isRecord(value)) return undefined
  return {
    matchLabels: stringMap(value['matchLabels']),
    matchExpressions: list(value['matchExpressions']).flatMap((entry) => {
      const key = text(get(entry, ['key']))
      const operator = text(get(entry, ['operator']))
      if (key === undefined || operator === undefined) return []
      return [{ key, operator, values: list(get(entry, ['values'])).map(String) }]
    }),
  }
}

function intOrString(value: unknown): number | string | undefined {
  return typeof value === 'number' || typeof value === 'string' ? value : undefined
}

function info(source: ManifestObject): ObjectInfo {
  const value = source.value
  const annotations = stringMap(get(value, ['metadata', 'annotations']))
  const ignore = new Set(
    (annotations[IGNORE_ANNOTATION] ?? '')
      .split(/[\s,]+/)
      .map((id) => id.trim())
      .filter((id) => id !== ''),
  )
  return {
    kind: String(value['kind']),
    name: text(get(value, ['metadata', 'name'])) ?? '(unnamed)',
    namespace: text(get(value, ['metadata', 'namespace'])),
    source,
    ignore,
  }
}

function isKind(value: Record<string, unknown>, kind: string): boolean {
  if (value['kind'] !== kind) return false
  const apiVersion = text(value['apiVersion'])
  if (apiVersion === undefined) return true
  const group = apiVersion.includes('/') ? apiVersion.slice(0, apiVersion.indexOf('/')) : ''
  return GROUPS[kind]?.includes(group) ?? false
}

function containers(pod: Record<string, unknown>, podPath: Path): Container[] {
  return list(pod['containers']).flatMap((spec, index) => {
    if (!isRecord(spec)) return []
    const ports = list(spec['ports']).flatMap((port) => {
      const containerPort = integer(get(port, ['containerPort']))
      return containerPort === undefined ? [] : [{ name: text(get(port, ['name'])), containerPort }]
    })
    return [
      {
        index,
        name: text(spec['name']) ?? `#${index}`,
        path: [...podPath, 'containers', index],
        spec,
        image: text(spec['image']),
        ports,
      },
    ]
  })
}

function workload(source: ManifestObject, kind: WorkloadKind): Workload | undefined {
  const value = source.value
  const podPath: Path = kind === 'Pod' ? ['spec'] : ['spec', 'template', 'spec']
  const pod = record(get(value, podPath))
  if (pod === undefined) return undefined
  const labelsPath: Path =
    kind === 'Pod' ? ['metadata', 'labels'] : ['spec', 'template', 'metadata', 'labels']
  const written = integer(get(value, ['spec', 'replicas']))
  const hasReplicas = kind === 'Deployment' || kind === 'StatefulSet' || kind === 'ReplicaSet'
  return {
    ...info(source),
    kind,
    podPath,
    pod,
    podLabels: stringMap(get(value, labelsPath)),
    replicas: hasReplicas ? (written ?? 1) : undefined,
    replicasWritten: written !== undefined,
    containers: containers(pod, podPath),
    services: [],
    budgets: [],
    takesTraffic: false,
    serving: [],
  }
}

export function buildModel(objects: readonly ManifestObject[]): Model {
  const model: Model = {
    objects,
    workloads: [],
    services: [],
    budgets: [],
    configMaps: [],
    configMapsByName: new Map(),
  }
  for (const source of objects) {
    const value = source.value
    const kind = WORKLOAD_KINDS.find((k) => isKind(value, k))
    if (kind !== undefined) {
      const found = workload(source, kind)
      if (found !== undefined) model.workloads.push(found)
    } else if (isKind(value, 'Service')) {
      const selector = stringMap(get(value, ['spec', 'selector']))
      model.services.push({
        ...info(source),
        selector: Object.keys(selector).length > 0 ? selector : undefined,
      })
    } else if (isKind(value, 'PodDisruptionBudget')) {
      model.budgets.push({
        ...info(source),
        selector: labelSelector(get(value, ['spec', 'selector'])),
        minAvailable: intOrString(get(value, ['spec', 'minAvailable'])),
        maxUnavailable: intOrString(get(value, ['spec', 'maxUnavailable'])),
      })
    } else if (isKind(value, 'ConfigMap')) {
      const map = { ...info(source), data: stringMap(value['data']) }
      model.configMaps.push(map)
      const named = model.configMapsByName.get(map.name)
      if (named === undefined) model.configMapsByName.set(map.name, [map])
      else named.push(map)
    }
  }
  // Workloads by each of their pod labels, so selecting is not services × workloads.
  const byLabel = new Map<string, Workload[]>()
  for (const w of model.workloads) {
    for (const [key, value] of Object.entries(w.podLabels)) {
      const id = `${key}=${value}`
      const list = byLabel.get(id)
      if (list === undefined) byLabel.set(id, [w])
      else list.push(w)
    }
  }
  const candidates = (selector: LabelSelector): readonly Workload[] => {
    const first = Object.entries(selector.matchLabels)[0]
    return first === undefined ? model.workloads : (byLabel.get(`${first[0]}=${first[1]}`) ?? [])
  }
  for (const s of model.services) {
    if (s.selector === undefined) continue
    const selector = { matchLabels: s.selector, matchExpressions: [] }
    for (const w of candidates(selector)) {
      if (sameNamespace(s, w) && matchesSelector(selector, w.podLabels)) w.services.push(s)
    }
  }
  for (const b of model.budgets) {
    if (b.selector === undefined) continue
    for (const w of candidates(b.selector)) {
      if (sameNamespace(b, w) && matchesSelector(b.selector, w.podLabels)) w.budgets.push(b)
    }
  }
  for (const w of model.workloads) {
    const withPorts = w.containers.filter((c) => c.ports.length > 0)
    w.takesTraffic = w.services.length > 0 || withPorts.length > 0
    w.serving = !w.takesTraffic ? [] : withPorts.length > 0 ? withPorts : w.containers
  }
  return model
}

/**
 * An int-or-percent field scaled to `total` the way the controllers do it (`25%` of 3 is
 * 0.75: rounded up gives 1, down gives 0). Undefined when the value is not one of the two.
 */
export function scaled(
  value: number | string,
  total: number,
  roundUp: boolean,
): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) ? value : undefined
  const match = /^(\d+)%$/.exec(value.trim())
  if (match === null) return undefined
  const exact = (Number(match[1]) * total) / 100
  return roundUp ? Math.ceil(exact) : Math.floor(exact)
}
