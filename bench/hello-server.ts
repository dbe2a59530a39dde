// The hello-world node:http server the overhead benchmarks measure, in one of these forms:
//
//   node dist/bench/hello-server.js bare                plain node:http
//   node dist/bench/hello-server.js lameduck            the same with lameduck(server), default
//                                                       options, drainDelay 0
//   node dist/bench/hello-server.js lameduck-probe-port lameduck with its probes on a separate
//                                                       port: probes: { port: 0 }
//   node dist/bench/hello-server.js lameduck-noprobes   lameduck with probes: false
//   node dist/bench/hello-server.js import-only         bare, but imports lameduck (without
//                                                       calling it), as the lameduck forms do
//   node dist/bench/hello-server.js wrapper-copy        bare plus a copy of the 'request'
//                                                       interception lameduck installed before
//                                                       issue 7 (src/connections.ts), nothing else
//   node dist/bench/hello-server.js wrapper-fixed       the same interception without rest
//                                                       parameters and array spread
//
// and the same server with one of the peer libraries (devDependencies of the benchmarks only),
// each set up as its README shows for a plain node:http server and stopped on SIGTERM:
//
//   terminus                  @godaddy/terminus: createTerminus(server, { healthChecks:
//                             { '/healthcheck': ... }, useExit0: true }), the README's usage
//                             plus its Kubernetes advice (useExit0) so the process exits with
//                             0 instead of re-raising the signal
//   http-terminator           createHttpTerminator({ server }); SIGTERM calls terminate()
//   stoppable                 stoppable(server); SIGTERM calls server.stop()
//   http-graceful-shutdown    gracefulShutdown(server) right after listen(); it handles
//                             SIGTERM itself and ends with process.exit
//
// The wrapper-* forms are ablations: they tell which part of lameduck costs what per request.
// A peer library is loaded only in its own form, so the others do not pay for loading it.
// A second argument picks how the handler answers: `setHeader` (default: `res.setHeader` +
// `res.end`) or `writeHead` (`res.writeHead(200, {...})` + `res.end`). lameduck itself is
// loaded only in the lameduck forms, as an application that does not use it would not.
// It listens on 127.0.0.1 on a free port and prints `listening PORT`. SIGTERM stops it: without
// a library it closes its listener and connections and exits once nothing is left; with one,
// the library handles the signal. On exit it prints `served N` (requests that reached the
// handler).
import http from 'node:http'

const MODES = [
  'bare',
  'lameduck',
  'lameduck-probe-port',
  'lameduck-noprobes',
  'import-only',
  'wrapper-copy',
  'wrapper-fixed',
  'terminus',
  'http-terminator',
  'stoppable',
  'http-graceful-shutdown',
] as const
type Mode = (typeof MODES)[number]

const mode = process.argv[2] as Mode
if (!MODES.includes(mode)) {
  console.error(`hello-server: expected a mode (${MODES.join(', ')}), got ${process.argv[2]}`)
  process.exit(2)
}

const form = process.argv[3] ?? 'setHeader'
if (form !== 'setHeader' && form !== 'writeHead') {
  console.error(`hello-server: expected a handler form (setHeader, writeHead), got ${form}`)
  process.exit(2)
}

let served = 0
const server = http.createServer(
  form === 'writeHead'
    ? (_req, res) => {
        served++
        res.writeHead(200, { 'content-type': 'text/plain' })
        res.end('hello world')
      }
    : (_req, res) => {
        served++
        res.setHeader('content-type', 'text/plain')
        res.end('hello world')
      },
)

// node closes a keep-alive connection that stays idle for keepAliveTimeout (5 s) + 1 s. Under
// callgrind with --single-threaded, V8 compiles the hot path on the main thread after the
// first ~80 requests; on a busy machine that stalls the loop for more than 6 s right after a
// response, and the keep-alive timer then fires in the loop's timers phase, before the poll
// phase reads the next request already waiting in the socket: node destroys the connection
// with that request unread, the kernel resets it, and the client gets `read ECONNRESET`
// (reproduced without valgrind: a 3.5 s stall after a response with keepAliveTimeout 2 s).
// Every variant, bare or not, gets the same longer timeout: node re-arms the same timer per
// request whatever its length, so the per-request path is the one users run.
server.keepAliveTimeout = 10 * 60_000

