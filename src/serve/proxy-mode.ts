// `lameduck serve -- <command>` (proxy mode): the command runs as a supervised child, and a
// node:http proxy managed by lameduck() stands in front of it, so the library's shutdown
// contract applies to a service in any language.
import { createServer } from 'node:http'
import { constants } from 'node:os'
import { childStopHookMs, FORCE_EXIT_MARGIN_MS, forceExitAfterMs } from '../contract.js'
import { lameduck } from '../lameduck.js'
import type { Lameduck, ShutdownOutcome } from '../lifecycle.js'
import type { LoggerLike } from '../options.js'
import { Child, type ChildExit, exitStatus, missingCommand, type StopResult } from './child.js'
import { groupListening, type Listening } from './diagnose.js'
import { HttpProxy } from './proxy.js'
import { checkUpstream, freePort, type Upstream } from './upstream.js'

/** How often the upstream is tried while it starts. */
export const UPSTREAM_POLL_MS = 100
/** Signals passed on to the child, as tini and dumb-init do, unless they are shutdown
 * signals (LAMEDUCK_SIGNALS): gunicorn and nginx reload on SIGHUP, gunicorn upgrades on
 * SIGUSR2. Without a handler node would die of them, and the child with it. */
export const FORWARDED_SIGNALS: readonly NodeJS.Signals[] = ['SIGHUP', 'SIGUSR2']

export interface ProxyModeOptions {
  command: string
  args: readonly string[]
  /** Where the proxy listens. */
  port: number
  /** Listen address; node's default (every address) when undefined. */
  host: string | undefined
  /** Where the child listens; a free loopback port (passed to it as PORT) when undefined. */
  upstream: Upstream | undefined
  /** GET this path on the upstream for readiness (200–399); a TCP connect when undefined. */
  upstreamHealth: string | undefined
  stopSignal: NodeJS.Signals
  /** Time the child gets after its stop signal before its process group is SIGKILLed. */
  childStopTimeoutMs: number
  drainDelayMs: number
  shutdownTimeoutMs: number
  checkTimeoutMs: number
  probePort: number | undefined
  maxHeaderSize: number
  headersTimeoutMs: number
  requestTimeoutMs: number
  keepAliveTimeoutMs: number
  logger: LoggerLike | false
  /** The child's environment before PORT is set (the supervisor's own, by default). */
  env: NodeJS.ProcessEnv
}

/** The total time, from the signal, by which `lameduck serve` has exited in any case: the
 * figure a grace period must cover (plus the kubelet's own margin). */
export function stopBudgetMs(options: {
  drainDelayMs: number
  shutdownTimeoutMs: number
  childStopTimeoutMs: number
}): number {
  return forceExitAfterMs({
    drainDelayMs: options.drainDelayMs,
    shutdownTimeoutMs: options.shutdownTimeoutMs,
    hooksMs: childStopHookMs(options.childStopTimeoutMs),
  })
}

/** When serve first says what it is still waiting for while the upstream starts; each
 * report comes twice as late as the one before, up to WAIT_REPORT_MAX_MS apart. */
export const WAIT_REPORT_FIRST_MS = 1_000
const WAIT_REPORT_MAX_MS = 30_000

/** What serve waits for while the upstream does not answer: for the log and readiness. */
function describeWait(wait: {
  upstream: Upstream
  health: string | undefined
  reason: string
  waitedMs: number
  pid: number
  listening: Listening[] | undefined
}): { fields: Record<string, unknown>; text: string } {
  const address = `${wait.upstream.host}:${wait.upstream.port}`
  const goal =
    wait.health === undefined
      ? `to accept connections on ${address}`
      : `to answer GET ${wait.health} on ${address} with 200-399`
  let text = `waiting ${(wait.waitedMs / 1000).toFixed(1)} s for the child (pid ${wait.pid}, given PORT=${wait.upstream.port}) ${goal}: ${wait.reason}`
  if (wait.listening !== undefined) {
    const elsewhere = wait.listening.filter((l) => l.port !== wait.upstream.port)
    if (wait.listening.length === 0) text += '; no process of its group listens on a TCP port'
    else if (elsewhere.length > 0) {
      const first = elsewhere[0] as Listening
      text += `; it listens on ${elsewhere.map((l) => l.address).join(', ')} instead: have it listen on $PORT, or pass --upstream 127.0.0.1:${first.port}`
    } else {
      text += `; it listens on ${wait.listening.map((l) => l.address).join(', ')}`
    }
  }
  return {
    fields: {
      upstream: address,
      port: wait.upstream.port,
      pid: wait.pid,
      waitedMs: Math.round(wait.waitedMs),
      reason: wait.reason,
      listening: wait.listening?.map((l) => l.address),
    },
    text,
  }
}

