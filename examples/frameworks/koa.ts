// Koa 3 with lameduck: Koa has no shutdown of its own; lameduck manages the node:http
// server that runs app.callback().
//
//   npm run build && PORT=8080 LAMEDUCK_DRAIN_DELAY_MS=3000 node dist/examples/frameworks/koa.js
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import Koa from 'koa'
import { lameduck } from 'lameduck'

const app = new Koa()
app.use(async (ctx) => {
  const delay = Number(ctx.query.delay ?? 0)
  if (delay > 0) await sleep(delay)
  ctx.body = { framework: 'koa', delay }
})

const server = http.createServer(app.callback()) // or: const server = app.listen(port)
const ld = lameduck(server, { probes: { metrics: '/metrics' } })
ld.onShutdown('goodbye', () => console.log('koa: every connection closed'))

server.listen(Number(process.env.PORT ?? 8080), () => {
  console.log(`listening on ${(server.address() as { port: number }).port}`)
})
