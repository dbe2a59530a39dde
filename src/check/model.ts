// The objects the checker reasons about, built from parsed manifests: workloads with their
// pod template and containers, the Services that send them traffic (and through which
// ports), the PodDisruptionBudgets that cover them, the HorizontalPodAutoscalers that set
// their replica count, and ConfigMaps that may hold LAMEDUCK_* settings.
import { type LameduckUse, lameduckUse } from './adoption.js'
import { containerArgv, idleCommand } from './commands.js'
import { imageInfo } from './images.js'
import { isRecord, type ManifestObject, type Path } from './load.js'
import { get, integer, list, record, text } from './values.js'

export const WORKLOAD_KINDS = [
  'Deployment',
  'StatefulSet',
  'DaemonSet',
  'ReplicaSet',
  'ReplicationController',
  'Rollout',
  'Pod',
] as const
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number]

/** Kinds findings can point into; the parser keeps syntax trees (for positions) only for these. */
export const REPORTED_KINDS: ReadonlySet<string> = new Set<string>([
  ...WORKLOAD_KINDS,
  'Service',
  'PodDisruptionBudget',
  'HorizontalPodAutoscaler',
])

/**
 * Port numbers that Prometheus and its exporters use by convention (Prometheus 9090, node
 * exporter 9100, CoreDNS's metrics 9153, ingress-nginx's 10254, the usual exporters).
 * A Service port aimed only at these carries scrapes, not user traffic.
 */
export const METRICS_PORTS: ReadonlySet<number> = new Set([
  9090, 9100, 9102, 9104, 9113, 9121, 9153, 9187, 9402, 10254,
])

/** Annotation listing rule ids (comma or space separated) not to report for the object. */
export const IGNORE_ANNOTATION = 'lameduck/ignore'

/** API groups each kind is read from; other groups (CRDs reusing a name) are skipped. */
const GROUPS: Record<string, readonly string[]> = {
  Deployment: ['apps', 'extensions'],
  StatefulSet: ['apps'],
  DaemonSet: ['apps', 'extensions'],
  ReplicaSet: ['apps', 'extensions'],
  ReplicationController: [''],
  Rollout: ['argoproj.io'],
  Pod: [''],
  Service: [''],
  HorizontalPodAutoscaler: ['autoscaling'],
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
  /** The node port it is published on (`hostPort`), when there is one. */
  hostPort?: number
  protocol: string
}

export interface Container {
  index: number
  name: string
  /** Path of the container relative to the object, e.g. `spec.template.spec.containers[0]`. */
  path: Path
  spec: Record<string, unknown>
  image: string | undefined
  ports: Port[]
  /** Why the container is taken for a lameduck app (see adoption.ts); undefined: it is not. */
  lameduck: LameduckUse | undefined
  /** The Service ports that send it user traffic (metrics ports excluded). */
  routes: Route[]
}

/** One Service port that reaches a container. */
export interface Route {
  service: Service
  port: ServicePort
}

export interface ServicePort {
  index: number
  name: string | undefined
  port: number | undefined
  /** targetPort as written (number or port name); the Service port when absent. */
  target: number | string | undefined
  /** TCP (the default), UDP or SCTP. */
  protocol: string
}

export interface Autoscaler extends ObjectInfo {
  minReplicas: number
  minWritten: boolean
}

export interface Workload extends ObjectInfo {
  kind: WorkloadKind
  /** Path of the pod spec: `spec.template.spec`, or `spec` for a Pod. */
  podPath: Path
  pod: Record<string, unknown>
  podLabels: Record<string, string>
  /**
   * Replicas the workload runs with: an autoscaler's minReplicas when one targets it, else
   * spec.replicas (default 1); undefined for DaemonSets and Pods, and when spec.replicas is
   * not an integer (the invalid-field rule reports that).
   */
  replicas: number | undefined
  /** Whether spec.replicas is written. */
  replicasWritten: boolean
  /** The HorizontalPodAutoscaler in the input that scales this workload. */
  autoscaler: Autoscaler | undefined
  containers: Container[]
  /** Services in the input whose selector matches the pod template. */
  services: Service[]
  budgets: Budget[]
  /** Some container is serving (see below). */
  takesTraffic: boolean
  /**
   * Declares container ports (other than metrics ones) but no Service in the input selects
   * it, so it is not checked as served (unless --assume-served).
   */
  unselected: boolean
  /**
   * The containers that receive user traffic and get a termination timeline: those a
   * Service sends traffic to through a port that is not only a metrics port, and the
   * lameduck containers that declare a port or whose pod a Service selects.
   */
  serving: Container[]
}

