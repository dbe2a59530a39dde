// Opens COUNT keep-alive connections to 127.0.0.1:PORT (at most OPENING at a time), sends
// one GET on each and reads its answer, prints `ready COUNT`, and then keeps them idle. When
// the server has closed all of them it prints `closed COUNT first NS last NS errors E`
// (process.hrtime.bigint() of the first and last 'close') and exits. It gives up after
// GIVE_UP_MS in all.
//
//   node dist/bench/idle-client.js PORT COUNT
import net from 'node:net'

const port = Number(process.argv[2])
const count = Number(process.argv[3])
const OPENING = 200
const GIVE_UP_MS = 120_000
const REQUEST = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'

if (!(port > 0) || !Number.isInteger(count) || count < 1) {
  console.error('usage: idle-client PORT COUNT')
  process.exit(2)
}

const giveUp = setTimeout(() => {
  console.error(`idle-client: gave up after ${GIVE_UP_MS} ms (${ready} ready, ${closed} closed)`)
  process.exit(1)
}, GIVE_UP_MS)

let ready = 0
let closed = 0
let errors = 0
let first: bigint | undefined
let last: bigint | undefined

function onClose(): void {
  const now = process.hrtime.bigint()
  first ??= now
  last = now
  closed++
  if (closed === count) {
    process.stdout.write(`closed ${closed} first ${first} last ${last} errors ${errors}\n`)
    clearTimeout(giveUp)
  }
}

/** Connects, sends one request and resolves once its whole answer is in. */
function open(): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    let answer = ''
    const onData = (chunk: Buffer) => {
      answer += chunk.toString('latin1')
      const end = answer.indexOf('\r\n\r\n')
      if (end === -1) return
      const length = Number(answer.match(/content-length: (\d+)/i)?.[1] ?? 0)
      if (answer.length < end + 4 + length) return
      socket.off('data', onData)
      if (!answer.startsWith('HTTP/1.1 200')) reject(new Error(`answer: ${answer.slice(0, 40)}`))
      else resolve()
    }
    socket.on('data', onData)
    socket.once('connect', () => socket.write(REQUEST))
    socket.once('error', (error) => {
      errors++
      reject(error)
    })
    socket.once('close', onClose)
  })
}

let next = 0
async function lane(): Promise<void> {
  while (next < count) {
    next++
    await open()
    ready++
  }
}

try {
  await Promise.all(Array.from({ length: OPENING }, lane))
} catch (error) {
  console.error(`idle-client: ${(error as Error).message} after ${ready} connections`)
  process.exit(1)
}
process.stdout.write(`ready ${ready}\n`)
