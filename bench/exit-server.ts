// The server of the exit-latency benchmark. It answers `/?delay=ms` after `ms`, prints
// `request` when a request arrives and `finish NS` (process.hrtime.bigint()) in the
// response's 'finish' event, i.e. once the last byte is handed to the kernel. CLOCK_MONOTONIC
// is system-wide on Linux, so the parent can compare NS with its own hrtime at 'exit'.
//
//   node dist/bench/exit-server.js lameduck            lameduck(server), drainDelay 0
//   node dist/bench/exit-server.js lameduck-streaming  the same, but the response's headers
//                                                      go out (keep-alive) before the signal
//   node dist/bench/exit-server.js floor               no lameduck: SIGTERM closes the
//                                                      listener, and the 'finish' handler
//                                                      calls process.exit(0): the floor
import http from 'node:http'
import { lameduck } from 'lameduck'

const MODES = ['lameduck', 'lameduck-streaming', 'floor'] as const
type Mode = (typeof MODES)[number]
const mode = process.argv[2] as Mode
if (!MODES.includes(mode)) {
  console.error(`exit-server: expected a mode (${MODES.join(', ')}), got ${process.argv[2]}`)
  process.exit(2)
}

const server = http.createServer((req, res) => {
  const delay = Number(new URL(req.url ?? '/', 'http://localhost').searchParams.get('delay'))
  res.once('finish', () => {
    process.stdout.write(`finish ${process.hrtime.bigint()}\n`)
    if (mode === 'floor') process.exit(0)
  })
  if (mode === 'lameduck-streaming') {
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('first half, ')
  }
  process.stdout.write('request\n')
  setTimeout(() => {
    if (!res.headersSent) res.setHeader('content-type', 'text/plain')
    res.end('done')
  }, delay || 0)
})

if (mode === 'floor') process.on('SIGTERM', () => server.close())
else lameduck(server, { drainDelay: 0 })

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`)
})
