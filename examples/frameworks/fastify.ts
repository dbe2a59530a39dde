// Fastify 5 with lameduck. lameduckFastify() manages `app.server` and closes the Fastify
// instance as the last onShutdown hook, so Fastify's onClose hooks run after every
// connection is gone. Do not call app.close() on SIGTERM yourself: it closes the listener
// at once (and return503OnClosing answers 503) instead of serving through the lame duck.
//
//   npm run build && PORT=8080 LAMEDUCK_DRAIN_DELAY_MS=3000 node dist/examples/frameworks/fastify.js
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import { lameduckFastify } from 'lameduck/fastify'

const app = Fastify({ logger: true })
app.get<{ Querystring: { delay?: string } }>('/', async (request) => {
  const delay = Number(request.query.delay ?? 0)
  if (delay > 0) await sleep(delay)
  return { framework: 'fastify', delay }
})
app.addHook('onClose', async () => {
  console.log('fastify: onClose hooks ran')
})

// lameduck logs through Fastify's pino logger: one JSON stream for both.
const ld = lameduckFastify(app, { logger: app.log, probes: { metrics: '/metrics' } })
ld.onShutdown('goodbye', () => console.log('fastify: every connection closed'))

const address = await app.listen({ port: Number(process.env.PORT ?? 8080), host: '0.0.0.0' })
console.log(`listening on ${new URL(address).port}`)
