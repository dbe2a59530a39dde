// The upstream of the proxy benchmark: a keep-alive hello-world node:http server on $PORT,
// with nothing else in it. bench/proxy.ts runs it as `lameduck serve`'s child and also
// loads it directly, in the same run.
import http from 'node:http'

const server = http.createServer((_req, res) => {
  res.setHeader('content-type', 'text/plain')
  res.end('hello world')
})
server.keepAliveTimeout = 65_000
process.on('SIGTERM', () => {
  server.close()
  server.closeAllConnections()
})
server.listen(Number(process.env.PORT), '127.0.0.1')
