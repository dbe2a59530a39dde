// Hono on Node (@hono/node-server) with lameduck: serve() returns the node:http server it
// created and started; hand that to lameduck (it becomes ready once the server listens).
//
//   npm run build && PORT=8080 LAMEDUCK_DRAIN_DELAY_MS=3000 node dist/examples/frameworks/hono.js
import type { Server } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { lameduck } from 'lameduck'

const app = new Hono()
app.get('/', async (c) => {
  const delay = Number(c.req.query('delay') ?? 0)
  if (delay > 0) await sleep(delay)
  return c.json({ framework: 'hono', delay })
})

const server = serve({ fetch: app.fetch, port: Number(process.env.PORT ?? 8080) }, (info) => {
  console.log(`listening on ${info.port}`)
})
// serve() is typed for HTTP/2 too; this one is node:http (lameduck rejects HTTP/2 servers).
const ld = lameduck(server as Server, { probes: { metrics: '/metrics' } })
ld.onShutdown('goodbye', () => console.log('hono: every connection closed'))
