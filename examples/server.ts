// A plain node:http service with lameduck: on SIGTERM readiness answers 503, the server
// keeps serving with `Connection: close` for the drain delay, then closes, lets in-flight
// requests finish and exits. Compare examples/naive.ts, the same service without it.
//
//   npm run build
//   PORT=8080 LAMEDUCK_DRAIN_DELAY_MS=3000 node dist/examples/server.js
//   curl 'localhost:8080/?delay=500'      a request answered after 500 ms
//   curl localhost:8080/readyz            {"status":"ready"}, 503 once SIGTERM arrived
import http from 'node:http'
import { lameduck } from 'lameduck'

const port = Number(process.env.PORT ?? 8080)
const name = process.env.HOSTNAME ?? 'server'

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://localhost')
  const delay = Number(url.searchParams.get('delay') ?? 0)
  setTimeout(
    () => {
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ pod: name, path: url.pathname, delay }))
    },
    Number.isFinite(delay) && delay > 0 ? delay : 0,
  )
})

const ld = lameduck(server)
ld.onShutdown('goodbye', () => {
  console.log(`server: ${name} closed every connection`)
})

server.listen(port, () => {
  console.log(`server: listening on ${(server.address() as { port: number }).port}`)
})
