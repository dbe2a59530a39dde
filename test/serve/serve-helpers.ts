// Helpers for tests that run `lameduck serve` as a user does: the CLI in a child process,
// its child a real service, real signals.
import type { IncomingHttpHeaders } from 'node:http'
import http from 'node:http'
import { fromRoot, type Spawned, spawnNode, within } from '../helpers.js'

export const bin = fromRoot('bin/lameduck.js')
export const upstreamFixture = fromRoot('test/fixtures/serve/upstream.mjs')

export interface Serve extends Spawned {
  /** The port the proxy listens on. */
  port: number
}

/** Starts `lameduck serve --port 0 ARGS -- COMMAND` and resolves once it listens. */
export async function startServe(
  args: string[],
  command: string[] = [process.execPath, upstreamFixture],
  env: NodeJS.ProcessEnv = process.env,
  ms = 5_000,
): Promise<Serve> {
  const spawned = spawnNode(bin, ['serve', '--port', '0', ...args, '--', ...command], {
    env: { ...env, KUBERNETES_SERVICE_HOST: '' },
  })
  const all = await spawned
    .waitFor(/proxying port \d+/, 'lameduck serve to listen', ms)
    .catch((error) => {
      // A child left running would keep the test process alive.
      spawned.child.kill('SIGKILL')
      throw error
    })
  const port = Number(/proxying port (\d+)/.exec(all)?.[1])
  return { ...spawned, port }
}

/** Resolves once lameduck serve logs that it is ready. */
export function ready(serve: Serve, ms = 5_000): Promise<string> {
  return serve.waitFor('"state":"ready"', 'lameduck serve to be ready', ms)
}

export interface Reply {
  status: number
  headers: IncomingHttpHeaders
  rawHeaders: string[]
  body: string
}

/** One request to 127.0.0.1:port; resolves with the whole reply. */
export function request(
  port: number,
  path: string,
  options: {
    method?: string
    headers?: Record<string, string> | string[]
    body?: string
    agent?: http.Agent | false
  } = {},
): Promise<Reply> {
  return within(
    `${options.method ?? 'GET'} ${path}`,
    new Promise<Reply>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path,
          method: options.method ?? 'GET',
          headers: options.headers,
          agent: options.agent ?? false,
        },
        (res) => {
          let body = ''
          res.setEncoding('utf8')
          res.on('data', (chunk: string) => {
            body += chunk
          })
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              rawHeaders: res.rawHeaders,
              body,
            }),
          )
          res.on('error', reject)
        },
      )
      req.on('error', reject)
      req.end(options.body)
    }),
  )
}

/** What the upstream fixture received: every raw byte, connection count, parsed requests. */
export async function seen(port: number): Promise<{
  raw: string
  connections: number
  requests: { method: string; url: string; rawHeaders: string[]; body: string }[]
}> {
  return JSON.parse((await request(port, '/__seen')).body)
}

/** Header names, lower-cased, from a raw header list. */
export function names(rawHeaders: string[]): string[] {
  return rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase())
}
