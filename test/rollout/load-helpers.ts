// A load generator sending a few requests of one client kind through a Service model that
// routes to one backend, for the tests of the client kinds (load.test.ts, clients.test.ts).
import { clientKind } from '../../src/rollout/clients/index.js'
import { Clock } from '../../src/rollout/clock.js'
import { ServiceModel } from '../../src/rollout/drivers/model.js'
import { LoadGenerator, type LoadSummary } from '../../src/rollout/load.js'
import { Recorder } from '../../src/rollout/recorder.js'
import { within } from '../helpers.js'

export interface LoadRun {
  backendPort: number
  client: string
  path?: string
  method?: 'GET' | 'POST'
  /** Requests to send. @default 4 */
  count?: number
  /** Requests issued per second; a low rate leaves time between them. @default 100 */
  rate?: number
  pools?: number
  timeoutMs?: number
  wsPath?: string
}

const services = new Set<ServiceModel>()

/** Closes every Service model `runLoad` opened; call it from `after()`. */
export async function closeServices(): Promise<void> {
  for (const service of services) await service.close()
  services.clear()
}

/** Sends `count` requests and resolves once each has its outcome. */
export async function runLoad(run: LoadRun): Promise<{ recorder: Recorder; summary: LoadSummary }> {
  const count = run.count ?? 4
  const clock = new Clock()
  const recorder = new Recorder(clock)
  const service = new ServiceModel({
    clock,
    recorder,
    propagationDelayMs: 0,
    propagationJitterMs: 0,
  })
  services.add(service)
  const port = await service.listen()
  service.publish('pod', run.backendPort, true)
  await within(
    'endpoint applied',
    new Promise<void>((resolve) => {
      const check = () => (service.routesTo('pod') ? resolve() : setTimeout(check, 2))
      check()
    }),
  )
  await clientKind(run.client)?.prepare?.()
  const generator = new LoadGenerator({
    port,
    rate: run.rate ?? 100,
    connections: 2,
    pools: run.pools ?? 1,
    paths: [{ path: run.path ?? '/', weight: 1, method: run.method ?? 'GET' }],
    clients: [{ kind: run.client, weight: 1 }],
    wsPath: run.wsPath ?? '/',
    timeoutMs: run.timeoutMs ?? 3_000,
    maxRequests: count,
    clock,
    recorder,
    service,
  })
  await within(`the ${run.client} clients started`, generator.ready(), 15_000)
  generator.start()
  await within(
    `${count} requests to ${run.path ?? '/'} issued`,
    new Promise<void>((resolve) => {
      const check = () => (generator.sent >= count ? resolve() : setTimeout(check, 5))
      check()
    }),
  )
  const summary = await within(
    `every request to ${run.path ?? '/'} has an outcome`,
    generator.stop(),
  )
  return { recorder, summary }
}
