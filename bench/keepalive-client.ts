// Sends exactly N GET requests to 127.0.0.1:PORT over C keep-alive connections, each
// connection one request at a time (no pipelining), then closes its connections and prints
// one JSON line: { requests, ok, connections, ms }.
//
//   node dist/bench/keepalive-client.js PORT N [C=1] [PATH=/]
import http from 'node:http'

const port = Number(process.argv[2])
const total = Number(process.argv[3])
const concurrency = Number(process.argv[4] ?? 1)
const path = process.argv[5] ?? '/'
/** A request that takes longer than this fails the run instead of hanging it. */
const REQUEST_TIMEOUT_MS = 30_000

if (!(port > 0) || !Number.isInteger(total) || total < 1 || !(concurrency >= 1)) {
  console.error('usage: keepalive-client PORT N [CONNECTIONS] [PATH]')
  process.exit(2)
}

const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
let issued = 0
let ok = 0
let connections = 0

function get(): Promise<void> {
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
const ms = performance.now() - started
process.stdout.write(`${JSON.stringify({ requests: issued, ok, connections, ms })}\n`)
