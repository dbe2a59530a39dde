// The upstream of `lameduck serve` (proxy mode): where it is, and whether it answers.
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

/** Finds a free loopback port for the child to listen on: bind port 0, read it, release it. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, host, () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => resolve(port))
    })
  })
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