export interface Service extends ObjectInfo {
  /** spec.selector; undefined when absent or empty (such a Service selects no pods). */
  selector: Record<string, string> | undefined
  ports: ServicePort[]
  /** Named `metrics` or `*-metrics`: only scrapes go through it. */
  metricsOnly: boolean
  /** clusterIP: None: clients find the pods through DNS, not through kube-proxy. */
  headless: boolean
  /** The workloads it sends user traffic to. */
  backends: Workload[]
  /**
   * Not a Service in the input: the traffic the checker assumes (--assume-served), or the
   * node ports a DaemonSet publishes; how messages name it, instead of `Service/<name>`.
   */
  label?: string
}

/** An object of a kind the checker does not read, listed by --verbose. */
export interface Skipped {
  kind: string
  name: string
  file: string
  reason: string
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
  autoscalers: Autoscaler[]
  skipped: Skipped[]
  configMaps: ConfigMap[]
  /** ConfigMaps by name (any namespace), for env lookups. */
  configMapsByName: Map<string, ConfigMap[]>
}

// The readers of untyped manifest data live in values.ts (adoption.ts and images.ts use them
// and model.ts uses those two); re-exported here for the rules.
export { get, integer, list, record, text }

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

export function labelSelector(value: unknown): LabelSelector | undefined {
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
  // On the host's network every container port is a port of the node: the API server sets
  // each hostPort left out to the containerPort.
  const hostNetwork = pod['hostNetwork'] === true
  return list(pod['containers']).flatMap((spec, index) => {
    if (!isRecord(spec)) return []
    const ports = list(spec['ports']).flatMap((port) => {
      const containerPort = integer(get(port, ['containerPort']))
      if (containerPort === undefined) return []
      const written = integer(get(port, ['hostPort']))
      const hostPort =
        hostNetwork && (written === undefined || written === 0) ? containerPort : written
      return [
        {
          name: text(get(port, ['name'])),
          containerPort,
          ...(hostPort === undefined || hostPort <= 0 ? {} : { hostPort }),
          protocol: text(get(port, ['protocol'])) ?? 'TCP',
        },
      ]
    })
    return [
      {
        index,
        name: text(spec['name']) ?? `#${index}`,
        path: [...podPath, 'containers', index],
        spec,
        image: text(spec['image']),
        ports,
        lameduck: undefined,
        routes: [],
      },
    ]
  })
}

/** Where each kind keeps its pod template; undefined: the kind has none to read. */
function podPathOf(kind: WorkloadKind): Path {
  return kind === 'Pod' ? ['spec'] : ['spec', 'template', 'spec']
}

function workload(source: ManifestObject, kind: WorkloadKind): Workload | undefined {
  const value = source.value
  const podPath = podPathOf(kind)
  const pod = record(get(value, podPath))
  if (pod === undefined) return undefined
  const labelsPath: Path =
    kind === 'Pod' ? ['metadata', 'labels'] : ['spec', 'template', 'metadata', 'labels']
  const raw = get(value, ['spec', 'replicas'])
  const written = integer(raw)
  const hasReplicas = kind !== 'DaemonSet' && kind !== 'Pod'
  return {
    ...info(source),
    kind,
    podPath,
    pod,
    podLabels: stringMap(get(value, labelsPath)),
    // A replicas value that is not an integer is unknown, not the default.
    replicas: !hasReplicas ? undefined : raw === undefined ? 1 : written,
    replicasWritten: written !== undefined,
    autoscaler: undefined,
    containers: containers(pod, podPath),
    services: [],
    budgets: [],
    takesTraffic: false,
    unselected: false,
    serving: [],
  }
}

function servicePorts(value: unknown): ServicePort[] {
  return list(get(value, ['spec', 'ports'])).flatMap((entry, index) => {
    if (!isRecord(entry)) return []
    const port = integer(entry['port'])
    const targetRaw = entry['targetPort']
    const target =
      typeof targetRaw === 'number'
        ? targetRaw
        : typeof targetRaw === 'string'
          ? /^\d+$/.test(targetRaw)
            ? Number(targetRaw)
            : targetRaw
          : port
    return [
      {
        index,
        name: text(entry['name']),
        port,
        target,
        protocol: text(entry['protocol']) ?? 'TCP',
      },
    ]
  })
}

/** A port name that says it is the app's own port: `http`, `web`, `grpc`, `http-query`… */
function servingName(name: string | undefined): boolean {
  return (
    name !== undefined && /^(https?|web|grpc|ui|api)([-_].*)?$/i.test(name) && !metricsName(name)
  )
}

/**
 * A port name that says it carries metrics or other tooling, not users' requests
 * (`metrics`, `http-metrics`, `metrics-tls`, `http-profiling`, `probes`, `healthz`).
 */
