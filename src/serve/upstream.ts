// The upstream of `lameduck serve` (proxy mode): where it is, and whether it answers.
import { readFileSync } from 'node:fs'
import { request } from 'node:http'
import { connect, createServer } from 'node:net'

export interface Upstream {
  host: string
  port: number
}

/** Kubernetes' httpGet probe: any status from 200 to 399 is a success. */
const HEALTHY_MIN = 200
const HEALTHY_MAX = 399

/** Parses `host:port` (`[::1]:8081` for IPv6). Returns an error message on bad input. */
export function parseUpstream(text: string): Upstream | string {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s/]+)):(\d{1,5})$/.exec(text.trim())
  const port = match === null ? Number.NaN : Number(match[3])
  if (match === null || port < 1 || port > 65_535) {
    return `expects host:port such as 127.0.0.1:8081 (a port from 1 to 65535), got '${text}'`
  }
  return { host: (match[1] ?? match[2]) as string, port }
}

/** Where a free upstream port is looked for first: below the kernel's ephemeral range, so
 * it cannot collide with ports handed out for port 0 (the rollout lab's pod ports, other
 * programs' choices) between our check and the child's bind. */
const UPSTREAM_PORT_MIN = 10_000
const UPSTREAM_PORT_TRIES = 20

function ephemeralStart(): number {
  try {
    const text = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
    return Number(text.trim().split(/\s+/)[0]) || 0
  } catch {
    return 0
  }
}

function canListen(port: number, host: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(undefined))
    server.listen(port, host, () => {
      const address = server.address()
      const bound = typeof address === 'object' && address !== null ? address.port : undefined
      server.close(() => resolve(bound))
    })
  })
}

/** Finds a free loopback port for the child to listen on (bind, read, release): first at
 * random below the ephemeral range, else one the kernel picks. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const start = ephemeralStart()
  if (start > UPSTREAM_PORT_MIN + 1_000) {
    for (let i = 0; i < UPSTREAM_PORT_TRIES; i++) {
      const candidate = UPSTREAM_PORT_MIN + Math.floor(Math.random() * (start - UPSTREAM_PORT_MIN))
      const port = await canListen(candidate, host)
      if (port !== undefined) return port
    }
  }
  const port = await canListen(0, host)
  if (port === undefined) throw new Error(`no free port on ${host}`)
  return port
}

/**
 * One health check of the upstream, bounded by `timeoutMs`: a GET of `path` that answers
 * 200–399, or, without a path, a TCP connection that is accepted. Resolves to undefined
 * when healthy, else to a short reason. Never rejects.
 */
export function checkUpstream(
  upstream: Upstream,
  path: string | undefined,
  timeoutMs: number,
): Promise<string | undefined> {
  return new Promise((resolve) => {
    let settled = false
    const finish = (reason: string | undefined) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve(reason)
    }
    const timer = setTimeout(() => {
      finish(`no answer within ${timeoutMs} ms`)
      cleanup()
    }, timeoutMs)
    timer.unref()
    let cleanup = () => {}
    if (path === undefined) {
      const socket = connect(upstream.port, upstream.host)
      cleanup = () => socket.destroy()
      socket.once('connect', () => {
        socket.destroy()
        finish(undefined)
      })
      socket.once('error', (error: NodeJS.ErrnoException) => finish(error.code ?? error.message))
      return
    }
    const req = request(
      {
        host: upstream.host,
        port: upstream.port,
        path,
        method: 'GET',
        agent: false,
        headers: { host: `${upstream.host}:${upstream.port}`, 'user-agent': 'lameduck-serve' },
      },
      (res) => {
        res.resume()
        const status = res.statusCode ?? 0
        finish(
          status >= HEALTHY_MIN && status <= HEALTHY_MAX
            ? undefined
            : `GET ${path} answered ${status}`,
        )
        res.once('end', () => req.destroy())
      },
    )
    cleanup = () => req.destroy()
    req.once('error', (error: NodeJS.ErrnoException) => finish(error.code ?? error.message))
    req.end()
  })
}
