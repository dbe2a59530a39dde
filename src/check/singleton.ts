// Workloads that must run as one instance: more replicas would split their data, fight over
// one volume, or do the same work twice. For them "replicas: 2" is the wrong advice: a
// restart is an outage, and the owner plans for it (or replicates the program itself).
import { containerArgv, flagValue } from './commands.js'
import { containerInfo } from './images.js'
import { type Container, get, list, type Model, record, text, type Workload } from './model.js'

export interface Singleton {
  /** Why one instance: `MySQL holds its data in the pod`, for messages. */
  why: string
  /** What more replicas would do, for the fix: `each copy would hold its own data`. */
  more: string
  /** What helps instead, for the fix. */
  helps: string
  /** The pod's data is on a ReadWriteOnce volume: a surge or a second pod cannot mount it. */
  volume: boolean
  /**
   * Only the volume says so: the program may well run as several instances that share the
   * work (a clustered broker, a store gateway), so more replicas are not ruled out.
   */
  maybe?: boolean
}

/** Access modes of the PersistentVolumeClaims in the input, by namespace-less name. */
function claimModes(model: Model, w: Workload, name: string): string[] | undefined {
  for (const object of model.objects) {
    const value = object.value
    if (value['kind'] !== 'PersistentVolumeClaim') continue
    if (text(get(value, ['metadata', 'name'])) !== name) continue
    const namespace = text(get(value, ['metadata', 'namespace']))
    if (namespace !== undefined && w.namespace !== undefined && namespace !== w.namespace) continue
    return list(get(value, ['spec', 'accessModes'])).map(String)
  }
  return undefined
}

const SHARED_MODES = new Set(['ReadWriteMany', 'ReadOnlyMany'])

/** A persistentVolumeClaim volume of the pod that only one node can mount read-write. */
function readWriteOnceClaim(model: Model, w: Workload): string | undefined {
  for (const volume of list(get(w.pod, ['volumes']))) {
    const claim = text(get(volume, ['persistentVolumeClaim', 'claimName']))
    if (claim === undefined || get(volume, ['persistentVolumeClaim', 'readOnly']) === true) continue
    const modes = claimModes(model, w, claim)
    if (modes?.some((m) => SHARED_MODES.has(m))) continue
    return modes === undefined
      ? `PersistentVolumeClaim ${claim} (not in the input; ReadWriteOnce unless it says otherwise)`
      : `ReadWriteOnce PersistentVolumeClaim ${claim}`
  }
  return undefined
}

/** The value of an env variable written in the container, when it is a plain value. */
export function envValue(c: Container, name: string): string | undefined {
  for (const entry of list(c.spec['env'])) {
    const e = record(entry)
    if (e?.['name'] === name && (typeof e['value'] === 'string' || typeof e['value'] === 'number'))
      return String(e['value'])
  }
  return undefined
}

const LEADER_ELECTION_FLAGS = [
  'leader-elect',
  'leader-election',
  'enable-leader-election',
  'leader-elect-enabled',
]

/** The default ports of primary stores: a container that listens on one is that store. */
const STORE_PORTS: ReadonlyMap<number, string> = new Map([
  [5432, 'PostgreSQL'],
  [3306, 'MySQL'],
  [6379, 'Redis'],
  [27017, 'MongoDB'],
])

function storeByPort(c: Container): string | undefined {
  for (const p of c.ports) {
    const name = STORE_PORTS.get(p.containerPort)
    if (name !== undefined) return name
  }
  return undefined
}

/** Default ports of databases and brokers, whose clients hold long-lived connections. */
const SERVER_PORTS: ReadonlyMap<number, string> = new Map([
  ...STORE_PORTS,
  [5672, 'RabbitMQ'],
  [9092, 'Kafka'],
  [4222, 'NATS'],
  [2181, 'ZooKeeper'],
  [2379, 'etcd'],
  [9042, 'Cassandra'],
  [26257, 'CockroachDB'],
  [28015, 'RethinkDB'],
  [11211, 'memcached'],
])

/**
 * The database or broker `c` runs, from its image or its port: their clients hold
 * long-lived connections and reconnect when one closes, so a delay before SIGTERM does not
 * spare them anything.
 */
export function databaseOrBroker(c: Container): string | undefined {
  const info = containerInfo(c)
  if (info?.connectionClients === true) return info.name
  for (const p of c.ports) {
    const name = SERVER_PORTS.get(p.containerPort)
    if (name !== undefined) return name
  }
  return undefined
}

/** Why `c` alone makes its pod a singleton, from its image, command and env. */
/** A ConfigMap mounted or loaded by the pod that mentions `word` (cluster settings). */
function podConfigMentions(model: Model, w: Workload, word: RegExp): boolean {
  const names = [
    ...list(get(w.pod, ['volumes'])).map((v) => text(get(v, ['configMap', 'name']))),
    ...w.containers.flatMap((c) =>
      list(c.spec['envFrom']).map((e) => text(get(e, ['configMapRef', 'name']))),
    ),
  ]
  return names.some((name) =>
    (name === undefined ? [] : (model.configMapsByName.get(name) ?? [])).some((map) =>
      Object.values(map.data).some((value) => word.test(value)),
    ),
  )
}

