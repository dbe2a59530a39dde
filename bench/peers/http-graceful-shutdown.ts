// Peer: http-graceful-shutdown, as its README's basic usage shows: gracefulShutdown(server),
// its defaults (SIGINT and SIGTERM, 30 s timeout, process.exit at the end).
import http from 'node:http'
import gracefulShutdown from 'http-graceful-shutdown'
import { handle } from '../../examples/routes.js'

const pod = process.env.HOSTNAME ?? 'http-graceful-shutdown'
const server = http.createServer((req, res) => handle(pod, req, res))
server.listen(Number(process.env.PORT ?? 8080))

gracefulShutdown(server)
