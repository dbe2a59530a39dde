// Sends exactly N GET requests to 127.0.0.1:PORT, then closes its connections and prints
// one JSON line: { requests, ok, connections, ms }.
// - h1 (default): over C keep-alive connections, each one request at a time (no pipelining).
// - h2: over one HTTP/2 session (h2c), at most C streams at a time.
//
//   node dist/bench/keepalive-client.js PORT N [C=1] [PATH=/] [h1|h2]
import http from 'node:http'
import http2 from 'node:http2'

const port = Number(process.argv[2])
const total = Number(process.argv[3])
const concurrency = Number(process.argv[4] ?? 1)
const path = process.argv[5] ?? '/'
const protocol = process.argv[6] ?? 'h1'
/** A request that takes longer than this fails the run instead of hanging it; under
 * callgrind on a busy machine, V8's compilations on the server's main thread stall it for
 * several seconds at a time. */
const REQUEST_TIMEOUT_MS = 120_000

if (
  !(port > 0) ||
  !Number.isInteger(total) ||
  total < 1 ||
  !(concurrency >= 1) ||
  (protocol !== 'h1' && protocol !== 'h2')
) {
  console.error('usage: keepalive-client PORT N [CONNECTIONS] [PATH] [h1|h2]')
  process.exit(2)
}

let issued = 0
let ok = 0
let connections = 0

const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
function getH1(): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      if (res.statusCode === 200) ok++
      res.resume()
      res.once('end', resolve)
      res.once('error', reject)
    })
    req.once('socket', () => {
      if (!req.reusedSocket) connections++
    })
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error('request timed out')))
    req.once('error', reject)
  })
}

let session: http2.ClientHttp2Session | undefined
function getH2(): Promise<void> {
  if (session === undefined) {
    session = http2.connect(`http://127.0.0.1:${port}`)
    connections++
  }
  const stream = session.request({ ':path': path })
  return new Promise((resolve, reject) => {
    stream.setTimeout(REQUEST_TIMEOUT_MS, () => stream.destroy(new Error('request timed out')))
    stream.once('response', (headers) => {
      if (headers[':status'] === 200) ok++
    })
    stream.resume()
    stream.once('end', resolve)
    stream.once('error', reject)
  })
}

const get = protocol === 'h2' ? getH2 : getH1
async function worker(): Promise<void> {
  while (issued < total) {
    issued++
    await get()
  }
}

const started = performance.now()
try {
  await Promise.all(Array.from({ length: concurrency }, worker))
} catch (error) {
  console.error(`keepalive-client: ${(error as Error).message}`)
  process.exitCode = 1
}
agent.destroy()
session?.close()
const ms = performance.now() - started
process.stdout.write(`${JSON.stringify({ requests: issued, ok, connections, ms })}\n`)
