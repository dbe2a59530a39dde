// The same HTTP/2 service as examples/h2-server.ts with no shutdown handling: at SIGTERM
// the process ends at once, cutting its sessions and their streams, and clients learn it
// only from their failed requests. Its readiness is a plain HTTP/1.1 listener on
// PROBE_PORT that always answers 200. The rollout lab runs it to show what lameduck fixes.
//
//   PORT=8080 PROBE_PORT=8081 node dist/examples/h2-naive.js
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import http2 from 'node:http2'
import { handle } from './routes.js'

const port = Number(process.env.PORT ?? 8080)
const probePort = Number(process.env.PROBE_PORT ?? process.env.LAMEDUCK_PROBE_PORT ?? 8081)
const name = process.env.HOSTNAME ?? 'h2-naive'

const server = http2.createServer((req, res) =>
  handle(name, req as unknown as IncomingMessage, res as unknown as ServerResponse),
)
server.listen(port, () => {
  console.log(`h2-naive: listening on ${(server.address() as { port: number }).port}`)
})

http.createServer((_req, res) => res.end('ok')).listen(probePort)
