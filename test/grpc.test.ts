// The gRPC recipe (examples/grpc.ts) end to end: a real process, real signals, a grpc-js
// client.
import assert from 'node:assert/strict'
import net from 'node:net'
import { test } from 'node:test'
import * as grpc from '@grpc/grpc-js'
import { echoService } from '../examples/grpc-service.js'
import { exited, fromRoot, spawnNode, within } from './helpers.js'
import { get } from './http-client.js'

/** A free TCP port: grpc-js cannot drain a server bound to port 0. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as net.AddressInfo
      probe.close(() => resolve(port))
    })
  })
}

type EchoCall = (
  request: { text: string; delayMs: number },
  options: grpc.CallOptions,
  done: (error: grpc.ServiceError | null, reply: { text: string }) => void,
) => void

async function startGrpc(env: Record<string, string>) {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('LAMEDUCK_')),
  )
  delete clean.KUBERNETES_SERVICE_HOST
  const grpcPort = await freePort()
  const app = spawnNode(fromRoot('dist/examples/grpc.js'), [], {
    env: { ...clean, GRPC_PORT: String(grpcPort), PORT: '0', ...env },
  })
  const out = await app.waitFor(/probes on \d+/, 'the gRPC example to listen')
  const probePort = Number(/probes on (\d+)/.exec(out)?.[1])
  const Client = grpc.makeGenericClientConstructor(echoService, 'Echo')
  const client = new Client(`127.0.0.1:${grpcPort}`, grpc.credentials.createInsecure())
  const call = client.echo as EchoCall
  // Every call has a deadline, so a test fails with a label instead of hanging.
  const echo = (text: string, delayMs = 0) =>
    new Promise<{ text: string }>((resolve, reject) =>
      call.call(
        client,
        { text, delayMs },
        { deadline: Date.now() + delayMs + 5_000 },
        (error, reply) => (error ? reject(error) : resolve(reply)),
      ),
    )
  return { app, probePort, client, echo }
}

test('gRPC: readiness 503 at SIGTERM, the call in flight completes, calls during the lame duck are served, exit 0', async (t) => {
  const { app, probePort, client, echo } = await startGrpc({ LAMEDUCK_DRAIN_DELAY_MS: '600' })
  t.after(() => app.child.kill('SIGKILL'))
  t.after(() => client.close())
  assert.equal((await echo('first')).text, 'first')
  assert.equal((await within('readiness', get(probePort, '/readyz'))).status, 200)
  const inFlight = echo('slow', 400)
  app.child.kill('SIGTERM')
  await app.waitFor('"state":"draining"')
  assert.equal((await within('readiness', get(probePort, '/readyz'))).status, 503)
  assert.equal((await echo('during the lame duck')).text, 'during the lame duck')
  assert.equal((await within('the call in flight', inFlight)).text, 'slow')
  assert.equal((await exited(app.child, 'the gRPC example to exit')).code, 0, app.stderr())
})

test('gRPC: a call slower than the hook timeout is cancelled by forceShutdown: exit 1', async (t) => {
  const { app, client, echo } = await startGrpc({
    LAMEDUCK_DRAIN_DELAY_MS: '0',
    GRPC_SHUTDOWN_TIMEOUT_MS: '200',
  })
  t.after(() => app.child.kill('SIGKILL'))
  t.after(() => client.close())
  await echo('warm up')
  const slow = echo('too slow', 20_000).then(
    () => 'answered',
    (error: grpc.ServiceError) => grpc.status[error.code],
  )
  await app.waitFor('grpc: echo too slow')
  app.child.kill('SIGTERM')
  assert.equal(await within('the slow call to end', slow), 'CANCELLED')
  assert.equal((await exited(app.child, 'the gRPC example to exit')).code, 1)
  assert.match(app.stderr(), /hook 'grpc' timed out/)
})
