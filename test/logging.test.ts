// Log lines: one JSON object per event by default and with pino; one readable line per
// event with `logger: console`; no misleading lines at the edges (drainDelay 0, a second
// signal with nothing left to force).
import assert from 'node:assert/strict'
import { Console } from 'node:console'
import http from 'node:http'
import { Writable } from 'node:stream'
import { test } from 'node:test'
import { type LameduckOptions, lameduck } from 'lameduck'
import { pino } from 'pino'
import { nextEvent, within } from './helpers.js'

const quiet: LameduckOptions = { signals: [], exit: false, drainDelay: 0 }

function collector() {
  const chunks: string[] = []
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString('utf8'))
      done()
    },
  })
  return { stream, text: () => chunks.join('') }
}

async function readyServer(options: LameduckOptions) {
  const server = http.createServer((_req, res) => res.end('ok'))
  const ld = lameduck(server, options)
  server.listen(0, '127.0.0.1')
  while (ld.state !== 'ready') await nextEvent(ld, 'state', `ready (state is ${ld.state})`)
  return ld
}

test('pino as the logger: one JSON object per event, with the event fields and the message', async () => {
  const out = collector()
  const logger = pino({ base: undefined }, out.stream)
  const ld = await readyServer({ ...quiet, drainDelay: 10, logger })
  await within('shutdown', ld.shutdown('test'))
  const lines = out.text().trimEnd().split('\n')
  const events = lines.map((line) => JSON.parse(line) as Record<string, unknown>)
  assert.deepEqual(
    events.map((e) => e.state),
    ['ready', 'draining', 'stopping', 'stopped'],
  )
  for (const event of events) {
    assert.equal(event.level, 30, 'info')
    assert.equal(event.event, 'state')
    assert.match(String(event.msg), /^lameduck: /)
  }
  assert.equal(events[1]?.drainDelayMs, 10)
  assert.equal(events[3]?.exitCode, 0)
})

test('logger: console prints one readable line per event: the message, then key=value fields', async (t) => {
  const calls: { level: string; args: unknown[] }[] = []
  for (const level of ['info', 'warn', 'error'] as const) {
    t.mock.method(console, level, (...args: unknown[]) => {
      calls.push({ level, args })
    })
  }
  const ld = await readyServer({ ...quiet, drainDelay: 10, logger: console })
  await within('shutdown', ld.shutdown('deploy'))
  t.mock.restoreAll()
  assert.ok(calls.length >= 4, `${calls.length} lines`)
  for (const call of calls) {
    assert.equal(call.args.length, 1, 'one argument: the whole line')
    assert.equal(typeof call.args[0], 'string')
    assert.doesNotMatch(call.args[0] as string, /\n/)
  }
  const lines = calls.map((c) => c.args[0] as string)
  const draining = lines.find((line) => line.startsWith('lameduck: draining'))
  assert.match(
    String(draining),
    /^lameduck: draining \(deploy\): readiness 503, serving for 10 ms with Connection: close event=state state=draining previous=ready reason=deploy drainDelayMs=10 connections=0$/,
  )
  const stopped = lines.find((line) => line.startsWith('lameduck: stopped'))
  assert.match(String(stopped), / connections=\{"closed":0,"forced":0\} /)

  // Any node:console Console works the same way.
  const out = collector()
  const own = new Console({ stdout: out.stream, stderr: out.stream })
  const other = await readyServer({ ...quiet, logger: own })
  await within('shutdown', other.shutdown())
  const ownLines = out.text().trimEnd().split('\n')
  assert.ok(
    ownLines.every((line) => line.startsWith('lameduck: ')),
    out.text(),
  )
})

test('drainDelay 0: the draining line does not promise "serving for 0 ms"', async () => {
  const out = collector()
  const ld = await readyServer({ ...quiet, drainDelay: 0, logger: pino(out.stream) })
  await within('shutdown', ld.shutdown())
  const draining = out
    .text()
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as { state?: string; msg: string })
    .find((e) => e.state === 'draining')
  assert.ok(draining)
  assert.doesNotMatch(draining.msg, /serving for 0 ms/)
  assert.match(draining.msg, /no lame-duck delay/)
})

test('a second signal with nothing left to force does not log "forced 0 connection(s)"', async (t) => {
  // Node 26's test runner turns on diagnostic reports on SIGUSR2 in its test processes,
  // which would write a report.*.json into the working directory at each signal below.
  const reportOnSignal = process.report.reportOnSignal
  process.report.reportOnSignal = false
  t.after(() => {
    process.report.reportOnSignal = reportOnSignal
  })
  const out = collector()
  const ld = await readyServer({
    ...quiet,
    signals: ['SIGUSR2'],
    drainDelay: 60_000,
    logger: pino(out.stream),
  })
  const draining = nextEvent(ld, 'state', 'draining')
  process.kill(process.pid, 'SIGUSR2')
  await draining
  const stopped = new Promise<void>((resolve) =>
    ld.on('state', (state) => {
      if (state === 'stopped') resolve()
    }),
  )
  process.kill(process.pid, 'SIGUSR2')
  await within('the forced shutdown', stopped)
  const events = out
    .text()
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line) as { event: string; msg: string; forced?: string })
  assert.ok(
    events.some((e) => e.event === 'force'),
    'the second signal is logged',
  )
  assert.deepEqual(
    events.filter((e) => e.event === 'forced' || /forced 0/.test(e.msg)),
    [],
  )
  assert.equal(events.at(-1)?.forced, 'signal')
})