function containerSingleton(model: Model, w: Workload, c: Container): Singleton | undefined {
  const argv = containerArgv(c.spec) ?? []
  const leader = flagValue(argv, LEADER_ELECTION_FLAGS)
  if (leader === 'false') {
    return {
      why: `${c.name} runs with leader election off (${argv.find((w) => w.includes('leader'))})`,
      more: 'two copies would both act on the same objects',
      helps: 'turn leader election on before running more copies',
      volume: false,
    }
  }
  const voters = envValue(c, 'KAFKA_CONTROLLER_QUORUM_VOTERS')
  if (voters !== undefined && voters.split(',').filter((v) => v.trim() !== '').length === 1) {
    return {
      why: 'a single Kafka node, the only voter of its KRaft quorum',
      more: 'another copy would be a second node with the same id, not a replica',
      helps: 'a cluster of 3 controllers with replicated topics, or a managed Kafka',
      volume: false,
    }
  }
  if (envValue(c, 'discovery.type') === 'single-node') {
    return {
      why: `${c.name} runs as a single-node cluster (discovery.type: single-node)`,
      more: 'each copy would be its own cluster with its own data',
      helps: 'a cluster of 3 nodes with replicas of each index',
      volume: false,
    }
  }
  // A Locust load generator: its users are the load; a second copy doubles it.
  if (
    /(^|\/)locust$/.test(c.image?.split(':')[0] ?? '') ||
    list(c.spec['env']).some((e) => text(record(e)?.['name'])?.startsWith('LOCUST_') === true)
  ) {
    return {
      why: 'a Locust load generator (its Service is the web UI)',
      more: 'a second copy would run its own users and double the load',
      helps: "Locust's own master and workers, if more load is wanted",
      volume: false,
    }
  }
  // Spark's standalone master: a second one without ZooKeeper recovery is a second cluster.
  if (argv.some((word) => /(^|\/)start-master(\.sh)?$/.test(word))) {
    return {
      why: 'a Spark standalone master',
      more: 'a second master without ZooKeeper recovery would be a second cluster with its own workers',
      helps: "Spark's ZooKeeper recovery mode, if the master must survive restarts",
      volume: false,
    }
  }
  const info = containerInfo(c)
  // A RabbitMQ or NATS server is one broker unless its configuration forms a cluster.
  const clustered =
    (info?.name === 'RabbitMQ' && podConfigMentions(model, w, /cluster_formation/)) ||
    (info?.name === 'NATS' && podConfigMentions(model, w, /\bcluster\s*[{:]/))
  const sharedDatabase =
    info?.name === 'Grafana' &&
    list(c.spec['env']).some((e) =>
      /^GF_DATABASE_(TYPE|URL|HOST)$/.test(text(record(e)?.['name']) ?? ''),
    )
  const known = clustered || sharedDatabase ? undefined : info?.singleton?.(argv, w.kind)
  if (known !== undefined) return { ...known, volume: false }
  const store = info?.stateful === true ? info.name : storeByPort(c)
  if (store !== undefined) {
    return {
      why: `${store} keeps its data in the pod${info?.stateful === true ? '' : ` (port ${c.ports.find((p) => STORE_PORTS.get(p.containerPort) === store)?.containerPort})`}`,
      more: `each ${store} copy would hold its own data`,
      helps: `replicate ${store} itself (a primary with replicas and failover, or a managed service)`,
      volume: false,
    }
  }
  return undefined
}

/**
 * Why `w` must run as a single instance, or undefined. Only workloads that run one replica
 * (or a Pod) are asked: with more, the manifest itself says they can.
 */
export function singletonOf(model: Model, w: Workload): Singleton | undefined {
  if (w.kind === 'DaemonSet') return undefined
  if (w.replicas !== undefined && w.replicas !== 1) return undefined
  for (const c of w.containers) {
    const found = containerSingleton(model, w, c)
    if (found !== undefined) {
      const claim = readWriteOnceClaim(model, w)
      return claim === undefined ? found : { ...found, volume: true }
    }
  }
  const claim = readWriteOnceClaim(model, w)
  // A StatefulSet gives each replica its own claim: its volume alone does not rule more out.
  if (claim !== undefined && w.kind !== 'StatefulSet') {
    return {
      why: `its data is on the ${claim}`,
      more: 'a second pod on another node cannot mount it, and two on one node would share one data directory',
      helps:
        'shared storage (ReadWriteMany) or replication in the app, if it can run as several instances',
      volume: true,
    }
  }
  const templates = list(get(w.source.value, ['spec', 'volumeClaimTemplates']))
  if (w.kind === 'StatefulSet' && (templates.length > 0 || claim !== undefined)) {
    const names =
      templates.length > 0
        ? templates.map((t) => text(get(t, ['metadata', 'name'])) ?? '?').join(', ')
        : claim
    return {
      why: `a StatefulSet of 1 with its data on its own volume (${names})`,
      more: 'each new replica starts with an empty volume of its own, not a copy of the data',
      helps: 'more replicas only if the program shares the work or replicates its data itself',
      volume: true,
      maybe: true,
    }
  }
  return undefined
}
