// Express 5 with lameduck: Express has no shutdown of its own; lameduck manages the
// node:http server it runs on.
//
//   npm run build && PORT=8080 LAMEDUCK_DRAIN_DELAY_MS=3000 node dist/examples/frameworks/express.js
//   curl 'localhost:8080/?delay=500'   then   kill -TERM <pid>   and   curl -i localhost:8080/readyz
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import express from 'express'
import { lameduck } from 'lameduck'

const app = express()
app.get('/', async (req, res) => {
  const delay = Number(req.query.delay ?? 0)
  if (delay > 0) await sleep(delay)
  res.json({ framework: 'express', delay })
})

const server = http.createServer(app) // or: const server = app.listen(port)
const ld = lameduck(server, { probes: { metrics: '/metrics' } })
ld.onShutdown('goodbye', () => console.log('express: every connection closed'))

server.listen(Number(process.env.PORT ?? 8080), () => {
  console.log(`listening on ${(server.address() as { port: number }).port}`)
})
