// Peer: close-with-grace, as its README's first example shows (delay 500 ms).
import http from 'node:http'
import closeWithGrace from 'close-with-grace'
import { handle } from '../../examples/routes.js'

const pod = process.env.HOSTNAME ?? 'close-with-grace'
const server = http.createServer((req, res) => handle(pod, req, res))
server.listen(Number(process.env.PORT ?? 8080))

closeWithGrace({ delay: 500 }, async ({ err }) => {
  if (err) {
    console.error(err)
  }
  await new Promise((resolve) => server.close(resolve))
})
