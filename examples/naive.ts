// The same service as examples/server.ts with no shutdown handling at all: Node's default
// action for SIGTERM ends the process at once, cutting in-flight requests, and nothing
// tells keep-alive clients to move. The rollout lab runs it to show what lameduck fixes.
//
//   PORT=8080 node dist/examples/naive.js
//   curl 'localhost:8080/?delay=500'
import http from 'node:http'
import { handle } from './routes.js'

const port = Number(process.env.PORT ?? 8080)
const name = process.env.HOSTNAME ?? 'naive'

const server = http.createServer((req, res) => handle(name, req, res))

server.listen(port, () => {
  console.log(`naive: listening on ${(server.address() as { port: number }).port}`)
})
