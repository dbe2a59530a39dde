// Starts `lameduck serve --workers ...` as a user does, and follows its JSON log.
import http from 'node:http'
import { fromRoot, type Spawned, spawnNode, within } from '../helpers.js'

export const bin = fromRoot('bin/lameduck.js')
export const app = fromRoot('dist/test/fixtures/workers-app.js')

export type LogLine = Record<string, unknown>

export interface Pod extends Spawned {
  logs(): LogLine[]
  /** Resolves with the first log line matching every field of `fields`, from line `from`
   * on (see `mark`). */
  log(fields: LogLine, options?: { from?: number; ms?: number }): Promise<LogLine>
  /** The number of log lines so far: pass it as `from` to wait for a later line. */
  mark(): number
  /** The port the workers listen on (0 with `listen: false`). */
  port: number
}

/** The environment of the test process without lameduck or Kubernetes settings. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('LAMEDUCK_') && key !== 'KUBERNETES_SERVICE_HOST') env[key] = value
  }
  return { ...env, ...extra }
}

function parse(text: string): LogLine[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine)
}

function matches(line: LogLine, fields: LogLine): boolean {
  return Object.entries(fields).every(([key, value]) => line[key] === value)
}

/** Spawns the CLI; `ready` waits for the pod to be ready and reads the port. */
export async function startPod(
  args: string[],
  options: { env?: NodeJS.ProcessEnv; ready?: boolean; listen?: boolean } = {},
): Promise<Pod> {
  const run = spawnNode(bin, ['serve', ...args], { env: cleanEnv(options.env) })
  const logs = () => parse(run.stderr())
  const log = (fields: LogLine, { from = 0, ms = 10_000 } = {}) => {
    const label = JSON.stringify(fields)
    return within(
      `log line ${label}`,
      new Promise<LogLine>((resolve, reject) => {
        const check = () => {
          const found = logs()
            .slice(from)
            .find((line) => matches(line, fields))
          if (found !== undefined) return resolve(found)
          if (run.child.exitCode !== null || run.child.signalCode !== null) {
            return reject(new Error(`lameduck serve exited before ${label}: ${run.stderr()}`))
          }
          setTimeout(check, 10)
        }
        check()
      }),
      ms,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; stderr: ${run.stderr().slice(-800)}`)
    })
  }
  let port = 0
  if (options.listen !== false) {
    const out = await run.waitFor(/listening \d+/, 'a worker to listen', 10_000)
    port = Number(/listening (\d+)/.exec(out)?.[1])
  }
  if (options.ready !== false && options.listen !== false) {
    await log({ event: 'pod', state: 'ready' })
  }
  return { ...run, logs, log, mark: () => logs().length, port }
}

export interface Answer {
  status: number
  body: string
  connection: string | undefined
}

/** One GET; rejects on any socket error, saying whether the connection was a reused one. */
export function request(port: number, path: string, agent: http.Agent | false = false) {
  return new Promise<Answer>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        body += chunk
      })
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }),
      )
      res.on('error', reject)
    })
    req.on('error', (error) => {
      const how =
        agent === false
          ? 'new connection'
          : req.reusedSocket
            ? 'reused keep-alive connection'
            : 'new pooled connection'
      reject(new Error(`${error.message} (${how}, at ${new Date().toISOString()})`))
    })
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out after 10 s')))
  })
}

export interface LoadResult {
  sent: number
  ok: number
  failures: string[]
  pids: Set<number>
}

/**
 * Keep-alive load until `stop` resolves (or `maxRequests`, or `maxMs`): `concurrency` loops,
 * each sending its next request as soon as the last one answered, over one shared
 * keep-alive agent; every `fresh`th request goes on a new connection instead. A request
 * counts as ok only with status `expect(path)`.
 */
export async function load(
  port: number,
  stop: Promise<unknown>,
  options: {
    concurrency?: number
    maxRequests?: number
    maxMs?: number
    paths?: string[]
    fresh?: number
  } = {},
): Promise<LoadResult> {
  const {
    concurrency = 8,
    maxRequests = 50_000,
    maxMs = 30_000,
    paths = ['/'],
    fresh = 10,
  } = options
  // FIFO: every pooled connection carries requests in turn, as a busy client's do. An idle
  // connection closed by the server races with a request sent on it at that instant (an
  // HTTP/1.1 limit no server can remove); a connection used during the drain does not.
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency, scheduling: 'fifo' })
  const result: LoadResult = { sent: 0, ok: 0, failures: [], pids: new Set() }
  let stopped = false
  void stop.then(() => {
    stopped = true
  })
  const deadline = Date.now() + maxMs
  const loop = async () => {
    while (!stopped && result.sent < maxRequests && Date.now() < deadline) {
      const n = result.sent++
      const path = paths[n % paths.length] as string
      try {
        const answer = await request(port, path, n % fresh === 0 ? false : agent)
        if (answer.status === 200) {
          result.ok++
          const pid = (JSON.parse(answer.body) as { pid?: number }).pid
          if (pid !== undefined) result.pids.add(pid)
        } else result.failures.push(`${path}: status ${answer.status} ${answer.body}`)
      } catch (error) {
        result.failures.push(`${path}: ${(error as Error).message}`)
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop))
  agent.destroy()
  return result
}
