// Peer: server.close() on SIGTERM, the shutdown most Node services write by hand.
import http from 'node:http'
import { handle } from '../../examples/routes.js'

const pod = process.env.HOSTNAME ?? 'server-close'
const server = http.createServer((req, res) => handle(pod, req, res))
server.listen(Number(process.env.PORT ?? 8080))

process.on('SIGTERM', () => {
  server.close(() => process.exit(0))
})
