// The example service's routes, shared by examples/server.ts (with lameduck),
// examples/naive.ts (without) and the peer libraries' servers in bench/peers: the traffic
// shapes the rollout lab mixes.
//
//   GET  /?delay=MS                          a JSON answer after MS ms (0 by default)
//   GET  /stream?chunks=N&interval=MS        a streamed response: headers and a first chunk
//                                            at once, then N-1 more chunks, MS ms apart
//                                            (5 and 100 by default)
//   POST /echo                               reads the whole body, answers with its size
import type { IncomingMessage, ServerResponse } from 'node:http'

const MAX_DELAY_MS = 60_000
const MAX_CHUNKS = 1_000

function number(url: URL, key: string, fallback: number, max: number): number {
  const value = Number(url.searchParams.get(key) ?? fallback)
  return Number.isFinite(value) && value >= 0 ? Math.min(value, max) : fallback
}

export function handle(pod: string, req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://localhost')
  if (url.pathname === '/stream') {
    const chunks = Math.max(1, number(url, 'chunks', 5, MAX_CHUNKS))
    const interval = number(url, 'interval', 100, MAX_DELAY_MS)
    res.setHeader('content-type', 'text/plain')
    let sent = 0
    const next = () => {
      sent++
      res.write(`${pod} chunk ${sent}/${chunks}\n`)
      if (sent === chunks) res.end()
      else setTimeout(next, interval)
    }
    next()
    return
  }
  if (url.pathname === '/echo' && req.method === 'POST') {
    let bytes = 0
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length
    })
    req.on('end', () => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ pod, received: bytes }))
    })
    return
  }
  const delay = number(url, 'delay', 0, MAX_DELAY_MS)
  setTimeout(() => {
    res.setHeader('content-type', 'application/json')
    res.end(JSON.stringify({ pod, path: url.pathname, delay }))
  }, delay)
}
