// The same WebSocket service as examples/ws-server.ts with no shutdown handling: at SIGTERM
// the process ends at once and every WebSocket is cut without a close frame (code 1006 at
// the client). The rollout lab runs it to show what lameduck fixes.
//
//   PORT=8080 node dist/examples/ws-naive.js
import http from 'node:http'
import { WebSocketServer } from 'ws'
import { handle } from './routes.js'

const port = Number(process.env.PORT ?? 8080)
const name = process.env.HOSTNAME ?? 'ws-naive'

const server = http.createServer((req, res) => handle(name, req, res))
const wss = new WebSocketServer({ server, path: '/ws' })
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
})

server.listen(port, () => {
  console.log(`ws-naive: listening on ${(server.address() as { port: number }).port}`)
})
