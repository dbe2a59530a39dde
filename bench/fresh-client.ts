// Sends exactly N GET requests to 127.0.0.1:PORT, one at a time, each on a new connection
// (no keep-alive), then prints one JSON line: { requests, ok, ms }. It measures what a
// connection costs, where the keep-alive client measures what a request costs.
//
//   node dist/bench/fresh-client.js PORT N [PATH=/]
import http from 'node:http'

const port = Number(process.argv[2])
const total = Number(process.argv[3])
const path = process.argv[4] ?? '/'
const REQUEST_TIMEOUT_MS = 30_000

if (!(port > 0) || !Number.isInteger(total) || total < 1) {
  console.error('usage: fresh-client PORT N [PATH]')
  process.exit(2)
}

function get(): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume()
      res.once('end', () => resolve(res.statusCode === 200))
      res.once('error', reject)
    })
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error('request timed out')))
    req.once('error', reject)
  })
}

const started = performance.now()
let ok = 0
let sent = 0
try {
  for (; sent < total; sent++) if (await get()) ok++
} catch (error) {
  console.error(`fresh-client: ${(error as Error).message}`)
  process.exitCode = 1
}
process.stdout.write(`${JSON.stringify({ requests: sent, ok, ms: performance.now() - started })}\n`)
