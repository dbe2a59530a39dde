// A plain node:http service with lameduck: on SIGTERM readiness answers 503, the server
// keeps serving with `Connection: close` for the drain delay, then closes, lets in-flight
// requests finish and exits. Compare examples/naive.ts, the same service without it.
//
//   npm run build
//   PORT=8080 LAMEDUCK_DRAIN_DELAY_MS=3000 node dist/examples/server.js
//   curl 'localhost:8080/?delay=500'      a request answered after 500 ms
//   curl -N localhost:8080/stream         a streamed response: 5 chunks, 100 ms apart
//   curl -d hello localhost:8080/echo     a POST: answers with the size of its body
//   curl localhost:8080/readyz            {"status":"ready"}, 503 once SIGTERM arrived
import http from 'node:http'
import { lameduck } from 'lameduck'
import { handle } from './routes.js'

const port = Number(process.env.PORT ?? 8080)
const name = process.env.HOSTNAME ?? 'server'

const server = http.createServer((req, res) => handle(name, req, res))

const ld = lameduck(server)
ld.onShutdown('goodbye', () => {
  console.log(`server: ${name} closed every connection`)
})

server.listen(port, () => {
  console.log(`server: listening on ${(server.address() as { port: number }).port}`)
})
