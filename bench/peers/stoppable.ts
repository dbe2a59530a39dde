// Peer: stoppable, as its README shows: the server decorated, server.stop() on SIGTERM
// (grace: its default, Infinity).
import http from 'node:http'
import stoppable from 'stoppable'
import { handle } from '../../examples/routes.js'

const pod = process.env.HOSTNAME ?? 'stoppable'
const server = stoppable(http.createServer((req, res) => handle(pod, req, res)))
server.listen(Number(process.env.PORT ?? 8080))

process.on('SIGTERM', () => {
  server.stop()
})
