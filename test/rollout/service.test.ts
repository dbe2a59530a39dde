import assert from 'node:assert/strict'
import { once } from 'node:events'
import net from 'node:net'
import { after, test } from 'node:test'
import { Clock } from '../../src/rollout/clock.js'
import { ServiceModel } from '../../src/rollout/drivers/model.js'
import { Recorder } from '../../src/rollout/recorder.js'
import { nextEvent, until } from '../helpers.js'

const cleanup: (() => unknown)[] = []
const sockets = new Set<net.Socket>()
after(async () => {
  for (const socket of sockets) socket.destroy()
  for (const fn of cleanup.reverse()) await fn()
})

/** A TCP server answering each chunk with `NAME:chunk`; resolves to its port. */
async function echo(name: string, options: net.ServerOpts = {}): Promise<net.Server> {
  const server = net.createServer(options, (socket) => {
    socket.on('data', (chunk) => socket.write(`${name}:${chunk}`))
    socket.on('error', () => {})
    sockets.add(socket)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanup.push(() => new Promise((resolve) => server.close(resolve)))
  return server
}

const portOf = (server: net.Server) => (server.address() as net.AddressInfo).port

async function model(delayMs = 0, jitterMs = 0, random?: () => number) {
  const clock = new Clock()
  const recorder = new Recorder(clock)
  const options = { clock, recorder, propagationDelayMs: delayMs, propagationJitterMs: jitterMs }
  const service = new ServiceModel(random === undefined ? options : { ...options, random })
  const port = await service.listen()
  cleanup.push(() => service.close())
  return { service, port, recorder }
}

function connect(port: number): Promise<net.Socket> {
  const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true })
  socket.on('error', () => {})
  return once(socket, 'connect').then(() => socket)
}

async function ask(socket: net.Socket, text: string): Promise<string> {
  socket.write(text)
  const [chunk] = await nextEvent<[Buffer]>(socket, 'data', `answer to ${text}`)
  return String(chunk)
}

test('a connection stays pinned to its endpoint after the endpoint set changes (conntrack)', async () => {
  const a = await echo('a')
  const b = await echo('b')
  const { service, port } = await model()
  service.publish('a', portOf(a), true)
  await until('endpoint a applied', () => service.routesTo('a'))
  const client = await connect(port)
  assert.equal(await ask(client, 'x'), 'a:x')
  service.publish('a', portOf(a), false)
  service.publish('b', portOf(b), true)
  await until('a removed, b added', () => !service.routesTo('a') && service.routesTo('b'))
  assert.equal(await ask(client, 'y'), 'a:y', 'the established connection still reaches a')
  const fresh = await connect(port)
  assert.equal(await ask(fresh, 'z'), 'b:z', 'a new connection goes to b')
  client.destroy()
  fresh.destroy()
})

test('endpoint changes reach the data path after the delay and in the order they were made', async () => {
  // random() = 1 gives the longest delay to the first change and 0 the shortest to the
  // second: the second must still wait for the first.
  const draws = [0.999, 0]
  const { service, recorder } = await model(60, 40, () => draws.shift() ?? 0.5)
  service.publish('a', 1, true)
  service.publish('a', 1, false)
  assert.equal(service.routesTo('a'), false, 'nothing applies at once')
  assert.equal(service.settled(), false)
  await until('both changes applied', () => service.settled())
  const applied = recorder.events.filter((e) => e.pod === 'a').map((e) => [e.type, e.t] as const)
  assert.deepEqual(
    applied.map(([type]) => type),
    ['endpoint-added', 'endpoint-removed'],
  )
  assert.ok(applied[0]![1] >= 95, `the add waited its delay (applied at ${applied[0]![1]} ms)`)
  assert.ok(applied[1]![1] >= applied[0]![1], 'the removal did not overtake the add')
})

test('publishing the same membership twice is one change', async () => {
  const { service } = await model(20)
  service.publish('a', 1, true)
  service.publish('a', 1, true)
  await until('settled', () => service.settled())
  assert.equal(service.endpoints().length, 1)
})

test('a backend that refuses makes the model reset the client, recorded as refused', async () => {
  const closed = await echo('gone')
  const deadPort = portOf(closed)
  await new Promise((resolve) => closed.close(resolve))
  const { service, port } = await model()
  service.publish('gone', deadPort, true)
  await until('endpoint applied', () => service.routesTo('gone'))
  const client = await connect(port)
  const localPort = client.localPort!
  client.write('hello')
  const [error] = await nextEvent<[NodeJS.ErrnoException]>(client, 'error', 'client reset')
  assert.equal(error.code, 'ECONNRESET')
  assert.deepEqual(
    { pod: service.connection(localPort)?.pod, cause: service.connection(localPort)?.resetCause },
    { pod: 'gone', cause: 'refused' },
  )
})

test('with no endpoint at all the client is reset and the cause is no-endpoint', async () => {
  const { service, port } = await model()
  // The reset can come before the client's connect() completes: no waiting for 'connect'.
  const client = net.connect({ host: '127.0.0.1', port })
  const errored = nextEvent<[NodeJS.ErrnoException]>(client, 'error', 'client reset')
  await new Promise((resolve) => process.nextTick(resolve))
  const localPort = client.localPort!
  client.write('hello')
  const [error] = await errored
  assert.equal(error.code, 'ECONNRESET')
  assert.equal(service.connection(localPort)?.resetCause, 'no-endpoint')
})

test('a backend reset is passed on to the client as a reset', async () => {
  const server = net.createServer((socket) => {
    socket.once('data', () => socket.resetAndDestroy())
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanup.push(() => new Promise((resolve) => server.close(resolve)))
  const { service, port } = await model()
  service.publish('rst', portOf(server), true)
  await until('endpoint applied', () => service.routesTo('rst'))
  const client = await connect(port)
  const localPort = client.localPort!
  client.write('hello')
  const [error] = await nextEvent<[NodeJS.ErrnoException]>(client, 'error', 'client reset')
  assert.equal(error.code, 'ECONNRESET')
  assert.equal(service.connection(localPort)?.resetCause, 'backend-reset')
})

test('half-closes pass through in both directions', async () => {
  // The backend answers only after the client's FIN, then ends its side.
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    let received = ''
    socket.on('data', (chunk) => {
      received += chunk
    })
    socket.on('end', () => socket.end(`got ${received}`))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanup.push(() => new Promise((resolve) => server.close(resolve)))
  const { service, port } = await model()
  service.publish('half', portOf(server), true)
  await until('endpoint applied', () => service.routesTo('half'))
  const client = await connect(port)
  let answer = ''
  client.on('data', (chunk) => {
    answer += chunk
  })
  client.end('request')
  await nextEvent(client, 'end', "the backend's FIN")
  assert.equal(answer, 'got request')
})