/** An exit the stop signal explains: 0, death by that signal, or 128 + its number. */
function cleanStop(exit: ChildExit, stopSignal: NodeJS.Signals): boolean {
  return (
    exit.code === 0 ||
    exit.signal === stopSignal ||
    exit.code === 128 + (constants.signals[stopSignal] ?? 0)
  )
}

function describeExit(exit: ChildExit): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `exit code ${exit.code}`
}

/** Thrown when the proxy cannot start (port taken, command not found). */
export class ServeStartError extends Error {
  override name = 'ServeStartError'
}

/**
 * Runs proxy mode to its end and resolves to the exit code:
 *
 * 1. Listen on `port` (probes answer at once: startup and readiness 503 while starting).
 * 2. Start the command in its own process group, with PORT set to the upstream's port.
 * 3. Ready once the upstream answers its health path (or accepts a connection); from then
 *    on each readiness probe asks the upstream again (bounded by checkTimeout).
 * 4. On SIGTERM/SIGINT, lameduck's contract runs on the proxy's listener: readiness 503,
 *    lame duck with `Connection: close`, close, in-flight requests finish through the
 *    proxy. Only then the child gets `stopSignal` and `childStopTimeout` to exit, then
 *    SIGKILL. A second signal forces both.
 * 5. Exit code: lameduck's (0, or 1 when anything was forced, the child SIGKILLed
 *    included), or the child's own when it failed. A child that exits on its own ends the
 *    supervisor at once with the child's status.
 */
