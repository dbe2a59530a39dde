// Peer: http-terminator, as its README shows: httpTerminator.terminate() instead of
// server.close(), here on SIGTERM (gracefulTerminationTimeout: its default, 5 s).
import http from 'node:http'
import { createHttpTerminator } from 'http-terminator'
import { handle } from '../../examples/routes.js'

const pod = process.env.HOSTNAME ?? 'http-terminator'
const server = http.createServer((req, res) => handle(pod, req, res))
server.listen(Number(process.env.PORT ?? 8080))

const httpTerminator = createHttpTerminator({ server })

process.on('SIGTERM', async () => {
  await httpTerminator.terminate()
})
