// What the checker knows about well-known images, in one table: the signal each one treats
// as "stop gracefully", whether it has a shell, whether it only serves metrics, and whether
// it drains on its own before closing its listener.
import {
  containerArgv,
  flagValue,
  programName,
  shellScript,
  simpleCommands,
  withoutInit,
} from './commands.js'
import type { Path } from './load.js'
import type { Container, Model, Workload } from './model.js'
import { durationSeconds, get, list, text } from './values.js'

export interface ImageInfo {
  /** What the table calls the image in messages. */
  name: string
  /** Signals on which the program shuts down gracefully (its image's STOPSIGNAL among them). */
  gracefulSignals?: readonly string[]
  /** The image ships no shell and no `sleep`: exec preStop hooks cannot run. */
  noShell?: boolean
  /**
   * Ports it serves its users on although they are conventional metrics ports (Prometheus
   * and Thanos on 9090): a Service port to them is user traffic.
   */
  servesOn?: readonly number[]
  /** A consensus system (etcd, ZooKeeper, Consul…): losing a majority of its members stops it. */
  quorum?: boolean
  /**
   * Keeps serving for a while after SIGTERM on its own, for a time the manifest does not
   * show: a preStop delay is not needed.
   */
  drainsItself?: boolean
  /** Only serves metrics for Prometheus: a Service port into it is not user traffic. */
  metricsOnly?: boolean
  /**
   * Keeps its data in the one process (a primary store): more copies of the same workload
   * would split the data, so "more replicas" is not a fix for it; replication is.
   */
  stateful?: boolean
  /**
   * Why the program must run as one instance, from its arguments (the Thanos compactor,
   * Jaeger all-in-one); undefined when it may run as several.
   */
  singleton?: (
    argv: readonly string[],
    kind: string,
  ) => { why: string; more: string; helps: string } | undefined
  /**
   * A database or message broker: its clients hold long-lived connections and reconnect
   * when one closes, through the Service or to the pods themselves; a delay before SIGTERM
   * does not spare them the reconnect.
   */
  connectionClients?: boolean
  /**
   * Seconds the program keeps serving after SIGTERM before it closes its listener, read
   * from its configuration in the input; undefined when it does not (or it cannot be seen).
   */
  drainSeconds?: (
    model: Model,
    w: Workload,
    c: Container,
  ) => { seconds: number; where: string } | undefined
  /**
   * How long the program may go on finishing in-flight requests once told to stop, as its
   * configuration in the input bounds it (nginx's worker_shutdown_timeout); undefined when
   * nothing bounds it or the configuration is not in the input.
   */
  shutdownTimeout?: (model: Model, w: Workload, c: Container) => ShutdownTimeout | undefined
}

export interface ShutdownTimeout {
  seconds: number
  /** What sets it, for messages: `worker_shutdown_timeout 60s in ConfigMap web key nginx.conf`. */
  what: string
  /** Where, relative to the workload. */
  path: Path
  /**
   * The pod's preStop hook is what stops the program and waits for it (ingress-nginx's
   * /wait-shutdown): the hook's time is this time, not added to it.
   */
  byPreStop?: boolean
}

interface Entry extends ImageInfo {
  /** Matched against the image reference without its registry host, tag and digest. */
  repository: RegExp
  /** Matched against the tag, when the entry depends on it. */
  tag?: RegExp
}

/**
 * CoreDNS keeps answering for `lameduck DURATION` (health plugin) after SIGTERM while its
 * health endpoint reports unhealthy; the Corefile is in a ConfigMap the pod mounts.
 */
function corednsLameduck(model: Model, w: Workload) {
  for (const { name, key, value } of mountedConfig(model, w)) {
    const match = /\blameduck\s+(\d+(?:\.\d+)?)(ms|s|m)\b/.exec(value)
    if (match === null) continue
    const unit = { ms: 0.001, s: 1, m: 60 }[match[2] as 'ms' | 's' | 'm']
    return { seconds: Number(match[1]) * unit, where: `lameduck in ConfigMap ${name} ${key}` }
  }
  return undefined
}

/** Each key of each ConfigMap in the input that the pod mounts as a volume, with its volume's path. */
function* mountedConfig(
  model: Model,
  w: Workload,
): Generator<{ name: string; key: string; value: string; path: Path }> {
  for (const [index, volume] of list(get(w.pod, ['volumes'])).entries()) {
    const name = text(get(volume, ['configMap', 'name']))
    if (name === undefined) continue
    for (const map of model.configMapsByName.get(name) ?? []) {
      for (const [key, value] of Object.entries(map.data)) {
        yield { name, key, value, path: [...w.podPath, 'volumes', index] }
      }
    }
  }
}

