// Peer: @godaddy/terminus, as its README's usage shows: a health check (the readiness probe's
// path) that fails once shutting down, an onSignal cleanup, the default timeout (1 s).
// TERMINUS_BEFORE_SHUTDOWN_MS adds the beforeShutdown delay its Kubernetes section advises
// (5 s there, with useExit0).
import http from 'node:http'
import { createTerminus } from '@godaddy/terminus'
import { handle } from '../../examples/routes.js'

const pod = process.env.HOSTNAME ?? 'terminus'
const server = http.createServer((req, res) => handle(pod, req, res))
const delay = Number(process.env.TERMINUS_BEFORE_SHUTDOWN_MS ?? 0)

function onSignal() {
  console.log('server is starting cleanup')
  return Promise.all([])
}

function beforeShutdown() {
  return new Promise<void>((resolve) => {
    setTimeout(resolve, delay)
  })
}

createTerminus(server, {
  healthChecks: { '/readyz': () => Promise.resolve() },
  signal: 'SIGTERM',
  onSignal,
  ...(delay > 0 ? { beforeShutdown, useExit0: true } : {}),
})

server.listen(Number(process.env.PORT ?? 8080))