export async function runProxyMode(options: ProxyModeOptions): Promise<number> {
  const log = (level: 'info' | 'warn' | 'error', fields: Record<string, unknown>, msg: string) => {
    if (options.logger !== false) options.logger[level](fields, msg)
  }
  // A command that cannot run is bad input: said before anything listens or logs.
  const missing = missingCommand(options.command, options.env)
  if (missing !== undefined) throw new ServeStartError(missing.message, { cause: missing })
  const upstream = options.upstream ?? { host: '127.0.0.1', port: await freePort() }
  const address = `${upstream.host}:${upstream.port}`

  const server = createServer({
    maxHeaderSize: options.maxHeaderSize,
    headersTimeout: options.headersTimeoutMs,
    requestTimeout: options.requestTimeoutMs,
    // Node checks both timeouts on this interval (30 s by default): keep it well below them.
    connectionsCheckingInterval: Math.max(
      50,
      Math.min(1_000, Math.floor(options.headersTimeoutMs / 4)),
    ),
    insecureHTTPParser: false,
    requireHostHeader: true,
  })
  server.keepAliveTimeout = options.keepAliveTimeoutMs

  const proxy = new HttpProxy({ upstream, logger: options.logger })
  let child: Child | undefined
  const check = async () => {
    const reason = await checkUpstream(upstream, options.upstreamHealth, options.checkTimeoutMs)
    if (reason !== undefined) throw new Error(`upstream ${address}: ${reason}`)
  }
  const ld: Lameduck = lameduck(server, {
    autoReady: false,
    exit: false,
    drainDelay: options.drainDelayMs,
    shutdownTimeout: options.shutdownTimeoutMs,
    checkTimeout: options.checkTimeoutMs,
    checks: { upstream: check },
    ...(options.probePort === undefined ? {} : { probes: { port: options.probePort } }),
    logger: options.logger,
  })
  proxy.attach(server)

  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new ServeStartError(
          `cannot listen on port ${options.port}${error.code === 'EADDRINUSE' ? ': the port is in use' : `: ${error.message}`}`,
          { cause: error },
        ),
      ),
    )
    server.listen(options.port, options.host, resolve)
  }).catch((error) => {
    ld.shutdown('listen failed')
    throw error
  })
  server.on('error', (error) =>
    log(
      'error',
      { event: 'server-error', error: error.message },
      `lameduck serve: ${error.message}`,
    ),
  )

  try {
    child = await Child.start(options.command, options.args, {
      ...options.env,
      PORT: String(upstream.port),
    })
  } catch (error) {
    server.close()
    server.closeAllConnections()
    await ld.shutdown('the command could not start')
    throw new ServeStartError((error as Error).message, { cause: error })
  }
  const supervised = child
  const listening = server.address()
  log(
    'info',
    {
      event: 'serve',
      port: typeof listening === 'object' && listening !== null ? listening.port : options.port,
      upstream: address,
      pid: supervised.pid,
      command: [options.command, ...options.args].join(' '),
    },
    `lameduck serve: proxying port ${typeof listening === 'object' && listening !== null ? listening.port : options.port} to ${address}, child pid ${supervised.pid}`,
  )

  const forward = (signal: NodeJS.Signals) => {
    const sent = supervised.signal(signal)
    log(
      'info',
      { event: 'signal-forwarded', signal, pid: supervised.pid, sent },
      sent
        ? `lameduck serve: ${signal} forwarded to the child (pid ${supervised.pid})`
        : `lameduck serve: ${signal} received; the child has exited, nothing to forward it to`,
    )
  }
  // Never removed: one that arrives while serve exits must not end it with another code.
  for (const signal of FORWARDED_SIGNALS) {
    if (process.listenerCount(signal) === 0) process.on(signal, forward)
  }

  let stop: StopResult | undefined
  /** Starts the child's stop once (its signal, then SIGKILL at --child-stop-timeout). */
  const stopChild = (why: string): Promise<StopResult> => {
    if (!supervised.stopStarted) {
      log(
        'info',
        {
          event: 'child-stop',
          signal: options.stopSignal,
          timeoutMs: options.childStopTimeoutMs,
          why,
        },
        `lameduck serve: sending ${options.stopSignal} to the child (${why}), waiting up to ${options.childStopTimeoutMs} ms`,
      )
    }
    return supervised.stop(options.stopSignal, options.childStopTimeoutMs)
  }
  // Upgraded connections (WebSockets) are the child's to close: once the listener is closed
  // and no plain request is in flight, only tunnels can keep the close phase open, and
  // only the child can end them cleanly (a close frame). It gets its stop signal then, not
  // after the close phase's deadline has cut them.
  const stopForTunnels = () => {
    if (ld.state !== 'stopping' || supervised.stopStarted) return
    if (proxy.inFlight === 0 && proxy.tunnels > 0)
      void stopChild(`${proxy.tunnels} WebSocket/upgraded connection(s) still open`)
  }
  proxy.onSettled(stopForTunnels)
  ld.on('state', (state) => {
    if (state === 'stopping') stopForTunnels()
  })

  ld.onShutdown(
    'child',
    async (abort) => {
      if (abort.aborted) supervised.hurry()
      else abort.addEventListener('abort', () => supervised.hurry(), { once: true })
      stop = await stopChild('the drain is done')
      if (stop.kind === 'killed') {
        log(
          'warn',
          { event: 'child-killed', afterMs: stop.afterMs },
          `lameduck serve: the child did not exit within ${options.childStopTimeoutMs} ms of ${options.stopSignal}; SIGKILLed its process group`,
        )
      } else if (stop.kind === 'exited') {
        log(
          'info',
          { event: 'child-exit', afterMs: stop.afterMs, ...stop.exit },
          `lameduck serve: the child exited (${describeExit(stop.exit)}) ${stop.afterMs} ms after ${options.stopSignal}`,
        )
      }
    },
    { timeout: childStopHookMs(options.childStopTimeoutMs) },
  )

  let forceTimer: NodeJS.Timeout | undefined
  const shuttingDown = new Promise<ShutdownOutcome>((resolve) => {
    ld.on('state', (state) => {
      if (state !== 'draining' && state !== 'stopping') return
      if (forceTimer === undefined) {
        const budget = stopBudgetMs({
          drainDelayMs: state === 'draining' ? options.drainDelayMs : 0,
          shutdownTimeoutMs: options.shutdownTimeoutMs,
          childStopTimeoutMs: options.childStopTimeoutMs,
        })
        forceTimer = setTimeout(() => {
          log(
            'error',
            { event: 'force-exit', state: ld.state },
            `lameduck serve: still running ${budget} ms after the signal; exiting 1`,
          )
          supervised.kill()
          process.exit(1)
        }, budget)
        forceTimer.unref()
      }
      // After this state event returns: the shutdown promise is assigned once the
      // synchronous part of the shutdown has run.
      queueMicrotask(() => resolve(ld.shutdown()))
    })
  })

  // Readiness: poll until the upstream answers, the child exits, or the shutdown starts;
  // say what it waits for, at a growing interval, in the log and in the readiness body.
  void (async () => {
    const began = performance.now()
    let nextReport = WAIT_REPORT_FIRST_MS
    for (;;) {
      if (ld.state !== 'starting' || supervised.exit !== undefined) return
      const reason = await checkUpstream(upstream, options.upstreamHealth, options.checkTimeoutMs)
      if (ld.state !== 'starting' || supervised.exit !== undefined) return
      const waited = performance.now() - began
      if (reason !== undefined && waited >= nextReport) {
        nextReport = Math.min(nextReport * 2, waited + WAIT_REPORT_MAX_MS)
        const waiting = describeWait({
          upstream,
          health: options.upstreamHealth,
          reason,
          waitedMs: waited,
          pid: supervised.pid,
          listening: groupListening(supervised.pid),
        })
        log('warn', { event: 'upstream-waiting', ...waiting.fields }, waiting.text)
        ld.notReady(waiting.text)
      }
      if (reason === undefined) {
        log(
          'info',
          { event: 'upstream-ready', upstream: address },
          `lameduck serve: upstream ${address} ${options.upstreamHealth === undefined ? 'accepts connections' : `answers GET ${options.upstreamHealth}`}`,
        )
        ld.ready()
        return
      }
      await new Promise((resolve) => setTimeout(resolve, UPSTREAM_POLL_MS))
    }
  })()

  const ownExit = supervised.exited.then((exit) => ({ exit, asked: supervised.stopping }))
  const first = await Promise.race([
    shuttingDown.then((outcome) => ({ kind: 'shutdown' as const, outcome })),
    ownExit.then((result) => ({ kind: 'child' as const, ...result })),
  ])

  let code: number
  const onItsOwn = first.kind === 'child' && ld.state !== 'draining' && ld.state !== 'stopping'
  if (onItsOwn) {
    // The child died on its own while we were serving: nothing behind the proxy answers any
    // more, so there is nothing to drain. Exit with its status, as an init process does.
    const status = exitStatus(first.exit)
    log(
      'error',
      { event: 'child-died', ...first.exit, exitCode: status },
      `lameduck serve: the child exited on its own (${describeExit(first.exit)}); exiting ${status}`,
    )
    clearTimeout(forceTimer)
    // The listener stays open until the process exits, in a moment: closing it here would
    // be taken by the runtime for an application closing its own listener early.
    server.closeAllConnections()
    proxy.close()
    code = status
  } else {
    const outcome = await shuttingDown
    proxy.close()
    const exit = supervised.exit ?? (await ownExit).exit
    clearTimeout(forceTimer)
    if (stop?.kind === 'killed') code = 1
    else if (!cleanStop(exit, options.stopSignal)) {
      code = exitStatus(exit)
      log(
        'error',
        { event: 'child-failed', ...exit, exitCode: code },
        `lameduck serve: the child ended with ${describeExit(exit)}; exiting ${code}`,
      )
    } else code = outcome.exitCode
  }
  const fate = childFate(onItsOwn ? undefined : stop, supervised.exit, options)
  log(
    code === 0 ? 'info' : 'warn',
    { event: 'exit', exitCode: code, child: fate.kind, childExit: supervised.exit },
    `lameduck serve: exiting ${code}; the child ${fate.text}`,
  )
  // Anything still holding the event loop (a stuck socket) must not delay the exit.
  setTimeout(() => process.exit(code), FORCE_EXIT_MARGIN_MS).unref()
  return code
}

/** What became of the child, for the last log line. */
function childFate(
  stop: StopResult | undefined,
  exit: ChildExit | undefined,
  options: Pick<ProxyModeOptions, 'stopSignal' | 'childStopTimeoutMs'>,
): { kind: 'killed' | 'stopped' | 'exited-on-its-own' | 'unknown'; text: string } {
  if (stop?.kind === 'killed') {
    return {
      kind: 'killed',
      text: `did not exit within --child-stop-timeout ${options.childStopTimeoutMs} ms of ${options.stopSignal}: its process group was SIGKILLed`,
    }
  }
  if (stop?.kind === 'exited') {
    return {
      kind: 'stopped',
      text: `exited (${describeExit(stop.exit)}) ${stop.afterMs} ms after ${options.stopSignal}`,
    }
  }
  if (exit !== undefined) {
    return { kind: 'exited-on-its-own', text: `had exited on its own (${describeExit(exit)})` }
  }
  return { kind: 'unknown', text: 'is still running' }
}