/** nginx's `worker_shutdown_timeout` in a configuration file the pod mounts from a ConfigMap. */
function nginxShutdownTimeout(model: Model, w: Workload): ShutdownTimeout | undefined {
  for (const { name, key, value, path } of mountedConfig(model, w)) {
    const match = /^\s*worker_shutdown_timeout\s+([0-9a-z]+)\s*;/m.exec(value)
    const seconds = match === null ? undefined : durationSeconds(match[1]!)
    if (seconds === undefined) continue
    return {
      seconds,
      what: `worker_shutdown_timeout ${match![1]} (ConfigMap ${name} ${key})`,
      path,
    }
  }
  return undefined
}

/** ingress-nginx's default worker-shutdown-timeout (internal/ingress/controller/config). */
const INGRESS_NGINX_WORKER_SHUTDOWN = '240s'

/**
 * ingress-nginx on SIGTERM waits `--shutdown-grace-period` seconds (0 by default), then quits
 * nginx, whose workers finish their requests for up to the `worker-shutdown-timeout` key of
 * the controller's ConfigMap (`--configmap`), 240 s by default. Its manifests stop it from
 * the preStop hook `/wait-shutdown`, which returns once the controller is done.
 */
function ingressNginxShutdown(
  model: Model,
  w: Workload,
  c: Container,
): ShutdownTimeout | undefined {
  const argv = containerArgv(c.spec) ?? []
  const path = [...c.path, c.spec['args'] !== undefined ? 'args' : 'command']
  const graceFlag = flagValue(argv, ['shutdown-grace-period'])
  const grace = graceFlag === undefined ? 0 : durationSeconds(graceFlag)
  if (grace === undefined) return undefined
  let value = INGRESS_NGINX_WORKER_SHUTDOWN
  let what = `worker-shutdown-timeout ${value} (ingress-nginx's default)`
  const ref = flagValue(argv, ['configmap'])
  if (ref !== undefined) {
    const slash = ref.lastIndexOf('/')
    const written = slash === -1 ? undefined : ref.slice(0, slash)
    const name = ref.slice(slash + 1)
    const namespace = written === undefined || written.startsWith('$(') ? w.namespace : written
    const map = (model.configMapsByName.get(name) ?? []).find(
      (m) => (m.namespace ?? 'default') === (namespace ?? 'default'),
    )
    // Its settings are not in the input: the timeout is not known.
    if (map === undefined) return undefined
    const set = map.data['worker-shutdown-timeout']
    if (set !== undefined) {
      value = set
      what = `worker-shutdown-timeout ${set} (ConfigMap ${name})`
    }
  }
  const seconds = durationSeconds(value)
  if (seconds === undefined) return undefined
  const preStop = list(get(c.spec, ['lifecycle', 'preStop', 'exec', 'command']))
  return {
    seconds: grace + seconds,
    what: grace > 0 ? `--shutdown-grace-period ${graceFlag} + ${what}` : what,
    path,
    byPreStop: /(^|\/)wait-shutdown$/.test(text(preStop[0]) ?? ''),
  }
}

/**
 * podinfo waits 3 s after SIGTERM before shutting its servers down, unless it runs with
 * `--level=debug` (pkg/signals/shutdown.go in stefanprodan/podinfo).
 */
function podinfoDelay(_model: Model, _w: Workload, c: Container) {
  const argv = containerArgv(c.spec) ?? []
  const debug = argv.some(
    (word, i) => word === '--level=debug' || (word === '--level' && argv[i + 1] === 'debug'),
  )
  return debug ? undefined : { seconds: 3, where: "podinfo's own shutdown delay" }
}

/** Gatekeeper waits `--shutdown-delay` (10 s by default) after SIGTERM before it stops serving. */
function gatekeeperDelay(_model: Model, _w: Workload, c: Container) {
  const value = flagValue(containerArgv(c.spec) ?? [], ['shutdown-delay'])
  if (value === undefined)
    return { seconds: 10, where: "Gatekeeper's --shutdown-delay (10 s default)" }
  const seconds = durationSeconds(value)
  if (seconds === undefined) return undefined
  return { seconds, where: `Gatekeeper's --shutdown-delay=${value}` }
}

