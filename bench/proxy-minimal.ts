// The floor for bench/proxy.ts: the smallest node:http reverse proxy (keep-alive pool,
// headers copied as they are, bodies piped), with none of lameduck serve's checks, header
// filtering, probes or drain. It listens on $PORT and proxies to 127.0.0.1:$UPSTREAM_PORT.
import http from 'node:http'

const agent = new http.Agent({ keepAlive: true })
const upstream = Number(process.env.UPSTREAM_PORT)
const server = http.createServer((req, res) => {
  const upReq = http.request(
    {
      host: '127.0.0.1',
      port: upstream,
      method: req.method,
      path: req.url,
      headers: req.headers,
      agent,
    },
    (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers)
      upRes.pipe(res)
    },
  )
  upReq.on('error', () => res.destroy())
  req.pipe(upReq)
})
server.keepAliveTimeout = 65_000
process.on('SIGTERM', () => {
  server.close()
  server.closeAllConnections()
  agent.destroy()
})
server.listen(Number(process.env.PORT), '127.0.0.1')
