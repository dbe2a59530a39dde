// The ingress driver (--ingress nginx): a real nginx from the distribution in front of the
// pods, routing to the pods' addresses (endpoints, not the Service's virtual IP) the way
// ingress-nginx does, with an upstream keep-alive pool and nginx's default retry policy
// (`proxy_next_upstream error timeout`, which never sends a non-idempotent request such as a
// POST to another server once it was sent, `proxy_next_upstream_tries` 3 as ingress-nginx
// sets it). The pods run on the data path underneath (model or iptables: their sandboxes and
// addresses); the load goes to nginx, not to the Service.
//
// Endpoint changes reach nginx after the propagation delay (± jitter), in order, as a new
// configuration and a reload (SIGHUP to the master: new workers with the new upstream, old
// workers finish their requests). ingress-nginx does not reload for endpoint changes: its Lua
// balancer is fed the endpoints over an internal API, so its keep-alive pool survives them. A
// reload here starts new workers with an empty pool, and a client connection can be dropped
// at the switch: such failures are the lab's ingress's own, and the report says which
// requests the ingress retried and which failures it passed on, from nginx's access log
// ($upstream_status lists every upstream tried).
import { once } from 'node:events'
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { onPath } from '../../serve/child.js'
import type { Clock } from '../clock.js'
import { PodProcess } from '../process.js'
import type { Recorder, RequestRecord } from '../recorder.js'
import { type Change, Propagation } from './propagation.js'
import type { ConnectionInfo, DataPath, Endpoint, PodPlacement, ServiceAddress } from './types.js'

export const INGRESS_KINDS = ['none', 'nginx'] as const
export type IngressKind = (typeof INGRESS_KINDS)[number]

/** ingress-nginx's defaults for the upstream keep-alive pool. */
const UPSTREAM_KEEPALIVE = 320
const UPSTREAM_KEEPALIVE_TIMEOUT = '60s'
const UPSTREAM_KEEPALIVE_REQUESTS = 10_000
const NEXT_UPSTREAM_TRIES = 3
/** How long nginx may take to listen after it was started. */
const START_TIMEOUT_MS = 5_000
/** Between the upstreams of one request in nginx's log: ", " between tries, " : " around an internal redirect. */
const UPSTREAM_SEPARATOR = /, | : /
/** A failure nginx did not log, this soon after a reload, was dropped by the reload. */
const RELOAD_WINDOW_MS = 1_000
/** Where nginx answers the generation of its configuration (never a path of the load). */
const CONFIG_PATH = '/.lameduck-rollout-config'
/** A log line is matched to a request that ended within this much of it. */
const LOG_MATCH_MS = 1_000

/** What the ingress did with the requests, for the report. */
export interface IngressSummary {
  kind: IngressKind
  /** Requests the ingress sent to more than one pod (its retries), ok in the end. */
  retriedOk: number
  /** Failed requests answered 502/503/504 by the ingress itself (it passed the failure on). */
  passedOn: number
  /** Of those, after the ingress had tried more than one pod. */
  passedOnAfterRetry: number
  /** Configuration reloads (one per applied batch of endpoint changes). */
  reloads: number
  /**
   * Failed requests nginx never logged that ended within RELOAD_WINDOW_MS after a reload: a
   * client connection dropped at the switch of workers, the lab's ingress's own failure.
   */
  atReload: number
}

export interface NginxIngressOptions {
  clock: Clock
  recorder: Recorder
  propagationDelayMs: number
  propagationJitterMs: number
  random?: () => number
}

interface LogLine {
  /** ms since the lab started */
  t: number
  clientPort: number
  status: number
  upstreams: string[]
  upstreamStatus: string[]
}

