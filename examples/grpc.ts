// A gRPC service (@grpc/grpc-js) whose shutdown lameduck drives: probes on a small HTTP
// server, GOAWAY to every gRPC connection when the lame duck starts, then tryShutdown with
// forceShutdown at the deadline. The recipe is explained in docs/protocols.md.
//
//   npm run build
//   GRPC_PORT=50051 PORT=8080 LAMEDUCK_DRAIN_DELAY_MS=3000 node dist/examples/grpc.js
//   curl localhost:8080/readyz      {"status":"ready"}, 503 once SIGTERM arrived
//
// The one method, /lameduck.Echo/Echo, answers `{ text, pod }` after `delayMs`; messages are
// JSON so that the example needs no .proto file.
import http from 'node:http'
import * as grpc from '@grpc/grpc-js'
import { lameduck } from 'lameduck'
import { type EchoRequest, echoService } from './grpc-service.js'

const grpcPort = Number(process.env.GRPC_PORT ?? 50051)
const address = `0.0.0.0:${grpcPort}`
const pod = process.env.HOSTNAME ?? 'grpc'

const grpcServer = new grpc.Server()
grpcServer.addService(echoService, {
  echo: (call: grpc.ServerUnaryCall<EchoRequest, unknown>, done: grpc.sendUnaryData<unknown>) => {
    console.log(`grpc: echo ${call.request.text}`)
    setTimeout(() => done(null, { text: call.request.text, pod }), call.request.delayMs ?? 0)
  },
})

// Probes (/readyz, /livez, /startupz) on their own port; everything else is 404.
const probes = http.createServer((_req, res) => {
  res.writeHead(404)
  res.end()
})
const ld = lameduck(probes, { autoReady: false })

// Lame duck: every gRPC connection gets a GOAWAY (calls in flight finish; clients reconnect,
// through the data path that is being updated). New connections are still served. The grace
// given here is only a backstop: forceShutdown below ends what remains at lameduck's deadline.
ld.on('state', (state) => {
  if (state === 'draining') grpcServer.drain(address, 2_147_483_647)
})
// Close: the listener closes and every connection gets a GOAWAY; the hook resolves when the
// last call has finished. At the hook's timeout its signal aborts: forceShutdown cancels
// the calls still running, the hook counts as timed out and the exit code is 1.
ld.onShutdown(
  'grpc',
  (signal) =>
    new Promise<void>((resolve) => {
      signal.addEventListener('abort', () => grpcServer.forceShutdown(), { once: true })
      grpcServer.tryShutdown(() => resolve())
    }),
  { timeout: Number(process.env.GRPC_SHUTDOWN_TIMEOUT_MS ?? 20_000) },
)

grpcServer.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error
  probes.listen(Number(process.env.PORT ?? 8080), () => {
    ld.ready()
    console.log(
      `grpc: listening on ${port}, probes on ${(probes.address() as { port: number }).port}`,
    )
  })
})
