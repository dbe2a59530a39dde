// A node:http service with WebSockets (the `ws` package) and lameduck. At SIGTERM
// readiness answers 503 and every WebSocket gets close code 1001 "going away", so its
// client reconnects, through the Service, to another pod; HTTP requests drain as in
// examples/server.ts. Compare examples/ws-naive.ts, the same service without lameduck.
//
//   npm run build
//   PORT=8080 LAMEDUCK_DRAIN_DELAY_MS=3000 node dist/examples/ws-server.js
//   WebSocket ws://localhost:8080/ws      echoes every message
//   curl localhost:8080/readyz            {"status":"ready"}, 503 once SIGTERM arrived
//
// In the rollout lab:
//   lameduck rollout --client ws --ws-path /ws --readiness-path /readyz \
//     -- node dist/examples/ws-server.js
import http from 'node:http'
import { lameduck, webSockets } from 'lameduck'
import { WebSocketServer } from 'ws'
import { handle } from './routes.js'

const port = Number(process.env.PORT ?? 8080)
const name = process.env.HOSTNAME ?? 'ws-server'

const server = http.createServer((req, res) => handle(name, req, res))
const wss = new WebSocketServer({ server, path: '/ws' })
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
})

const ld = lameduck(server)
webSockets(ld, wss)

server.listen(port, () => {
  console.log(`ws-server: listening on ${(server.address() as { port: number }).port}`)
})