export class NginxIngress implements DataPath {
  readonly kind
  readonly #inner: DataPath
  readonly #options: NginxIngressOptions
  readonly #propagation: Propagation
  readonly #dir: string
  #applied = new Map<string, Endpoint>()
  readonly #wanted = new Map<string, Endpoint>()
  #process: PodProcess | undefined
  #port = 0
  readonly #reloadedAt: number[] = []
  #pending: Change[] = []
  #reloading = false
  /** Bumped at each configuration written; nginx answers it at CONFIG_PATH. */
  #generation = 0
  #byAddress = new Map<string, string>()
  readonly connectionsPerPod = new Map<string, number>()

  constructor(inner: DataPath, options: NginxIngressOptions) {
    this.#inner = inner
    this.kind = inner.kind
    this.#options = options
    this.#propagation = new Propagation({ ...options, apply: (changes) => this.#apply(changes) })
    this.#dir = join(tmpdir(), `lameduck-nginx-${process.pid}-${Date.now()}`)
  }

  async start(): Promise<ServiceAddress> {
    if (!onPath('nginx')) {
      throw new Error(
        '--ingress nginx needs the nginx command, not found in PATH (Debian: apt-get install nginx-light)',
      )
    }
    const inner = await this.#inner.start()
    mkdirSync(join(this.#dir, 'temp'), { recursive: true })
    this.#port = await freePort()
    this.#writeConfig()
    const nginx = new PodProcess({
      command: 'nginx',
      args: ['-p', this.#dir, '-c', 'nginx.conf', '-e', join(this.#dir, 'error.log')],
      env: process.env,
    })
    this.#process = nginx
    await this.#listening(nginx)
    return { host: '127.0.0.1', port: this.#port, notes: inner.notes ?? [] }
  }

  describe(): string {
    return `nginx ingress on 127.0.0.1:${this.#port} (upstream keep-alive ${UPSTREAM_KEEPALIVE}, proxy_next_upstream error timeout, tries ${NEXT_UPSTREAM_TRIES}; endpoint changes by reload) to the pods of ${this.#inner.describe()}`
  }

  placePod(name: string, probePort: boolean): Promise<PodPlacement> {
    return this.#inner.placePod(name, probePort)
  }

  releasePod(name: string): void {
    this.#inner.releasePod(name)
  }

  /** The ingress watches the endpoints itself; the Service underneath carries no load. */
  publish(endpoint: Endpoint, serving: boolean): void {
    if (serving) this.#byAddress.set(`${endpoint.host}:${endpoint.port}`, endpoint.pod)
    this.#propagation.publish(endpoint, serving)
  }

  endpoints(): Endpoint[] {
    return [...this.#applied.values()]
  }

  settled(): boolean {
    return this.#propagation.idle() && !this.#reloading && this.#pending.length === 0
  }

  routesTo(pod: string): boolean {
    return this.#applied.has(pod)
  }

  /** The client's connection ends at nginx: requests are traced to pods from its log. */
  connection(): ConnectionInfo | undefined {
    return undefined
  }

  prune(): void {}

  async close(): Promise<void> {
    this.#propagation.stop()
    const nginx = this.#process
    if (nginx !== undefined && nginx.exit === undefined) {
      nginx.signalGroup('SIGKILL')
      await once(nginx, 'exit')
    }
    await this.#inner.close()
  }

  /** Removes the ingress's directory (its configuration and logs). */
  dispose(): void {
    rmSync(this.#dir, { recursive: true, force: true })
  }

  /**
   * Traces each request to the pod that answered it and says what the ingress did, from
   * nginx's access log; call it once the load has stopped.
   */
  annotate(requests: RequestRecord[]): IngressSummary {
    const summary: IngressSummary = {
      kind: 'nginx',
      retriedOk: 0,
      passedOn: 0,
      passedOnAfterRetry: 0,
      reloads: this.#reloadedAt.length,
      atReload: 0,
    }
    const lines = this.#readLog()
    const byPort = new Map<number, LogLine[]>()
    for (const line of lines) {
      byPort.set(line.clientPort, [...(byPort.get(line.clientPort) ?? []), line])
      const pod = this.#podOf(line.upstreams.at(-1))
      if (pod !== undefined)
        this.connectionsPerPod.set(pod, (this.connectionsPerPod.get(pod) ?? 0) + 1)
    }
    for (const request of requests) {
      if (request.localPort === undefined && request.outcome === 'ok') continue
      const candidates =
        request.localPort === undefined ? [] : (byPort.get(request.localPort) ?? [])
      let best: LogLine | undefined
      for (const line of candidates) {
        const distance = Math.abs(line.t - request.end)
        if (
          distance <= LOG_MATCH_MS &&
          (best === undefined || distance < Math.abs(best.t - request.end))
        ) {
          best = line
        }
      }
      if (best === undefined) {
        const reload = this.#reloadedAt.some(
          (t) => request.end >= t && request.end <= t + RELOAD_WINDOW_MS,
        )
        if (reload && request.outcome !== 'ok') {
          summary.atReload++
          request.ingress = { upstreamStatus: '', tried: 0, pods: [], reload: true }
        }
        continue
      }
      candidates.splice(candidates.indexOf(best), 1)
      const pod = this.#podOf(best.upstreams.at(-1))
      if (pod !== undefined) request.pod = pod
      const tried = best.upstreams.filter((u) => u !== '' && u !== '-').length
      const pods = best.upstreams.flatMap((u) => this.#podOf(u) ?? [])
      request.ingress = { upstreamStatus: best.upstreamStatus.join(', '), tried, pods }
      if (request.outcome === 'ok' && tried > 1) summary.retriedOk++
      if (request.outcome !== 'ok' && [502, 503, 504].includes(best.status)) {
        summary.passedOn++
        if (tried > 1) summary.passedOnAfterRetry++
      }
    }
    return summary
  }

  #podOf(upstream: string | undefined): string | undefined {
    return upstream === undefined ? undefined : this.#byAddress.get(upstream)
  }

  #readLog(): LogLine[] {
    let text = ''
    try {
      text = readFileSync(join(this.#dir, 'access.log'), 'utf8')
    } catch {
      return []
    }
    const started = this.#options.clock.startedAt.getTime()
    const lines: LogLine[] = []
    for (const raw of text.split('\n')) {
      // $msec $remote_port $status "$upstream_addr" "$upstream_status"
      const match = /^(\d+\.\d+) (\d+) (\d+) "([^"]*)" "([^"]*)"$/.exec(raw)
      if (match === null) continue
      lines.push({
        t: Number(match[1]) * 1_000 - started,
        clientPort: Number(match[2]),
        status: Number(match[3]),
        // "a, b : c" — a comma separates retries, a colon an internal redirect.
        upstreams: match[4]!.split(UPSTREAM_SEPARATOR),
        upstreamStatus: match[5]!.split(UPSTREAM_SEPARATOR),
      })
    }
    return lines
  }

  #apply(changes: Change[]): void {
    for (const change of changes) {
      if (change.op === 'add') this.#wanted.set(change.endpoint.pod, change.endpoint)
      else this.#wanted.delete(change.endpoint.pod)
    }
    this.#pending.push(...changes)
    void this.#reload()
  }

  /**
   * Writes the configuration and reloads nginx; the changes count as applied once a new
   * connection is answered by the new workers (the old ones stop accepting at the reload).
   * One reload at a time; changes that arrive meanwhile go into the next one.
   */
  async #reload(): Promise<void> {
    if (this.#reloading) return
    this.#reloading = true
    try {
      while (this.#pending.length > 0 && this.#process?.exit === undefined) {
        const changes = this.#pending
        this.#pending = []
        const wanted = new Map(this.#wanted)
        this.#generation++
        this.#writeConfig()
        const oldWorkers = workersOf(this.#process?.pid)
        this.#process?.signal('SIGHUP')
        this.#reloadedAt.push(this.#options.clock.now())
        await this.#served(this.#generation, oldWorkers)
        this.#applied = wanted
        for (const change of changes) {
          this.#options.recorder.event(
            change.op === 'add' ? 'endpoint-added' : 'endpoint-removed',
            change.endpoint.pod,
            'nginx reload',
          )
        }
      }
    } finally {
      this.#reloading = false
    }
  }

  /** Resolves when a new connection gets the configuration `generation` (or after 5 s). */
  async #served(generation: number, oldWorkers: number[]): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS
    // An old worker closes its listening sockets before it calls itself "shutting down".
    const listening = () =>
      oldWorkers.some((pid) => /worker process(?! is shutting down)/.test(titleOf(pid)))
    while (Date.now() < deadline && this.#process?.exit === undefined) {
      if (!listening() && (await configGeneration(this.#port)) === String(generation)) return
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }

  #writeConfig(): void {
    const temp = join(this.#dir, 'temp')
    const servers = [...this.#wanted.values()].map((e) => `    server ${e.host}:${e.port};`)
    // An upstream needs a server: with no endpoint, one that is marked down (nginx answers 502,
    // as ingress-nginx answers 503 for a Service without endpoints).
    if (servers.length === 0) servers.push('    server 127.0.0.1:9 down;')
    const config = `# written by lameduck rollout --ingress nginx
worker_processes 1;
daemon off;
user root;
pid ${join(this.#dir, 'nginx.pid')};
error_log ${join(this.#dir, 'error.log')} warn;
events { worker_connections 4096; }
http {
  log_format lab '$msec $remote_port $status "$upstream_addr" "$upstream_status"';
  access_log ${join(this.#dir, 'access.log')} lab;
  client_body_temp_path ${temp}/body;
  proxy_temp_path ${temp}/proxy;
  fastcgi_temp_path ${temp}/fastcgi;
  uwsgi_temp_path ${temp}/uwsgi;
  scgi_temp_path ${temp}/scgi;
  keepalive_timeout 75s;
  upstream pods {
${servers.join('\n')}
    keepalive ${UPSTREAM_KEEPALIVE};
    keepalive_timeout ${UPSTREAM_KEEPALIVE_TIMEOUT};
    keepalive_requests ${UPSTREAM_KEEPALIVE_REQUESTS};
  }
  server {
    listen 127.0.0.1:${this.#port} backlog=4096;
    location = ${CONFIG_PATH} {
      return 200 "${this.#generation}";
    }
    location / {
      proxy_pass http://pods;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
      proxy_next_upstream_tries ${NEXT_UPSTREAM_TRIES};
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
`
    writeFileSync(join(this.#dir, 'nginx.conf'), config)
  }

  async #listening(nginx: PodProcess): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS
    for (;;) {
      if (nginx.exit !== undefined) {
        throw new Error(
          `--ingress nginx: nginx exited at start: ${nginx.outputTail() || this.#errorLog()}`,
        )
      }
      if (await accepts(this.#port)) return
      if (Date.now() > deadline) {
        throw new Error(
          `--ingress nginx: nginx did not listen on 127.0.0.1:${this.#port} within ${START_TIMEOUT_MS} ms: ${this.#errorLog()}`,
        )
      }
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  #errorLog(): string {
    try {
      return readFileSync(join(this.#dir, 'error.log'), 'utf8')
        .trim()
        .split('\n')
        .slice(-3)
        .join(' | ')
    } catch {
      return 'no error log'
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** The process title of `pid` ('' when it is gone). */
function titleOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ')
  } catch {
    return ''
  }
}

/** The worker processes of the nginx master `pid`, from /proc. */
function workersOf(master: number | undefined): number[] {
  if (master === undefined) return []
  const workers: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      if (ppid === master) workers.push(Number(entry))
    } catch {
      // gone
    }
  }
  return workers
}

/** The configuration generation nginx answers on a new connection, or undefined. */
function configGeneration(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const request = http.get(
      { host: '127.0.0.1', port, path: CONFIG_PATH, agent: false, timeout: 1_000 },
      (response) => {
        let body = ''
        response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk))
        response.on('end', () => resolve(body))
        response.on('error', () => resolve(undefined))
      },
    )
    request.on('timeout', () => request.destroy())
    request.on('error', () => resolve(undefined))
  })
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}
