// Peer: lightship, as its README shows: signalReady() once listening, server.close() as the
// shutdown handler, its probes on their own port (LIGHTSHIP_PORT, /ready) and its Kubernetes
// defaults (shutdownDelay 5 s). Needs Node >= 22.13. createLightship() comes first, as in the
// README's other examples: in the order of its shutdown-handler example, the listen callback
// can run before `lightship` is initialised and the process dies with a ReferenceError.
import http from 'node:http'
import { createLightship } from 'lightship'
import { handle } from '../../examples/routes.js'

const pod = process.env.HOSTNAME ?? 'lightship'

const lightship = await createLightship()

const server = http
  .createServer((req, res) => handle(pod, req, res))
  .listen(Number(process.env.PORT ?? 8080), () => {
    // Lightship default state is "SERVER_IS_NOT_READY".
    lightship.signalReady()
  })
  .on('error', () => {
    lightship.shutdown()
  })

lightship.registerShutdownHandler(() => {
  server.close()
})
