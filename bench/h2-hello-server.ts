// The hello world of bench/hello-server.ts over HTTP/2 without TLS (h2c), for the per-request
// cost of lameduck on the HTTP/2 path:
//
//   node dist/bench/h2-hello-server.js bare        http2.createServer, nothing else
//   node dist/bench/h2-hello-server.js lameduck    the same with lameduck(server), drainDelay 0
//
// Both answer with the compatibility API, as most HTTP/2 apps in Node do. It listens on
// 127.0.0.1 on a free port and prints `listening PORT`. SIGTERM stops it (lameduck's own
// shutdown, or closing the server and its sessions); on exit it prints `served N`.
import http2 from 'node:http2'
import { lameduck } from 'lameduck'

const MODES = ['bare', 'lameduck'] as const
type Mode = (typeof MODES)[number]
const mode = process.argv[2] as Mode
if (!MODES.includes(mode)) {
  console.error(`h2-hello-server: expected a mode (${MODES.join(', ')}), got ${process.argv[2]}`)
  process.exit(2)
}

let served = 0
const server = http2.createServer((_req, res) => {
  served++
  res.setHeader('content-type', 'text/plain')
  res.end('hello world')
})

if (mode === 'lameduck') {
  lameduck(server, { drainDelay: 0 })
} else {
  const sessions = new Set<http2.ServerHttp2Session>()
  server.on('session', (session) => {
    sessions.add(session)
    session.once('close', () => sessions.delete(session))
  })
  process.on('SIGTERM', () => {
    server.close()
    for (const session of sessions) session.close()
  })
}

process.on('exit', () => {
  process.stdout.write(`served ${served}\n`)
})

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`)
})