const one = (why: string, more: string, helps: string) => () => ({ why, more, helps })

const IMAGES: readonly Entry[] = [
  { name: 'podinfo', repository: /(^|\/)podinfo$/, drainSeconds: podinfoDelay },
  // nginx: SIGQUIT is the graceful shutdown (the official image's STOPSIGNAL); SIGTERM is fast.
  {
    name: 'nginx',
    repository: /(^|\/)(nginx|nginx-unprivileged|openresty)$/,
    gracefulSignals: ['SIGQUIT'],
    shutdownTimeout: nginxShutdownTimeout,
  },
  {
    name: 'ingress-nginx',
    repository: /(^|\/)ingress-nginx\/controller(-chroot)?$/,
    shutdownTimeout: ingressNginxShutdown,
  },
  // Apache httpd: SIGWINCH is graceful-stop (the official image's STOPSIGNAL).
  { name: 'httpd', repository: /(^|\/)httpd$/, gracefulSignals: ['SIGWINCH'] },
  // HAProxy: SIGUSR1 is the soft stop (the official image's STOPSIGNAL); SIGTERM is hard.
  { name: 'haproxy', repository: /(^|\/)haproxy$/, gracefulSignals: ['SIGUSR1', 'SIGTERM'] },
  // php-fpm: SIGQUIT is the graceful stop (the official php *-fpm images' STOPSIGNAL).
  { name: 'php-fpm', repository: /(^|\/)php$/, tag: /fpm/, gracefulSignals: ['SIGQUIT'] },
  // PostgreSQL: SIGINT is the fast shutdown the official image stops with; SIGTERM is smart.
  {
    name: 'PostgreSQL',
    repository: /(^|\/)postgres(ql)?$/,
    gracefulSignals: ['SIGINT', 'SIGTERM'],
    stateful: true,
    connectionClients: true,
  },
  {
    name: 'Redis',
    repository: /(^|\/)(redis|redis-stack-server|valkey)$/,
    stateful: true,
    connectionClients: true,
  },
  {
    name: 'MySQL',
    repository: /(^|\/)(mysql|mariadb|percona-server|percona-xtradb-cluster)$/,
    stateful: true,
    connectionClients: true,
  },
  { name: 'MongoDB', repository: /(^|\/)mongo(db)?$/, stateful: true, connectionClients: true },
  {
    name: 'DocumentDB',
    repository: /(^|\/)documentdb(-local)?$/,
    stateful: true,
    connectionClients: true,
  },
  {
    name: 'the Zalando Postgres operator',
    repository: /(^|\/)postgres-operator$/,
    singleton: one(
      'the Zalando Postgres operator runs without leader election',
      'two operators would both act on every Postgres cluster',
      'nothing: run one, and keep its restart short (its clusters keep serving meanwhile)',
    ),
  },
  {
    name: 'Zeppelin',
    repository: /(^|\/)zeppelin$/,
    singleton: one(
      'Zeppelin keeps its notebooks in the pod',
      'each copy would have its own notebooks and interpreters',
      'a shared notebook storage, if notebooks must survive restarts',
    ),
  },
  {
    name: 'Selenium Grid hub',
    repository: /(^|\/)selenium\/hub$/,
    singleton: one(
      'the Selenium Grid hub is the one its nodes register with',
      'each hub would have its own nodes and sessions, and a session would fail on the other',
      'nothing: one hub per grid',
    ),
  },
  {
    name: 'flagd',
    repository: /(^|\/)open-feature\/flagd$/,
    singleton: (argv) =>
      argv.some((w) => w.startsWith('file:') || w.startsWith('/'))
        ? {
            why: 'flagd serves the flags from a file in its own pod',
            more: 'each copy would serve its own copy of the file, and a change made in one pod would not reach the other',
            helps:
              'a flag source all copies share (a ConfigMap or a flag service), then more replicas',
          }
        : undefined,
  },
  // Databases and brokers that cluster on their own: their clients reconnect to other nodes.
  ...(
    [
      ['Cassandra', /(^|\/)cassandra$/],
      ['RethinkDB', /(^|\/)rethinkdb$/],
      ['Elasticsearch', /(^|\/)(elasticsearch|opensearch)$/],
      ['Hazelcast', /(^|\/)hazelcast(-kubernetes)?$/],
      // Not databases, but their clients retry refused connections the same way: S3 SDKs,
      // MySQL connection pools behind the router, OTLP exporters, Prometheus sending alerts.
      ['MinIO', /(^|\/)minio\/minio$/],
      ['MySQL Router', /(^|\/)mysql-router$/],
      ['the OpenTelemetry Collector', /(^|\/)opentelemetry-collector(-contrib|-k8s)?$/],
    ] as const
  ).map(([name, repository]): Entry => ({ name, repository, connectionClients: true })),
  // Raft and ZAB: a majority of the members must be up, so evictions must go one at a time.
  ...(
    [
      ['CockroachDB', /(^|\/)cockroach$/],
      ['ZooKeeper', /(^|\/)(zookeeper|kubernetes-zookeeper|cp-zookeeper)$/],
      ['etcd', /(^|\/)etcd$/],
      ['Consul', /(^|\/)consul$/],
      ['Kafka', /(^|\/)(cp-kafka|kafka|cp-server)$/],
      ['Vault', /(^|\/)vault$/],
    ] as const
  ).map(
    ([name, repository]): Entry => ({ name, repository, connectionClients: true, quorum: true }),
  ),
  // A RabbitMQ or NATS server is one broker unless its configuration (a ConfigMap the pod
  // mounts) forms a cluster: more copies are more brokers, each with its own queues.
  ...(
    [
      ['RabbitMQ', /(^|\/)rabbitmq$/],
      ['NATS', /(^|\/)(nats|nats-streaming)$/],
    ] as const
  ).map(
    ([name, repository]): Entry => ({
      name,
      repository,
      connectionClients: true,
      singleton: () => ({
        why: `a single ${name} broker`,
        more: `each copy would be a separate ${name} broker with its own queues, not a replica`,
        helps: `a ${name} cluster (a StatefulSet with cluster formation), or a managed broker`,
      }),
    }),
  ),
  {
    name: 'Jaeger all-in-one',
    repository: /^jaegertracing\/(all-in-one|jaeger)$/,
    singleton: one(
      'Jaeger all-in-one keeps its traces in its own storage (in memory unless configured)',
      'each copy would hold its own traces, and the UI would show whichever it reaches',
      'a Jaeger with shared storage (collector and query apart), if traces must survive restarts',
    ),
  },
  {
    name: 'MetalLB controller',
    repository: /(^|\/)metallb\/controller$/,
    singleton: one(
      'the MetalLB controller assigns addresses without leader election',
      'two controllers would hand out the same IPs',
      'nothing: run one, and keep its restart short',
    ),
  },
  {
    name: 'Prometheus',
    repository: /(^|\/)prometheus$/,
    servesOn: [9090],
    singleton: one(
      'Prometheus keeps its time series in the pod',
      'a second copy would scrape on its own and answer queries with its own gaps',
      'an HA pair behind a deduplicating query layer (Thanos Query), if gaps in the data matter',
    ),
  },
  {
    name: 'Alertmanager',
    repository: /(^|\/)alertmanager$/,
    connectionClients: true,
    singleton: (argv) =>
      argv.some((w) => w.startsWith('--cluster.peer'))
        ? undefined
        : {
            why: 'Alertmanager runs without cluster peers',
            more: 'a second one without --cluster.peer would send every notification twice',
            helps: 'two or three peers with --cluster.peer, then more replicas',
          },
  },
  {
    name: 'Grafana',
    repository: /(^|\/)grafana\/grafana(-oss|-enterprise)?$/,
    singleton: one(
      'Grafana keeps users, sessions and edited dashboards in its own SQLite file unless a database is configured',
      'each copy would have its own users and edits',
      'an external database (GF_DATABASE_TYPE and its URL), then more replicas',
    ),
  },
  // knative.dev/pkg servers (Knative, Tekton) keep serving after SIGTERM while their
  // readiness fails (its network drainer), before they shut down.
  {
    name: 'a knative.dev/pkg server',
    repository: /(^|\/)(knative\.dev|github\.com\/tektoncd|knative-releases|tekton-releases)\//,
    drainsItself: true,
  },
  {
    name: 'Thanos',
    repository: /(^|\/)thanos$/,
    servesOn: [9090],
    singleton: (argv) =>
      argv.includes('replicate')
        ? {
            why: 'Thanos bucket replication must run alone',
            more: 'two replicators would copy the same blocks twice',
            helps: 'nothing: replication is a background job, a restart only delays it',
          }
        : argv.includes('compact')
          ? {
              why: 'the Thanos compactor must run alone per bucket',
              more: 'two compactors on one bucket would corrupt or duplicate its blocks',
              helps: 'nothing: compaction is a background job, a restart only delays it',
            }
          : undefined,
  },
  { name: 'Gatekeeper', repository: /(^|\/)gatekeeper$/, drainSeconds: gatekeeperDelay },
  { name: 'coredns', repository: /(^|\/)coredns$/, drainSeconds: corednsLameduck },
  // Distroless and Chainguard images: no shell (their :debug and -dev tags add busybox).
  { name: 'distroless', repository: /(^|\/)distroless\//, tag: /^(?!.*debug)/, noShell: true },
  { name: 'chainguard', repository: /^chainguard\//, tag: /^(?!.*-dev)/, noShell: true },
  // Prometheus exporters and the proxy that guards their /metrics.
  { name: 'kube-rbac-proxy', repository: /(^|\/)kube-rbac-proxy$/, metricsOnly: true },
  { name: 'node-exporter', repository: /(^|\/)node-exporter$/, metricsOnly: true },
  { name: 'kube-state-metrics', repository: /(^|\/)kube-state-metrics$/, metricsOnly: true },
  { name: 'an exporter', repository: /(^|\/)[a-z0-9-]+[-_]exporter$/, metricsOnly: true },
]

/** Splits `registry.example.com:5000/team/app:1.2@sha256:…` into repository path and tag. */
export function parseImage(image: string): { repository: string; tag: string } {
  const withoutDigest = image.split('@', 1)[0]!
  const slash = withoutDigest.lastIndexOf('/')
  const colon = withoutDigest.lastIndexOf(':')
  const tag = colon > slash ? withoutDigest.slice(colon + 1) : ''
  let repository = colon > slash ? withoutDigest.slice(0, colon) : withoutDigest
  const first = repository.split('/', 1)[0]!
  // The first part is a registry host when it has a dot or a port, or is localhost.
  if (repository.includes('/') && (/[.:]/.test(first) || first === 'localhost')) {
    repository = repository.slice(first.length + 1)
  }
  // gcr.io/distroless/… keeps its `distroless/` prefix; cgr.dev/chainguard/… its `chainguard/`.
  return { repository, tag }
}

/** What the table knows about `image`; undefined for images it does not list. */
export function imageInfo(image: string | undefined): ImageInfo | undefined {
  if (image === undefined) return undefined
  const { repository, tag } = parseImage(image)
  return IMAGES.find(
    (e) => e.repository.test(repository) && (e.tag === undefined || e.tag.test(tag)),
  )
}

/**
 * Programs known by the script or binary that starts them, whatever image they run from:
 * the Apache Kafka distribution (and the images built on it) ships ZooKeeper's start script
 * too, and a plain JRE image runs whatever it is given.
 */
const PROGRAMS: readonly (readonly [RegExp, string])[] = [
  [/^(zkServer|zookeeper-server-start)(\.sh)?$/, 'ZooKeeper'],
  [/^kafka-server-start(\.sh)?$/, 'Kafka'],
]

/** The table's name for the program `argv` starts (directly, or as a command of `sh -c`). */
function startedProgram(argv: readonly string[] | undefined): string | undefined {
  if (argv === undefined) return undefined
  const direct = withoutInit(argv)
  const script = shellScript(direct)
  const commands =
    script === undefined
      ? [direct]
      : simpleCommands(script).map((words) => (words[0] === 'exec' ? words.slice(1) : words))
  for (const words of commands) {
    const name = programName(words[0])
    const known = PROGRAMS.find(([pattern]) => pattern.test(name))
    if (known !== undefined) return known[1]
  }
  return undefined
}

/**
 * What the table knows about the program container `c` runs: by the command that starts
 * it when the table knows that command, else by its image.
 */
export function containerInfo(c: Pick<Container, 'spec' | 'image'>): ImageInfo | undefined {
  const program = startedProgram(containerArgv(c.spec))
  const entry = program === undefined ? undefined : IMAGES.find((e) => e.name === program)
  return entry ?? imageInfo(c.image)
}

/** Known to have neither a shell nor `sleep`. */
export function lacksShell(image: string | undefined): boolean {
  return imageInfo(image)?.noShell === true
}
