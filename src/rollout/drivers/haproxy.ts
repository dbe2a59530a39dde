// The haproxy ingress driver (--ingress haproxy): the distribution's haproxy in front of the
// pods (what every ingress shares is in ingress.ts), with an upstream keep-alive pool
// (`http-reuse safe`, haproxy's default: idle connections to the pods are shared between
// client connections, except for the first request of each) and haproxy's default retry
// policy: `retries 3` with `option redispatch` (the last retry goes to another pod) and
// `retry-on conn-failure`, its default, which retries only when the connection to the pod
// failed and the request could not be sent. Unlike nginx, haproxy does not resend a request,
// GET or POST, whose connection was closed or reset by the pod after it was sent
// (`retry-on empty-response` would, and is not on by default).
//
// Endpoint changes reach haproxy after the propagation delay (± jitter), in order, through its
// runtime API (the stats socket, no reload): a new endpoint is `add server` (haproxy 2.4+:
// dynamic servers, created in maintenance) then `set server … state ready`; a removed one is
// `set server … state maint`, so haproxy sends it no new request. The keep-alive pool survives
// every change. The HAProxy Kubernetes Ingress Controller also uses the runtime API, but with
// server slots: its configuration holds disabled servers in advance (42 more at a time), and an
// endpoint change sets a slot's address and state (`set server … addr`, `state ready/maint`);
// it reloads when it runs out of slots. What haproxy did with each request comes from its log
// (one line per request, written to a file the lab reads at the end): the server that answered,
// the retries, and the termination state saying why haproxy answered 502/503/504 itself.
import { writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { PodProcess } from '../process.js'
import type { IngressError, RequestRecord } from '../recorder.js'
import {
  closedUnlogged,
  Ingress,
  type IngressOptions,
  type LogLine,
  PROXY_ERROR_STATUSES,
} from './ingress.js'
import type { Change } from './propagation.js'
import type { DataPath } from './types.js'

/** haproxy's default number of retries, with `option redispatch` on the last one. */
const RETRIES = 3
/** How long the lab waits for the runtime API to answer one command. */
const API_TIMEOUT_MS = 5_000
const BACKEND = 'pods'

export class HaproxyIngress extends Ingress {
  /** Servers created with `add server`, by pod name. */
  readonly #servers = new Set<string>()

  constructor(inner: DataPath, options: IngressOptions) {
    super(inner, options, 'haproxy')
  }

  protected settings(): string {
    return `http-reuse safe, retries ${RETRIES}, option redispatch, retry-on conn-failure; endpoint changes by the runtime API`
  }

  protected launch(): PodProcess {
    const config = join(this.dir, 'haproxy.cfg')
    writeFileSync(config, this.#config(), { flag: 'w' })
    // haproxy logs to its stdout, which goes to a file: a pipe the lab reads could drop lines
    // when the lab is busy (haproxy never blocks on a pipe), a file does not.
    return new PodProcess({
      command: 'sh',
      args: ['-c', 'exec haproxy -db -f "$0" >>"$1"', config, join(this.dir, 'access.log')],
      env: process.env,
    })
  }

  /** One runtime API command per change, in order; each takes effect when it is answered. */
  protected async update(changes: Change[]): Promise<void> {
    for (const { op, endpoint } of changes) {
      const server = `${BACKEND}/${serverName(endpoint.pod)}`
      const commands: string[] = []
      if (op === 'add' && !this.#servers.has(endpoint.pod)) {
        commands.push(`add server ${server} ${endpoint.host}:${endpoint.port}`)
        this.#servers.add(endpoint.pod)
      }
      commands.push(`set server ${server} state ${op === 'add' ? 'ready' : 'maint'}`)
      for (const command of commands) {
        const answer = await this.#api(command)
        if (/error|invalid|unknown|no such|not found|require|cannot|can't/i.test(answer)) {
          this.options.recorder.event(
            'warning',
            endpoint.pod,
            `haproxy runtime API refused '${command}': ${answer.trim()}`,
          )
        }
      }
    }
  }

  protected parseLogLine(raw: string, started: number): LogLine | undefined {
    // %[date(0,ms)] %cp %ST %si:%sp %rc %ts %s
    const match = /^(\d+) (\d+) (-?\d+) (\S+) \+?(-?\d+) (\S\S) (\S+)$/.exec(raw)
    if (match === null) return undefined
    const status = Number(match[3])
    const address = match[4]!
    const retries = Math.max(0, Number(match[5]))
    const state = match[6]!
    return {
      t: Number(match[1]) - started,
      clientPort: Number(match[2]),
      status,
      upstreams: address === '-:-' ? [] : [address],
      tried: address === '-:-' ? 0 : retries + 1,
      upstreamStatus: state,
      error: haproxyError(status, state, match[7]!),
    }
  }

  /**
   * haproxy closes a client's connection without an answer, and logs nothing, when a pod
   * closes the connection under a request that was not the first of that client connection.
   */
  protected override unlogged(request: RequestRecord): 'closed' | undefined {
    return closedUnlogged(request) ? 'closed' : undefined
  }

  protected errorTail(): string {
    return this.process?.outputTail().split('\n').slice(-3).join(' | ') || 'no output'
  }

  /** Sends one command to the runtime API and resolves with its answer. */
  #api(command: string): Promise<string> {
    return new Promise((resolve) => {
      let answer = ''
      const socket = net.connect(join(this.dir, 'admin.sock'))
      socket.setTimeout(API_TIMEOUT_MS, () => socket.destroy(new Error('no answer in time')))
      socket.once('connect', () => socket.end(`${command}\n`))
      socket.setEncoding('utf8').on('data', (chunk: string) => (answer += chunk))
      socket.once('close', () => resolve(answer))
      socket.once('error', (error) => resolve(`error: ${error.message}`))
    })
  }

  #config(): string {
    return `# written by lameduck rollout --ingress haproxy
global
  maxconn 8192
  stats socket ${join(this.dir, 'admin.sock')} mode 600 level admin
  log stdout format raw local0
defaults
  mode http
  log global
  log-format "%[date(0,ms)] %cp %ST %si:%sp %rc %ts %s"
  timeout connect 5s
  timeout client 75s
  timeout http-keep-alive 75s
  timeout server 60s
  retries ${RETRIES}
  option redispatch
  http-reuse safe
frontend lab
  bind 127.0.0.1:${this.port} backlog 4096
  default_backend ${BACKEND}
backend ${BACKEND}
  balance roundrobin
`
  }
}

/** A pod's name as a haproxy server name (letters, digits, '-', '_', '.'). */
function serverName(pod: string): string {
  return pod.replace(/[^A-Za-z0-9_.-]/g, '_')
}

/**
 * Whether haproxy answered `status` itself, and why, from its termination state (first
 * character: who ended the request, S the server, s a server timeout; second: the phase, C
 * while connecting, H while waiting for the response headers). A pod's own 502 ends with '--'.
 */
function haproxyError(status: number, state: string, server: string): IngressError | undefined {
  if (!PROXY_ERROR_STATUSES.includes(status)) return undefined
  if (state[0] === '-' || state[0] === 'C' || state[0] === 'c') return undefined
  if (server === '<NOSRV>') return 'no-endpoint'
  if (state[0] === 's' || status === 504) return 'timeout'
  if (state[1] === 'C') return 'connect'
  if (state[0] === 'S') return 'closed'
  return 'other'
}