function metricsName(name: string | undefined): boolean {
  return (
    name !== undefined &&
    /(^|[-_])(metrics[a-z]*|profiling|pprof|probes|healthz?)($|[-_])/i.test(name)
  )
}

/**
 * A port named for the members' traffic among themselves (memberlist gossip, Raft, Serf,
 * peers): on a DaemonSet's node ports it is not a way in for users.
 */
function peerName(name: string | undefined): boolean {
  return name !== undefined && /(^|[-_])(memberlist|gossip|peers?|raft|serf)($|[-_])/i.test(name)
}

/**
 * The containers a Service port reaches. A named target is the container port with that
 * name; a number is the container declaring it, or, since a container need not declare a
 * port to listen on it, the only container of the pod, or the only one that declares none.
 */
function reached(w: Workload, target: number | string | undefined): Container[] {
  if (target === undefined) return []
  if (typeof target === 'string') {
    return w.containers.filter((c) => c.ports.some((p) => p.name === target))
  }
  const declaring = w.containers.filter((c) => c.ports.some((p) => p.containerPort === target))
  if (declaring.length > 0) return declaring
  if (w.containers.length === 1) return w.containers
  const silent = w.containers.filter((c) => c.ports.length === 0)
  return silent.length === 1 ? silent : []
}

/** Whether a Service port carries only scrapes to `container`. */
function isMetricsRoute(service: Service, port: ServicePort, container: Container): boolean {
  if (service.metricsOnly) return true
  if (metricsName(port.name) || (typeof port.target === 'string' && metricsName(port.target))) {
    return true
  }
  const declared =
    typeof port.target === 'string'
      ? container.ports.find((p) => p.name === port.target)
      : container.ports.find((p) => p.containerPort === port.target)
  if (metricsName(declared?.name)) return true
  const number =
    declared?.containerPort ?? (typeof port.target === 'number' ? port.target : port.port)
  // A conventional metrics number is a scrape port unless the Service or the container
  // names it as the serving port, or the image serves its users there (Prometheus on 9090).
  if (
    number !== undefined &&
    METRICS_PORTS.has(number) &&
    !servingName(port.name) &&
    !servingName(declared?.name) &&
    imageInfo(container.image)?.servesOn?.includes(number) !== true
  )
    return true
  return imageInfo(container.image)?.metricsOnly === true
}

export interface ModelOptions {
  /** Take every container for a lameduck app (the CLI's --assume-lameduck). */
  assumeLameduck?: boolean
  /**
   * Take a workload that declares container ports but that no Service in the input selects
   * as served through those ports (the CLI's --assume-served): its Service is elsewhere.
   */
  assumeServed?: boolean
}

/** How messages name the Service (or what stands for one) that routes to a container. */
export function routeName(service: Service): string {
  return service.label ?? `Service/${service.name}`
}

/** Ports that carry user traffic as far as their name can tell (not `metrics`, `health`…). */
function servingPorts(c: Container): Port[] {
  return c.ports.filter(
    (p) => !metricsName(p.name) && !peerName(p.name) && !METRICS_PORTS.has(p.containerPort),
  )
}

/** A Service standing for traffic the input does not show: `ports` of `w`, named by `label`. */
function assumedService(w: Workload, ports: Port[], label: string): Service {
  return {
    kind: 'Service',
    name: w.name,
    namespace: w.namespace,
    source: w.source,
    ignore: new Set(),
    selector: w.podLabels,
    ports: ports.map((p, index) => ({
      index,
      name: p.name,
      port: p.hostPort ?? p.containerPort,
      target: p.containerPort,
      protocol: p.protocol,
    })),
    metricsOnly: false,
    headless: false,
    backends: [],
    label,
  }
}

