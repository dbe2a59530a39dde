// lameduck rollout [options] -- <command> [args...]
import { constants } from 'node:fs'
import { access, mkdir, stat, writeFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { CLIENT_KINDS } from '../rollout/clients/index.js'
import { FROM_FLAGS, type FromKey, loadDeployment } from '../rollout/from.js'
import { LabAborted, LabError, runLab } from '../rollout/lab.js'
import { POST_BODY_BYTES } from '../rollout/load.js'
import {
  DEFAULTS,
  formatDuration,
  LabOptionError,
  type LabOptions,
  LIMITS,
  parseDuration,
  parseEnv,
  parseIngressKind,
  parseInteger,
  parseIntOrPercent,
  parseServiceKind,
  parseWeightedClient,
  parseWeightedPath,
  validate,
} from '../rollout/options.js'
import { killAllPodGroups } from '../rollout/process.js'
import { renderHtml } from '../rollout/report/html.js'
import { progress } from '../rollout/report/progress.js'
import { renderText } from '../rollout/report/text.js'
import type { LabResult } from '../rollout/result.js'
import { parseArgsMessage } from './args.js'
import { CliError } from './errors.js'
import { packageVersion } from './version.js'

/** Exit code after Ctrl-C, as a shell reports a process ended by SIGINT. */
const EXIT_INTERRUPTED = 130
/** Exit code when no failure exceeded --max-failures but a deleted pod carried no traffic across its shutdown. */
export const EXIT_INCONCLUSIVE = 3

function exitCode(result: LabResult): number {
  if (result.verdict.status === 'pass') return 0
  return result.verdict.status === 'inconclusive' ? EXIT_INCONCLUSIVE : 1
}

const d = formatDuration

export const HELP = `Usage: lameduck rollout [options] -- <command> [<args>...]

Runs <command> as the replicas of a Deployment behind a local model of a Kubernetes Service,
sends HTTP load through it (a mix of request shapes and client kinds), performs rolling
updates the way a Deployment does, and reports every failed request with a diagnosis. Each
pod gets KUBERNETES_SERVICE_HOST/_PORT, HOSTNAME (the pod's name) and its own port in $PORT.
Exit code: 0 when failures <= --max-failures, 1 otherwise, 2 on bad input or when the run
cannot be carried out, 3 when inconclusive (no failure, but a deleted pod carried no request
across its shutdown), 130 when interrupted (the partial reports are still written).
Durations: 500ms, 2s, 1m, or a bare number of seconds. The model: docs/lab.md.

Deployment
  --from <deployment.yaml>        take replicas, strategy, minReadySeconds, progressDeadline,
                                  the grace period, the first container's readiness probe,
                                  preStop sleep and env from your Deployment; flags given here
                                  win; the report says where each setting came from
                                  (default: none, the flags and their defaults)
  --replicas <n>                  spec.replicas (default ${DEFAULTS.replicas})
  --rollouts <n>                  rolling updates, one after another (default ${DEFAULTS.rollouts})
  --max-surge <n>|<p>%            maxSurge: pods above replicas during an update; % rounds up
                                  (default 25%)
  --max-unavailable <n>|<p>%      maxUnavailable: pods below replicas; % rounds down
                                  (default 25%)
  --min-ready <duration>          minReadySeconds: a new pod counts once ready this long
                                  (default ${d(DEFAULTS.minReadyMs)})
  --progress-deadline <duration>  progressDeadlineSeconds: give up when pods do not become ready
                                  for this long (default ${d(DEFAULTS.progressDeadlineMs)}; Kubernetes: 600s)
  --name <name>                   pod name prefix (default ${DEFAULTS.name})
Pod
  --termination-grace-period <duration>
                                  terminationGracePeriodSeconds; SIGKILL then, but never sooner
                                  than 2s after SIGTERM (default ${d(DEFAULTS.gracePeriodMs)})
  --pre-stop-sleep <duration>     lifecycle.preStop sleep before SIGTERM (default ${d(DEFAULTS.preStopSleepMs)})
  --readiness-path <path>         readinessProbe.httpGet.path (default ${DEFAULTS.readinessPath})
  --readiness-period <duration>   readinessProbe.periodSeconds (default ${d(DEFAULTS.readinessPeriodMs)}; Kubernetes: 10s)
  --readiness-timeout <duration>  readinessProbe.timeoutSeconds (default ${d(DEFAULTS.readinessTimeoutMs)})
  --readiness-failure-threshold <n>
                                  readinessProbe.failureThreshold (default ${DEFAULTS.readinessFailureThreshold})
  --readiness-success-threshold <n>
                                  readinessProbe.successThreshold (default ${DEFAULTS.readinessSuccessThreshold})
  --env <key>=<value>             add to every pod's environment; repeatable
  --port-env <name>               variable carrying the pod's port (default ${DEFAULTS.portEnv})
  --probe-port-env <name>         give each pod a second port in this variable and probe there,
                                  for probes on their own listener, e.g. LAMEDUCK_PROBE_PORT
                                  (default: probes go to $PORT)
  --pod-logs                      copy the pods' output to stderr, prefixed with the pod name
Service
  --service model|iptables        the data path (default ${DEFAULTS.service}): model is a userland
                                  balancer on loopback imitating kube-proxy; iptables puts each
                                  pod in a network namespace behind a virtual IP rewritten by
                                  kube-proxy-style iptables rules, with conntrack (root, and the
                                  ip, iptables and conntrack commands). See docs/lab.md
  --ingress none|nginx|haproxy    a real proxy in front of the pods (the nginx or haproxy
                                  command), routing to their addresses with an upstream
                                  keep-alive pool and its default retries (nginx: error timeout,
                                  GETs resent, never a POST once sent; haproxy: only when the
                                  connection to the pod failed); endpoint changes by reload
                                  (nginx) or the runtime API (haproxy); the report says which
                                  failures it retried and passed on (default ${DEFAULTS.ingress})
  --propagation-delay <duration>  time for an endpoint change to reach the Service, like
                                  kube-proxy's sync (default ${d(DEFAULTS.propagationDelayMs)})
  --propagation-jitter <duration> each change's delay varies by up to ± this (default ${d(DEFAULTS.propagationJitterMs)})
Load
  --rate <n>                      requests per second, open loop (default ${DEFAULTS.rate})
  --path [<weight>:]<path>        a GET and its weight in the mix; repeatable, e.g. --path 90:/
                                  --path '5:/?delay=2000' --path '5:/stream' (default /)
  --post [<weight>:]<path>        a POST with a ${POST_BODY_BYTES}-byte body, never retried unless the
                                  server refused it unprocessed (h2); repeatable (default: none)
  --client [<weight>:]<kind>      a client kind and its weight; repeatable (default: the four
                                  HTTP/1.1 kinds, weight 1 each). <kind> is one of:
${CLIENT_KINDS.map((kind) => `                                    ${kind.name.padEnd(15)} ${kind.description}`).join('\n')}
                                  h2 needs a service speaking HTTP/2 without TLS (h2c); as
                                  kubelet probes with HTTP/1.1, probe it on its own port
                                  (--probe-port-env)
  --ws-path <path>                where the ws kind opens its WebSockets; the service must echo
                                  each text message (default ${DEFAULTS.wsPath})
  --pools <n>                     independent pools per keep-alive kind, as several upstream
                                  services (default ${DEFAULTS.pools})
  --connections <n>               keep-alive connections per pool (default ${DEFAULTS.connections})
  --timeout <duration>            per-request deadline (default ${d(DEFAULTS.timeoutMs)})
  --max-requests <n>              stop the load after this many requests (default ${DEFAULTS.maxRequests})
  --max-duration <duration>       stop the whole run, as failed, after this long (default ${d(DEFAULTS.maxDurationMs)})
Report
  --max-failures <n>              failed requests allowed before exit code 1 (default ${DEFAULTS.maxFailures})
  --json <file>                   write the result, time series and pod events as JSON
  --html <file>                   write a self-contained HTML report with a chart
  --quiet                         no progress output on stderr
  -h, --help                      show this help
  --version                       print lameduck's version

Examples
  # 3 rolling updates of your lameduck service (server.js) under a mix of short, slow,
  # streamed and POST requests from every client kind, with an HTML report
  lameduck rollout --rollouts 3 --rate 300 --path 85:/ --path '5:/?delay=2000' \\
    --path '5:/stream' --post 5:/echo --readiness-path /readyz \\
    --env LAMEDUCK_DRAIN_DELAY_MS=3000 --html report.html -- node server.js

  # any language: a Python service, only Node's keep-alive agents, 2 s propagation
  lameduck rollout --client agent-lifo --client agent-fifo --propagation-delay 2s \\
    -- python3 app.py

  # WebSockets echoed on /ws, with HTTP/1.1 requests; an h2c service probed on its own port
  lameduck rollout --client 2:ws --client 1:new-connection --ws-path /ws -- node ws-app.js
  lameduck rollout --client h2 --pools 64 --probe-port-env LAMEDUCK_PROBE_PORT -- node h2-app.js

  # in CI: allow no failure, keep the JSON
  lameduck rollout --quiet --max-failures 0 --json lab.json -- ./server
`

const OPTIONS = {
  replicas: { type: 'string' },
  rollouts: { type: 'string' },
  'max-surge': { type: 'string' },
  'max-unavailable': { type: 'string' },
  'min-ready': { type: 'string' },
  'progress-deadline': { type: 'string' },
  name: { type: 'string' },
  'termination-grace-period': { type: 'string' },
  'pre-stop-sleep': { type: 'string' },
  'readiness-path': { type: 'string' },
  'readiness-period': { type: 'string' },
  'readiness-timeout': { type: 'string' },
  'readiness-failure-threshold': { type: 'string' },
  'readiness-success-threshold': { type: 'string' },
  env: { type: 'string', multiple: true },
  'port-env': { type: 'string' },
  'probe-port-env': { type: 'string' },
  'pod-logs': { type: 'boolean' },
  from: { type: 'string' },
  service: { type: 'string' },
  ingress: { type: 'string' },
  'propagation-delay': { type: 'string' },
  'propagation-jitter': { type: 'string' },
  rate: { type: 'string' },
  connections: { type: 'string' },
  path: { type: 'string', multiple: true },
  post: { type: 'string', multiple: true },
  client: { type: 'string', multiple: true },
  'ws-path': { type: 'string' },
  pools: { type: 'string' },
  timeout: { type: 'string' },
  'max-requests': { type: 'string' },
  'max-duration': { type: 'string' },
  'max-failures': { type: 'string' },
  json: { type: 'string' },
  html: { type: 'string' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const

const SEE_HELP = 'run `lameduck rollout --help` for the options (the command goes after --)'

/** A plausible value per option, for "expects a value" errors. */
const EXAMPLE_VALUES: Record<string, string> = {
  replicas: '3',
  rollouts: '3',
  rate: '500',
  path: '90:/',
  post: '5:/echo',
  client: 'agent-lifo',
  service: 'iptables',
  ingress: 'nginx',
  env: 'KEY=VALUE',
  json: 'lab.json',
  html: 'report.html',
  from: 'deployment.yaml',
}

/** Parses the command line into lab options; throws LabOptionError on bad input. */
export function parseRolloutArgs(
  argv: string[],
):
  | { help: true }
  | { help: false; version: true }
  | { help: false; version?: false; options: LabOptions; quiet: boolean } {
  const split = argv.indexOf('--')
  const own = split === -1 ? argv : argv.slice(0, split)
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>
  try {
    parsed = parseArgs({ args: own, options: OPTIONS, allowPositionals: true, strict: true })
  } catch (error) {
    throw new LabOptionError(parseArgsMessage(error, OPTIONS, SEE_HELP, EXAMPLE_VALUES))
  }
  const v = parsed.values
  if (v.help) return { help: true }
  if (v.version) return { help: false, version: true }
  const command =
    split === -1 ? parsed.positionals : [...parsed.positionals, ...argv.slice(split + 1)]

  const int = (name: keyof typeof v, fallback: number, range: readonly [number, number]) => {
    const text = v[name]
    return typeof text === 'string' ? parseInteger(name, text, range) : fallback
  }
  const duration = (name: keyof typeof v, fallback: number, range: readonly [number, number]) => {
    const text = v[name]
    return typeof text === 'string' ? parseDuration(name, text, range) : fallback
  }
  const env: Record<string, string> = {}
  for (const entry of v.env ?? []) {
    const [key, value] = parseEnv(entry)
    env[key] = value
  }
  const options: LabOptions = {
    command,
    name: v.name ?? DEFAULTS.name,
    replicas: int('replicas', DEFAULTS.replicas, LIMITS.replicas),
    rollouts: int('rollouts', DEFAULTS.rollouts, LIMITS.rollouts),
    maxSurge:
      v['max-surge'] === undefined
        ? DEFAULTS.maxSurge
        : parseIntOrPercent('max-surge', v['max-surge']),
    maxUnavailable:
      v['max-unavailable'] === undefined
        ? DEFAULTS.maxUnavailable
        : parseIntOrPercent('max-unavailable', v['max-unavailable']),
    minReadyMs: duration('min-ready', DEFAULTS.minReadyMs, LIMITS.durationMs),
    progressDeadlineMs: duration(
      'progress-deadline',
      DEFAULTS.progressDeadlineMs,
      LIMITS.progressDeadlineMs,
    ),
    gracePeriodMs: duration('termination-grace-period', DEFAULTS.gracePeriodMs, LIMITS.durationMs),
    preStopSleepMs: duration('pre-stop-sleep', DEFAULTS.preStopSleepMs, LIMITS.durationMs),
    readinessPath: v['readiness-path'] ?? DEFAULTS.readinessPath,
    readinessPeriodMs: duration(
      'readiness-period',
      DEFAULTS.readinessPeriodMs,
      LIMITS.readinessPeriodMs,
    ),
    readinessTimeoutMs: duration(
      'readiness-timeout',
      DEFAULTS.readinessTimeoutMs,
      LIMITS.readinessTimeoutMs,
    ),
    readinessFailureThreshold: int(
      'readiness-failure-threshold',
      DEFAULTS.readinessFailureThreshold,
      LIMITS.threshold,
    ),
    readinessSuccessThreshold: int(
      'readiness-success-threshold',
      DEFAULTS.readinessSuccessThreshold,
      LIMITS.threshold,
    ),
    portEnv: v['port-env'] ?? DEFAULTS.portEnv,
    probePortEnv: v['probe-port-env'],
    env,
    service: parseServiceKind(v.service),
    ingress: parseIngressKind(v.ingress),
    propagationDelayMs: duration(
      'propagation-delay',
      DEFAULTS.propagationDelayMs,
      LIMITS.durationMs,
    ),
    propagationJitterMs: duration(
      'propagation-jitter',
      DEFAULTS.propagationJitterMs,
      LIMITS.durationMs,
    ),
    rate: int('rate', DEFAULTS.rate, LIMITS.rate),
    connections: int('connections', DEFAULTS.connections, LIMITS.connections),
    pools: int('pools', DEFAULTS.pools, LIMITS.pools),
    paths:
      v.path === undefined && v.post === undefined
        ? [...DEFAULTS.paths]
        : [
            ...(v.path ?? []).map((text) => parseWeightedPath(text, 'path')),
            ...(v.post ?? []).map((text) => parseWeightedPath(text, 'post')),
          ],
    clients:
      v.client === undefined
        ? DEFAULTS.clients.map((c) => ({ ...c }))
        : v.client.map((text) =>
            parseWeightedClient(
              text,
              CLIENT_KINDS.map((kind) => kind.name),
            ),
          ),
    wsPath: v['ws-path'] ?? DEFAULTS.wsPath,
    timeoutMs: duration('timeout', DEFAULTS.timeoutMs, LIMITS.timeoutMs),
    maxRequests: int('max-requests', DEFAULTS.maxRequests, LIMITS.maxRequests),
    maxDurationMs: duration('max-duration', DEFAULTS.maxDurationMs, LIMITS.maxDurationMs),
    maxFailures: int('max-failures', DEFAULTS.maxFailures, LIMITS.maxFailures),
    jsonFile: v.json,
    htmlFile: v.html,
    podLogs: v['pod-logs'] === true,
  }
  if (v.from !== undefined)
    applyManifest(options, v.from, (flag) => v[flag as keyof typeof v] !== undefined)
  if (!options.readinessPath.startsWith('/')) {
    throw new LabOptionError(
      `--readiness-path expects a path starting with '/', got '${options.readinessPath}'`,
    )
  }
  validate(options)
  return { help: false, options, quiet: v.quiet === true }
}

/**
 * Takes the settings of the Deployment in `file` for every one no flag gave; records where
 * each setting came from. `--env` entries win over the manifest's env, key by key.
 */
function applyManifest(options: LabOptions, file: string, given: (flag: string) => boolean): void {
  const manifest = loadDeployment(file)
  const origins: Record<string, string> = {}
  const target = options as unknown as Record<string, unknown>
  for (const [key, flag] of Object.entries(FROM_FLAGS) as [FromKey, string][]) {
    const where = manifest.where[key]
    const flagged = given(flag)
    if (key === 'env') {
      const env = { ...manifest.values.env }
      // The lab gives each pod its own port(s): a fixed port from the manifest would collide.
      for (const name of [options.portEnv, options.probePortEnv]) {
        if (name === undefined || env[name] === undefined) continue
        manifest.notes.push(
          `${name}=${env[name]} is not set: the lab gives each pod its port in $${name}`,
        )
        delete env[name]
      }
      options.env = { ...env, ...options.env }
      origins.env =
        [where, flagged ? '--env' : undefined].filter((x) => x !== undefined).join(' + ') ||
        'default'
      continue
    }
    if (flagged) origins[key] = `--${flag}`
    else if (where !== undefined) {
      target[key] = manifest.values[key]
      origins[key] = where
    } else origins[key] = 'default'
  }
  options.from = { file, origins, notes: manifest.notes }
}

async function write(file: string, content: string): Promise<void> {
  const path = resolve(file)
  try {
    await mkdir(dirname(path), { recursive: true })
    await writeFile(path, content)
  } catch (error) {
    throw new CliError(`cannot write ${file}: ${(error as Error).message}`)
  }
  process.stderr.write(`wrote ${file}\n`)
}

/**
 * Checks, before the run, that a report can be written at `file`: not a directory, its
 * directory exists (or can be created) and is writable, and the file, if it exists, is too.
 */
export async function checkOutputPath(option: string, file: string): Promise<void> {
  const path = resolve(file)
  const fail = (why: string) => {
    throw new CliError(`--${option} ${file}: ${why}`)
  }
  const info = await stat(path).catch(() => undefined)
  if (info?.isDirectory()) fail('is a directory; expected a file name')
  const parent = await stat(dirname(path)).catch(() => undefined)
  if (parent !== undefined && !parent.isDirectory()) {
    fail(`${dirname(path)} is not a directory`)
  }
  try {
    await mkdir(dirname(path), { recursive: true })
  } catch (error) {
    fail(
      `cannot create its directory (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    )
  }
  try {
    await access(info === undefined ? dirname(path) : path, constants.W_OK)
  } catch {
    fail(info === undefined ? 'its directory is not writable' : 'the file is not writable')
  }
}

async function writeReports(options: LabOptions, result: LabResult): Promise<void> {
  if (options.jsonFile !== undefined) {
    await write(options.jsonFile, `${JSON.stringify(result, null, 2)}\n`)
  }
  if (options.htmlFile !== undefined) await write(options.htmlFile, renderHtml(result))
}

export async function run(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parseRolloutArgs>
  try {
    parsed = parseRolloutArgs(argv)
  } catch (error) {
    if (error instanceof LabOptionError) throw new CliError(error.message)
    throw error
  }
  if (parsed.help) {
    process.stdout.write(HELP)
    return 0
  }
  if (parsed.version === true) {
    console.log(packageVersion())
    return 0
  }
  const { options, quiet } = parsed
  if (options.jsonFile !== undefined) await checkOutputPath('json', options.jsonFile)
  if (options.htmlFile !== undefined) await checkOutputPath('html', options.htmlFile)
  const display = quiet ? undefined : progress(process.stderr)

  // Ctrl-C (or SIGTERM) stops the run and every pod. A second one, or one after the run,
  // SIGKILLs every pod group and exits at once. The handlers stay installed: without one, the
  // signal's default action would end the lab without its 'exit' hook, leaving pods behind.
  const abort = new AbortController()
  let interrupts = 0
  const onSignal = (signal: NodeJS.Signals) => {
    interrupts++
    if (interrupts > 1 || abort.signal.aborted) {
      killAllPodGroups()
      process.exit(EXIT_INTERRUPTED)
    }
    abort.abort(new LabAborted(`interrupted by ${signal}`))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    const result = await runLab(options, display ?? {}, abort.signal)
    display?.close()
    console.log(renderText(result))
    await writeReports(options, result)
    return exitCode(result)
  } catch (error) {
    display?.close()
    if (error instanceof LabAborted) {
      if (error.partial !== undefined) {
        console.log(renderText(error.partial))
        await writeReports(options, error.partial)
      }
      console.error('lameduck rollout: interrupted; every pod was stopped')
      return EXIT_INTERRUPTED
    }
    if (error instanceof LabError) {
      if (error.partial !== undefined) {
        console.log(renderText(error.partial))
        await writeReports(options, error.partial)
        console.error(`lameduck rollout: ${error.message}`)
        return 1
      }
      throw new CliError(error.message)
    }
    throw error
  } finally {
    interrupts++
  }
}
