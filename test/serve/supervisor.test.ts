// `lameduck serve` (proxy mode) as a supervisor: signals other than the shutdown ones,
// WebSockets across a SIGTERM, and what the last log line says. Real processes, signals
// and sockets.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import WebSocket from 'ws'
import { exited, fromRoot, within } from '../helpers.js'
import { ready, request, startServe, upstreamFixture } from './serve-helpers.js'

const wsFixture = fromRoot('test/fixtures/serve/ws-upstream.mjs')

function lastLogLine(stderr: string): Record<string, unknown> {
  const lines = stderr.split('\n').filter((line) => line.startsWith('{'))
  return JSON.parse(lines[lines.length - 1] ?? '{}')
}

test('SIGHUP is forwarded to the child and never ends serve', async () => {
  const serve = await startServe(['--drain-delay', '0'])
  await ready(serve)
  serve.child.kill('SIGHUP')
  await serve.waitFor('upstream: SIGHUP', 'the child to receive SIGHUP')
  await serve.waitFor('"event":"signal-forwarded"', 'serve to log the forwarded signal')
  assert.equal((await request(serve.port, '/echo')).status, 200, 'still serving')
  assert.equal(serve.child.exitCode, null)
  serve.child.kill('SIGTERM')
  assert.equal((await exited(serve.child, 'lameduck serve to exit')).code, 0)
})

test('the last log line states the real exit code and the child’s fate: SIGKILLed after --child-stop-timeout → 1', async () => {
  const serve = await startServe(
    ['--drain-delay', '0', '--child-stop-timeout', '300ms'],
    undefined,
    {
      ...process.env,
      ON_SIGTERM: 'ignore',
    },
  )
  await ready(serve)
  serve.child.kill('SIGTERM')
  const exit = await exited(serve.child, 'lameduck serve to exit')
  assert.equal(exit.code, 1)
  const last = lastLogLine(serve.stderr())
  assert.equal(last.event, 'exit')
  assert.equal(last.exitCode, 1)
  assert.equal(last.child, 'killed')
  assert.match(String(last.msg ?? last.message ?? JSON.stringify(last)), /exiting 1/)
})

test('the last log line after a clean stop: exit 0, the child stopped by its signal', async () => {
  const serve = await startServe(['--drain-delay', '0'])
  await ready(serve)
  serve.child.kill('SIGTERM')
  assert.equal((await exited(serve.child, 'lameduck serve to exit')).code, 0)
  const last = lastLogLine(serve.stderr())
  assert.equal(last.event, 'exit')
  assert.equal(last.exitCode, 0)
  assert.equal(last.child, 'stopped')
})

test('a WebSocket open across SIGTERM: once the drain is done the child is signalled while the tunnel is open, and the client gets the child’s close frame', async () => {
  const serve = await startServe(
    ['--drain-delay', '200ms', '--shutdown-timeout', '20s'],
    [process.execPath, wsFixture],
  )
  await ready(serve)
  const ws = new WebSocket(`ws://127.0.0.1:${serve.port}/`)
  await within(
    'the WebSocket to open',
    new Promise((resolve, reject) => {
      ws.once('open', resolve)
      ws.once('error', reject)
    }),
  )
  const echoed = new Promise<string>((resolve) =>
    ws.once('message', (data) => resolve(String(data))),
  )
  ws.send('hi')
  assert.equal(await within('an echo through the tunnel', echoed), 'echo hi')
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
  )
  serve.child.kill('SIGTERM')
  // Well within --shutdown-timeout (20 s), which would otherwise cut the tunnel (1006).
  const close = await within('the child’s close frame', closed, 10_000)
  assert.deepEqual(close, { code: 1001, reason: 'server restarting' })
  const exit = await exited(serve.child, 'lameduck serve to exit', 10_000)
  assert.equal(exit.code, 0, serve.stderr())
  assert.match(serve.stdout(), /ws-upstream: SIGTERM with 1 open/)
  assert.match(serve.stderr(), /"event":"child-stop"[^\n]*"why":"1 WebSocket/)
})

test('a child that never opens its port: serve says what it waits for, the pid, the PORT it passed and where the child listens instead, in the log and in readiness', async () => {
  // Listens, but on a port of its own choosing (as `python3 -m http.server 18000` does).
  const elsewhere =
    "require('node:http').createServer((q, s) => s.end('x')).listen(0, '127.0.0.1', function () { console.log('child: serving on ' + this.address().port) })"
  const serve = await startServe(['--drain-delay', '0'], [process.execPath, '-e', elsewhere])
  const out = await serve.waitFor(/child: serving on \d+/, 'the child to listen on its own port')
  const own = Number(/child: serving on (\d+)/.exec(out)?.[1])
  await serve.waitFor('"event":"upstream-waiting"', 'serve to report what it waits for', 10_000)
  const line = serve
    .stderr()
    .split('\n')
    .find((l) => l.includes('"event":"upstream-waiting"'))
  const report = JSON.parse(line ?? '{}')
  const pid = Number(/child pid (\d+)/.exec(serve.stderr())?.[1])
  assert.equal(report.pid, pid)
  assert.equal(report.upstream, `127.0.0.1:${report.port}`)
  assert.deepEqual(report.listening, [`127.0.0.1:${own}`])
  assert.match(report.msg, new RegExp(`given PORT=${report.port}`))
  assert.match(report.msg, new RegExp(`listens on 127\\.0\\.0\\.1:${own} instead`))
  const readiness = await request(serve.port, '/readyz')
  assert.equal(readiness.status, 503)
  assert.match(
    JSON.parse(readiness.body).reason,
    new RegExp(`pid ${pid}, given PORT=${report.port}`),
  )
  serve.child.kill('SIGTERM')
  await exited(serve.child, 'lameduck serve to exit')
})

/** True while `pid` runs (a zombie waiting for its reaper counts as gone). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return false
  }
}

function gone(pid: number, label: string): Promise<void> {
  return within(
    label,
    new Promise<void>((resolve) => {
      const check = () => (alive(pid) ? setTimeout(check, 20) : resolve())
      check()
    }),
  )
}

test('serve SIGKILLed: the child and a grandchild in its process group are SIGKILLed too', async () => {
  const serve = await startServe(
    ['--drain-delay', '0'],
    [
      '/bin/sh',
      '-c',
      `sleep 300 & echo "grandchild $!"; exec "${process.execPath}" "${upstreamFixture}"`,
    ],
  )
  const out = await serve.waitFor(/grandchild \d+/, 'the grandchild to start')
  const grandchild = Number(/grandchild (\d+)/.exec(out)?.[1])
  const child = Number(/child pid (\d+)/.exec(serve.stderr())?.[1])
  await ready(serve)
  assert.ok(alive(grandchild) && alive(child))
  serve.child.kill('SIGKILL')
  await exited(serve.child, 'lameduck serve to die')
  await gone(child, 'the child to be killed')
  await gone(grandchild, "the grandchild in the child's group to be killed")
})
