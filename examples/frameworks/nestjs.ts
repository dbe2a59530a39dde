// NestJS 11 (Express platform) with lameduck. Do not call app.enableShutdownHooks(): it
// listens to SIGTERM itself, closes the HTTP server at once (no lame-duck phase) and then
// re-sends the signal to the process, which lameduck would take as a second signal and
// force. Instead, app.close() runs as an onShutdown hook, once every connection is gone:
// Nest's onModuleDestroy, beforeApplicationShutdown and onApplicationShutdown hooks run
// there, as enableShutdownHooks would have run them.
//
//   npm run build && PORT=8080 LAMEDUCK_DRAIN_DELAY_MS=3000 node dist/examples/frameworks/nestjs.js
import 'reflect-metadata'
import type { Server } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { Controller, Get, Module, type OnApplicationShutdown, Query } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { lameduck } from 'lameduck'

@Controller()
class HelloController {
  @Get()
  async hello(@Query('delay') delayParam?: string) {
    const delay = Number(delayParam ?? 0)
    if (delay > 0) await sleep(delay)
    return { framework: 'nestjs', delay }
  }
}

@Module({ controllers: [HelloController] })
class AppModule implements OnApplicationShutdown {
  onApplicationShutdown() {
    console.log('nestjs: onApplicationShutdown ran')
  }
}

const app = await NestFactory.create(AppModule, { logger: ['error', 'warn'] })
const server = app.getHttpServer() as Server
const ld = lameduck(server, { probes: { metrics: '/metrics' } })
ld.onShutdown('nestjs', () => app.close())

await app.listen(Number(process.env.PORT ?? 8080))
console.log(`listening on ${(server.address() as { port: number }).port}`)