export function buildModel(objects: readonly ManifestObject[], options: ModelOptions = {}): Model {
  const model: Model = {
    objects,
    workloads: [],
    services: [],
    budgets: [],
    autoscalers: [],
    skipped: [],
    configMaps: [],
    configMapsByName: new Map(),
  }
  const targets: { hpa: Autoscaler; kind: string; name: string }[] = []
  for (const source of objects) {
    const value = source.value
    const kind = WORKLOAD_KINDS.find((k) => isKind(value, k))
    if (kind !== undefined) {
      const found = workload(source, kind)
      if (found !== undefined) model.workloads.push(found)
      else {
        const about = info(source)
        model.skipped.push({
          kind: about.kind,
          name: about.name,
          file: source.file,
          reason:
            kind === 'Rollout' && get(value, ['spec', 'workloadRef']) !== undefined
              ? 'its pod template is in the Deployment named by spec.workloadRef'
              : 'no pod template',
        })
      }
    } else if (isKind(value, 'Service')) {
      const selector = stringMap(get(value, ['spec', 'selector']))
      const about = info(source)
      model.services.push({
        ...about,
        selector: Object.keys(selector).length > 0 ? selector : undefined,
        ports: servicePorts(value),
        metricsOnly: about.name === 'metrics' || about.name.endsWith('-metrics'),
        headless: get(value, ['spec', 'clusterIP']) === 'None',
        backends: [],
      })
    } else if (isKind(value, 'PodDisruptionBudget')) {
      model.budgets.push({
        ...info(source),
        selector: labelSelector(get(value, ['spec', 'selector'])),
        minAvailable: intOrString(get(value, ['spec', 'minAvailable'])),
        maxUnavailable: intOrString(get(value, ['spec', 'maxUnavailable'])),
      })
    } else if (isKind(value, 'HorizontalPodAutoscaler')) {
      const raw = get(value, ['spec', 'minReplicas'])
      const min = integer(raw)
      const hpa: Autoscaler = {
        ...info(source),
        minReplicas: min ?? 1,
        minWritten: min !== undefined,
      }
      model.autoscalers.push(hpa)
      const kind = text(get(value, ['spec', 'scaleTargetRef', 'kind']))
      const name = text(get(value, ['spec', 'scaleTargetRef', 'name']))
      // A minReplicas that is not an integer is reported by invalid-field; the target's own
      // replicas are then used.
      if (kind !== undefined && name !== undefined && (raw === undefined || min !== undefined)) {
        targets.push({ hpa, kind, name })
      }
    } else if (isKind(value, 'ConfigMap')) {
      const map = { ...info(source), data: stringMap(value['data']) }
      model.configMaps.push(map)
      const named = model.configMapsByName.get(map.name)
      if (named === undefined) model.configMapsByName.set(map.name, [map])
      else named.push(map)
    } else {
      const about = info(source)
      model.skipped.push({
        kind: about.kind,
        name: about.name,
        file: source.file,
        reason: WORKLOAD_KINDS.includes(about.kind as WorkloadKind)
          ? `API group of ${text(value['apiVersion']) ?? '?'} is not the Kubernetes one`
          : 'not a kind the checker reads',
      })
    }
  }
  for (const { hpa, kind, name } of targets) {
    const w = model.workloads.find(
      (w) => w.kind === kind && w.name === name && sameNamespace(hpa, w),
    )
    if (w === undefined || w.kind === 'DaemonSet' || w.kind === 'Pod') continue
    w.autoscaler = hpa
    w.replicas = hpa.minReplicas
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
    for (const c of w.containers) c.lameduck = lameduckUse(model, w, c, options)
    const idle = w.containers.every((c) => idleCommand(containerArgv(c.spec)))
    // A DaemonSet that publishes node ports (an ingress controller behind a load balancer
    // in front of the nodes) is served through them, whatever Service selects it.
    const published = w.containers.flatMap((c) => c.ports.filter((p) => p.hostPort !== undefined))
    if (w.kind === 'DaemonSet' && !idle) {
      const ports = published.filter(
        (p) => !metricsName(p.name) && !peerName(p.name) && !METRICS_PORTS.has(p.containerPort),
      )
      if (ports.length > 0) {
        const list = ports.map((p) => p.hostPort).join(', ')
        w.services.push(
          assumedService(
            w,
            ports,
            `the hostPort${ports.length > 1 ? 's' : ''} ${list} on every node`,
          ),
        )
      }
    }
    const own = w.containers.flatMap(servingPorts)
    if (w.services.length === 0 && own.length > 0 && !idle) {
      if (options.assumeServed === true) {
        w.services.push(assumedService(w, own, 'its Service (assumed by --assume-served)'))
      } else w.unselected = true
    }
    for (const service of w.services) {
      for (const port of service.ports) {
        for (const c of reached(w, port.target)) {
          if (isMetricsRoute(service, port, c) || idleCommand(containerArgv(c.spec))) continue
          c.routes.push({ service, port })
          if (!service.backends.includes(w)) service.backends.push(w)
        }
      }
    }
    // A lameduck app serves HTTP by definition: its declared ports (or, when no container
    // declares one, the pod a Service selects) are enough, as before lameduck was opt-in.
    const anyPorts = w.containers.some((c) => c.ports.length > 0)
    w.serving = w.containers.filter(
      (c) =>
        c.routes.length > 0 ||
        (c.lameduck !== undefined && (c.ports.length > 0 || (!anyPorts && w.services.length > 0))),
    )
    w.takesTraffic = w.serving.length > 0
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
