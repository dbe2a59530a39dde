// The nginx ingress driver (--ingress nginx): the distribution's nginx in front of the pods
// (what every ingress shares is in ingress.ts), with an upstream keep-alive pool and nginx's
// default retry policy (`proxy_next_upstream error timeout`, which never sends a
// non-idempotent request such as a POST to another server once it was sent,
// `proxy_next_upstream_tries` 3 as ingress-nginx sets it).
//
// Endpoint changes reach nginx as a new configuration and a reload (SIGHUP to the master: new
// workers with the new upstream, old workers finish their requests). ingress-nginx does not
// reload for endpoint changes: its Lua balancer is fed the endpoints over an internal API, so
// its keep-alive pool survives them. A reload here starts new workers with an empty pool, and
// a client connection can be dropped at the switch: such failures are the lab's ingress's own
// (counted apart, `atReload`). What nginx did with each request comes from its access log
// ($upstream_addr and $upstream_status list every upstream tried).
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { join } from 'node:path'
import { PodProcess } from '../process.js'
import type { IngressError, RequestRecord } from '../recorder.js'
import {
  closedUnlogged,
  Ingress,
  type IngressOptions,
  type LogLine,
  PROXY_ERROR_STATUSES,
  START_TIMEOUT_MS,
} from './ingress.js'
import type { Change } from './propagation.js'
import type { DataPath, Endpoint } from './types.js'

/** ingress-nginx's defaults for the upstream keep-alive pool. */
const UPSTREAM_KEEPALIVE = 320
const UPSTREAM_KEEPALIVE_TIMEOUT = '60s'
const UPSTREAM_KEEPALIVE_REQUESTS = 10_000
const NEXT_UPSTREAM_TRIES = 3
/** Between the upstreams of one request in nginx's log: ", " between tries, " : " around an internal redirect. */
const UPSTREAM_SEPARATOR = /, | : /
/** Where nginx answers the generation of its configuration (never a path of the load). */
const CONFIG_PATH = '/.lameduck-rollout-config'
/** The name of the upstream of the pods. */
const UPSTREAM = 'pods'
/** The server of an upstream with no endpoint (marked down). */
const NO_ENDPOINT = '127.0.0.1:9'

export class NginxIngress extends Ingress {
  /** Bumped at each configuration written; nginx answers it at CONFIG_PATH. */
  #generation = 0
  #endpoints: ReadonlyMap<string, Endpoint> = new Map()

  constructor(inner: DataPath, options: IngressOptions) {
    super(inner, options, 'nginx')
  }

  protected settings(): string {
    return `upstream keep-alive ${UPSTREAM_KEEPALIVE}, proxy_next_upstream error timeout, tries ${NEXT_UPSTREAM_TRIES}; endpoint changes by reload`
  }

  protected launch(): PodProcess {
    mkdirSync(join(this.dir, 'temp'), { recursive: true })
    this.#writeConfig()
    return new PodProcess({
      command: 'nginx',
      args: ['-p', this.dir, '-c', 'nginx.conf', '-e', join(this.dir, 'error.log')],
      env: process.env,
    })
  }

  /**
   * Writes the configuration and reloads nginx; the changes count as applied once a new
   * connection is answered by the new workers (the old ones stop accepting at the reload).
   */
  protected async update(_changes: Change[], wanted: ReadonlyMap<string, Endpoint>): Promise<void> {
    this.#endpoints = wanted
    this.#generation++
    this.#writeConfig()
    const oldWorkers = workersOf(this.process?.pid)
    this.process?.signal('SIGHUP')
    this.reloadedAt.push(this.options.clock.now())
    await this.#served(this.#generation, oldWorkers)
  }

