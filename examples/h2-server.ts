// An HTTP/2 service (h2c: HTTP/2 without TLS, as behind a mesh or an ingress that speaks
// h2c to its backends) with lameduck. At SIGTERM readiness answers 503; every session gets
// the two-step GOAWAY so clients open new sessions elsewhere; in-flight streams finish.
// Compare examples/h2-naive.ts, the same service without lameduck.
//
// Kubernetes probes with HTTP/1.1, which an h2c-only server cannot answer, so the probes
// listen on their own port, LAMEDUCK_PROBE_PORT:
//
//   npm run build
//   PORT=8080 LAMEDUCK_PROBE_PORT=8081 LAMEDUCK_DRAIN_DELAY_MS=3000 node dist/examples/h2-server.js
//   curl --http2-prior-knowledge 'localhost:8080/?delay=500'
//   curl localhost:8081/readyz            {"status":"ready"}, 503 once SIGTERM arrived
//
// In the rollout lab:
//   lameduck rollout --client h2 --probe-port-env LAMEDUCK_PROBE_PORT --readiness-path /readyz \
//     -- node dist/examples/h2-server.js
import type { IncomingMessage, ServerResponse } from 'node:http'
import http2 from 'node:http2'
import { lameduck } from 'lameduck'
import { handle } from './routes.js'

const port = Number(process.env.PORT ?? 8080)
const name = process.env.HOSTNAME ?? 'h2-server'

// The compatibility API's request and response have the methods the routes use.
const server = http2.createServer((req, res) =>
  handle(name, req as unknown as IncomingMessage, res as unknown as ServerResponse),
)

lameduck(server)

server.listen(port, () => {
  console.log(`h2-server: listening on ${(server.address() as { port: number }).port}`)
})