/** What lameduck's probe lookup does on every request: one indexOf, one Map lookup. */
const probePaths = new Map([
  ['/readyz', 'readiness'],
  ['/livez', 'liveness'],
  ['/startupz', 'startup'],
])
function match(url: string | undefined): string | undefined {
  if (url === undefined) return undefined
  const query = url.indexOf('?')
  return probePaths.get(query === -1 ? url : url.slice(0, query))
}
const state = { draining: false }
function probe(res: http.ServerResponse): void {
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end('{"status":"ready"}')
}

/** Without a library: close the listener and every connection, and let the loop run out. */
function stopOnSigterm(): void {
  process.on('SIGTERM', () => {
    server.close()
    server.closeAllConnections()
  })
}

let afterListen: (() => void) | undefined
const { lameduck } =
  mode.startsWith('lameduck') || mode === 'import-only'
    ? await import('lameduck')
    : { lameduck: undefined as never }
if (mode === 'lameduck') {
  lameduck(server, { drainDelay: 0 })
} else if (mode === 'lameduck-probe-port') {
  lameduck(server, { drainDelay: 0, probes: { port: 0 } })
} else if (mode === 'lameduck-noprobes') {
  lameduck(server, { drainDelay: 0, probes: false })
} else if (mode === 'terminus') {
  const { createTerminus } = await import('@godaddy/terminus')
  createTerminus(server, {
    healthChecks: { '/healthcheck': () => Promise.resolve() },
    useExit0: true,
  })
} else if (mode === 'http-terminator') {
  const { createHttpTerminator } = await import('http-terminator')
  const httpTerminator = createHttpTerminator({ server })
  process.on('SIGTERM', () => {
    void httpTerminator.terminate()
  })
} else if (mode === 'stoppable') {
  const { default: stoppable } = await import('stoppable')
  stoppable(server)
  process.on('SIGTERM', () => {
    ;(server as http.Server & { stop: () => void }).stop()
  })
} else if (mode === 'http-graceful-shutdown') {
  const { default: gracefulShutdown } = await import('http-graceful-shutdown')
  afterListen = () => {
    gracefulShutdown(server)
  }
} else {
  if (mode === 'wrapper-copy') {
    // As in ConnectionTracker's constructor before issue 7 (rest parameters, a copied array).
    const emit = server.emit
    server.emit = function (this: http.Server, event: string | symbol, ...args: unknown[]) {
      if (event === 'request') {
        const req = args[0] as http.IncomingMessage
        const res = args[1] as http.ServerResponse
        const kind = match(req.url)
        if (state.draining) res.shouldKeepAlive = false
        if (kind !== undefined) {
          probe(res)
          return true
        }
      }
      return Reflect.apply(emit, this, [event, ...args]) as boolean
    } as typeof server.emit
  } else if (mode === 'wrapper-fixed') {
    const emit = server.emit as (event: string | symbol, ...args: unknown[]) => boolean
    server.emit = function (this: http.Server, event: string | symbol, a?: unknown, b?: unknown) {
      if (event === 'request') {
        const kind = match((a as http.IncomingMessage).url)
        if (state.draining) (b as http.ServerResponse).shouldKeepAlive = false
        if (kind !== undefined) {
          probe(b as http.ServerResponse)
          return true
        }
        return emit.call(this, event, a, b)
      }
      // biome-ignore lint/complexity/noArguments: forwards every other event unchanged
      return Reflect.apply(emit, this, arguments) as boolean
    } as typeof server.emit
  }
  stopOnSigterm()
}

process.on('exit', () => {
  process.stdout.write(`served ${served}\n`)
})

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`)
})
afterListen?.()
