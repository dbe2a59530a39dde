// Fastify: lameduck manages the underlying node:http server, and the Fastify instance is
// closed as the last onShutdown hook, so its own onClose hooks (database pools, plugins)
// run once every connection is gone. Fastify is not imported: FastifyLike is structural.
import { lameduck, type ServerLike } from '../lameduck.js'
import type { Lameduck } from '../lifecycle.js'
import type { LameduckOptions } from '../options.js'

/** The part of a Fastify instance the adapter uses (`fastify()`'s return value fits). */
export interface FastifyLike {
  /** The node:http or node:https server Fastify created (`fastify().server`). */
  readonly server: ServerLike
  /** Runs Fastify's onClose hooks and closes its server (already closed by then). */
  close(): PromiseLike<unknown>
}

/**
 * `lameduck(app.server, options)`, plus one onShutdown hook, registered first so that it
 * runs last (hooks run last-registered first): `app.close()`, which runs Fastify's onClose
 * hooks. Call it before `app.listen()`; do not also call `app.close()` on SIGTERM yourself,
 * which would close the listener at once (Fastify then answers 503 to new requests, see
 * `return503OnClosing`) instead of serving through the lame-duck phase.
 */
export function lameduckFastify(app: FastifyLike, options?: LameduckOptions): Lameduck {
  const ld = lameduck(app.server, options)
  ld.onShutdown('fastify', () => app.close())
  return ld
}
