import { createServer, Server as HttpServer } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import { followPrimary } from './cluster.js'
import { describeValue, LameduckError } from './errors.js'
import { Lameduck, type Tracker } from './lifecycle.js'
import { registerSource, renderMetrics } from './metrics.js'
import { type LameduckOptions, resolveOptions } from './options.js'
import { Checks, type ProbeState, Probes } from './probes.js'
import { Http1Tracker, isHttpsServer } from './trackers/http1.js'
import { type Http2ServerLike, Http2Tracker, isHttp2Server } from './trackers/http2.js'

/** A node:http, node:https or node:http2 server. */
export type ServerLike = HttpServer | HttpsServer | Http2ServerLike

const managed = new WeakSet<object>()

/** True when `server` was passed to lameduck(), whose tracker then follows its connections. */
export function isManaged(server: unknown): boolean {
  return typeof server === 'object' && server !== null && managed.has(server)
}

function validateServers(servers: unknown): (HttpServer | Http2ServerLike)[] {
  const list = Array.isArray(servers) ? servers : [servers]
  for (const server of list) {
    if (!(server instanceof HttpServer || isHttpsServer(server) || isHttp2Server(server))) {
      throw new LameduckError(
        'LAMEDUCK_ERR_INVALID_SERVER',
        `Expected a node:http, node:https or node:http2 server (from http.createServer, https.createServer, http2.createServer or http2.createSecureServer), got ${describeValue(server)}`,
      )
    }
    if (managed.has(server)) {
      throw new LameduckError(
        'LAMEDUCK_ERR_INVALID_SERVER',
        'This server is already managed by lameduck; call lameduck() once per server',
      )
    }
  }
  if (new Set(list).size !== list.length) {
    throw new LameduckError('LAMEDUCK_ERR_INVALID_SERVER', 'The same server was passed twice')
  }
  return list as (HttpServer | Http2ServerLike)[]
}

/**
 * Manages the shutdown of one process's HTTP servers: on SIGTERM readiness answers 503,
 * the servers keep serving for `drainDelay` with `Connection: close`, then close, wait for
 * in-flight requests up to `shutdownTimeout`, run the `onShutdown` hooks, and exit.
 *
 * A worker with no HTTP server of its own (a queue consumer) passes `[]` with
 * `probes: { port }` (or `probes: false`): the same phases, deadlines and exit codes, with
 * `onDrain` stopping the consumption and `onShutdown` finishing the jobs in hand.
 *
 * Call it before `server.listen()`, or after: it becomes ready once every server listens.
 * Invalid options and `LAMEDUCK_*` environment values throw a LameduckError here.
 */
export function lameduck(
  servers: ServerLike | readonly ServerLike[],
  options: LameduckOptions = {},
): Lameduck {
  const list = validateServers(servers)
  const resolved = Object.freeze(resolveOptions(options))
  if (list.length === 0 && resolved.probes !== false && resolved.probes.port === undefined) {
    throw new LameduckError(
      'LAMEDUCK_ERR_INVALID_SERVER',
      'lameduck([]) manages no server, so its probes have nowhere to be answered: set probes.port (a probe server of its own, such as { probes: { port: 9000 } }, or LAMEDUCK_PROBE_PORT), or probes: false for the shutdown contract alone; or pass at least one server',
    )
  }
  // In a worker of `lameduck serve --workers`, the primary owns signals and readiness.
  const follower = followPrimary()
  const logger = follower?.logger(resolved.logger) ?? resolved.logger

  let lifecycle: Lameduck | undefined
  const own: ProbeState = {
    ready: () => lifecycle?.state === 'ready',
    started: () => lifecycle?.started === true,
    status: () => {
      const current = lifecycle?.state ?? 'starting'
      return current === 'starting' &&
        (lifecycle?.notReadyReason !== undefined ||
          (lifecycle?.started === true && lifecycle.waitingFor.length > 0))
        ? 'not ready'
        : current
    },
    reason: () => (lifecycle?.state === 'starting' ? lifecycle.notReadyReason : undefined),
    waitingFor: () => (lifecycle?.state === 'starting' ? lifecycle.waitingFor : []),
  }
  const state = follower?.probeState(own) ?? own
  let probes: Probes | undefined
  let probeServer: HttpServer | undefined
  let trackers: Tracker[] = []
  if (resolved.probes !== false) {
    probes = new Probes(
      resolved.probes,
      state,
      new Checks(resolved.checks, resolved.checkTimeout, logger),
      follower === undefined
        ? (res) => renderMetrics({ lifecycle: lifecycle as Lameduck, trackers }, res)
        : (res) => follower.metrics(res),
      new Checks(resolved.livenessChecks, resolved.checkTimeout, logger, 'liveness'),
    )
  }
  if (probes !== undefined && resolved.probes !== false && resolved.probes.port !== undefined) {
    const own = probes
    probeServer = createServer((req, res) => {
      const kind = own.match(req.url)
      if (kind !== undefined) own.handle(kind, req, res)
      else {
        res.writeHead(404, { 'content-type': 'application/json' })
        res.end('{"status":"not found"}\n')
      }
    })
    probeServer.on('error', (error) => {
      if (lifecycle !== undefined && lifecycle.listenerCount('error') > 0)
        lifecycle.emit('error', error)
      else
        throw new LameduckError(
          'LAMEDUCK_ERR_INVALID_OPTION',
          `The probe server could not listen on port ${resolved.probes === false ? '' : resolved.probes.port}: ${error.message}`,
          { cause: error },
        )
    })
    probeServer.once('listening', () => {
      const address = lifecycle?.probeAddress
      if (address !== undefined) lifecycle?.emit('probeListening', address)
    })
    probeServer.listen(resolved.probes.port, resolved.probes.host)
  }

  const ownProbes = probeServer === undefined ? probes : undefined
  if (ownProbes !== undefined && resolved.probes !== false && logger !== false) {
    const path = resolved.probes.metrics
    // A request listener is an opaque function: whether the application answers `path`
    // cannot be known without calling it with a made-up request, which would run its code.
    if (path !== false && list.length > 0) {
      logger.info(
        { event: 'metrics-path', path },
        `lameduck: ${path} is answered by lameduck on the application's own port, so an application route ${path} is never reached; to serve lameduck's figures from the application's own metrics use promClientMetrics() or openTelemetryMetrics(), or move lameduck's to probes.port`,
      )
    }
  }
  trackers = list.map((server) =>
    server instanceof HttpServer || isHttpsServer(server)
      ? new Http1Tracker(server, ownProbes)
      : new Http2Tracker(server as Http2ServerLike, ownProbes),
  )
  for (const server of list) managed.add(server)
  lifecycle = new Lameduck({
    options: resolved,
    logger,
    servers: list,
    trackers,
    probeServer,
    follower,
  })
  registerSource({ lifecycle, trackers })
  follower?.attach(lifecycle, trackers, resolved)
  return lifecycle
}
