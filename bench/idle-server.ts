// The server of the idle-connections benchmark, driven by its parent over IPC. Run with
// --expose-gc:
//
//   node --expose-gc dist/bench/idle-server.js bare       plain node:http
//   node --expose-gc dist/bench/idle-server.js lameduck   lameduck(server, { drainDelay: 0,
//                                                         exit: false, signals: [] })
//
// Messages: { cmd: 'measure' } → heapUsed and RSS after two full GCs, and the open
// connections; { cmd: 'shutdown' } → bare: server.close() + closeIdleConnections(); lameduck:
// await ld.shutdown(); answers with hrtime stamps (as strings) once every connection is
// gone; { cmd: 'exit' }.
import http from 'node:http'
import { lameduck } from 'lameduck'

/** Node closes a keep-alive connection idle for keepAliveTimeout (5 s by default); the
 * benchmark keeps 10 000 idle for longer than that. */
const KEEP_ALIVE_TIMEOUT_MS = 600_000

const mode = process.argv[2]
if (mode !== 'bare' && mode !== 'lameduck') {
  console.error(`idle-server: expected a mode (bare, lameduck), got ${mode}`)
  process.exit(2)
}
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined || process.send === undefined) {
  console.error('idle-server: run it with --expose-gc and an IPC channel')
  process.exit(2)
}
const send = process.send.bind(process)

const server = http.createServer((_req, res) => {
  res.setHeader('content-type', 'text/plain')
  res.end('hello world')
})
server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS

const ld =
  mode === 'lameduck' ? lameduck(server, { drainDelay: 0, exit: false, signals: [] }) : undefined
let stoppingAt: bigint | undefined
ld?.on('state', (state: string) => {
  if (state === 'stopping') stoppingAt = process.hrtime.bigint()
})
/** The server's 'close' event comes once every connection is destroyed (net.Server counts
 * a socket gone in its _destroy); the sockets' own 'close' events come later, from libuv's
 * close callbacks, which run at the end of a loop iteration. Two setImmediate turns after
 * the server's 'close', all of them have run. */
const serverClosed = new Promise<{ closed: bigint; settled: bigint }>((resolve) => {
  server.once('close', () => {
    const closed = process.hrtime.bigint()
    setImmediate(() => setImmediate(() => resolve({ closed, settled: process.hrtime.bigint() })))
  })
})

process.on('message', async (message: { cmd: string }) => {
  if (message.cmd === 'measure') {
    gc()
    gc()
    const { heapUsed, rss } = process.memoryUsage()
    server.getConnections((_error, connections) => send({ heapUsed, rss, connections }))
  } else if (message.cmd === 'shutdown') {
    const started = process.hrtime.bigint()
    let closeMs: number | undefined
    let connections: { closed: number; forced: number } | undefined
    if (ld !== undefined) {
      const outcome = await ld.shutdown('bench')
      closeMs = outcome.durations.closeMs
      connections = outcome.connections
    } else {
      server.close()
      server.closeIdleConnections()
    }
    const { closed, settled } = await serverClosed
    send({
      started: String(started),
      stopping: stoppingAt === undefined ? undefined : String(stoppingAt),
      closed: String(closed),
      settled: String(settled),
      resolved: String(process.hrtime.bigint()),
      closeMs,
      connections,
    })
  } else if (message.cmd === 'exit') {
    process.exit(0)
  }
})

server.listen(0, '127.0.0.1', 4096, () => {
  process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`)
})