  protected parseLogLine(raw: string, started: number): LogLine | undefined {
    // $msec $remote_port $status "$upstream_addr" "$upstream_status" "$upstream_connect_time" "$upstream_header_time"
    const match = /^(\d+\.\d+) (\d+) (\d+) "([^"]*)" "([^"]*)" "([^"]*)" "([^"]*)"$/.exec(raw)
    if (match === null) return undefined
    // "a, b : c" — a comma separates retries, a colon an internal redirect.
    const upstreams = match[4]!.split(UPSTREAM_SEPARATOR)
    const status = Number(match[3])
    const t = Number(match[1]) * 1_000 - started
    return {
      t,
      clientPort: Number(match[2]),
      status,
      upstreams,
      tried: upstreams.filter((u) => u !== '' && u !== '-').length,
      upstreamStatus: match[5]!.split(UPSTREAM_SEPARATOR).join(', '),
      error: nginxError(
        status,
        upstreams.at(-1),
        match[6]!.split(UPSTREAM_SEPARATOR).at(-1),
        match[7]!.split(UPSTREAM_SEPARATOR).at(-1),
        this.endpointsAt(t),
      ),
    }
  }

  /**
   * nginx logs every request it has read: one it never logged that failed with no response on
   * a kept-alive client connection, after a reload, was closed by an old worker shutting down
   * (it closes its idle client connections; keepalive_timeout is longer than a run).
   */
  protected override unlogged(request: RequestRecord): 'reload' | undefined {
    if (super.unlogged(request) === 'reload') return 'reload'
    const afterReload = this.reloadedAt.some((t) => request.end >= t)
    return afterReload && closedUnlogged(request) ? 'reload' : undefined
  }

  protected errorTail(): string {
    const log = this.fileText('error.log')
    return log === undefined ? 'no error log' : log.trim().split('\n').slice(-3).join(' | ')
  }

  /** Resolves when a new connection gets the configuration `generation` (or after 5 s). */
  async #served(generation: number, oldWorkers: number[]): Promise<void> {
    const deadline = Date.now() + START_TIMEOUT_MS
    // An old worker closes its listening sockets before it calls itself "shutting down".
    const listening = () =>
      oldWorkers.some((pid) => /worker process(?! is shutting down)/.test(titleOf(pid)))
    while (Date.now() < deadline && this.process?.exit === undefined) {
      if (!listening() && (await configGeneration(this.port)) === String(generation)) return
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }

  #writeConfig(): void {
    const temp = join(this.dir, 'temp')
    const servers = [...this.#endpoints.values()].map((e) => `    server ${e.host}:${e.port};`)
    // An upstream needs a server: with no endpoint, one that is marked down (nginx answers 502,
    // as ingress-nginx answers 503 for a Service without endpoints).
    if (servers.length === 0) servers.push(`    server ${NO_ENDPOINT} down;`)
    const config = `# written by lameduck rollout --ingress nginx
worker_processes 1;
daemon off;
user root;
pid ${join(this.dir, 'nginx.pid')};
error_log ${join(this.dir, 'error.log')} warn;
events { worker_connections 4096; }
http {
  log_format lab '$msec $remote_port $status "$upstream_addr" "$upstream_status" "$upstream_connect_time" "$upstream_header_time"';
  access_log ${join(this.dir, 'access.log')} lab;
  client_body_temp_path ${temp}/body;
  proxy_temp_path ${temp}/proxy;
  fastcgi_temp_path ${temp}/fastcgi;
  uwsgi_temp_path ${temp}/uwsgi;
  scgi_temp_path ${temp}/scgi;
  keepalive_timeout 75s;
  upstream ${UPSTREAM} {
${servers.join('\n')}
    keepalive ${UPSTREAM_KEEPALIVE};
    keepalive_timeout ${UPSTREAM_KEEPALIVE_TIMEOUT};
    keepalive_requests ${UPSTREAM_KEEPALIVE_REQUESTS};
  }
  server {
    listen 127.0.0.1:${this.port} backlog=4096;
    location = ${CONFIG_PATH} {
      return 200 "${this.#generation}";
    }
    location / {
      proxy_pass http://${UPSTREAM};
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
    writeFileSync(join(this.dir, 'nginx.conf'), config)
  }
}

/**
 * Whether nginx answered `status` itself, and why, from the last upstream's timings: no
 * response header from it means nginx made the status (a pod's own 502 has one).
 */
function nginxError(
  status: number,
  upstream: string | undefined,
  connectTime: string | undefined,
  headerTime: string | undefined,
  endpoints: number,
): IngressError | undefined {
  if (!PROXY_ERROR_STATUSES.includes(status)) return undefined
  if (headerTime !== undefined && headerTime !== '-' && headerTime !== '') return undefined
  if (upstream === undefined || upstream === '-' || upstream === NO_ENDPOINT) return 'no-endpoint'
  // nginx logs the upstream's name when it found no server to try: none at all, or every
  // server marked failed for fail_timeout after max_fails errors ("no live upstreams").
  if (upstream === UPSTREAM) return endpoints === 0 ? 'no-endpoint' : 'no-live'
  if (status === 504) return 'timeout'
  if (connectTime === undefined || connectTime === '-' || connectTime === '') return 'connect'
  return 'closed'
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
