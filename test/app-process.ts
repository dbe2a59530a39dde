// Starts test/fixtures/app.ts as a real child process and follows what it prints.
import { exited, fromRoot, type Spawned, spawnNode } from './helpers.js'

export interface AppProcess extends Spawned {
  port: number
  httpsPort: number | undefined
  /** lameduck's JSON log lines from stderr, parsed. */
  logs(): Record<string, unknown>[]
  /** Sends a signal to the process. */
  signal(signal: NodeJS.Signals): void
  /** Resolves when the process prints `state <state>`. */
  state(state: string): Promise<string>
  /** Resolves with the exit, after at most `ms`. */
  exit(ms?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

export interface HookConfig {
  name: string
  does: 'ok' | 'throw' | 'hang' | 'block' | 'slow'
  timeout?: number
  ms?: number
}

export interface AppConfig {
  options?: Record<string, unknown>
  hooks?: HookConfig[]
  drain?: HookConfig[]
  https?: boolean
  stubborn?: boolean
  /** 'checkContinue' and 'checkExpectation' listeners. */
  expect?: boolean
  /** An 'upgrade' listener. */
  upgrade?: boolean
  /** Listen first; lameduck() is called on `GET /attach`. */
  late?: boolean
  /** With `https`: the https server gets a lameduck() call of its own. */
  separate?: boolean
  /** The app's own SIGTERM handler closes the server (`'first'`: registered before
   * lameduck() is called). */
  appCloses?: boolean | 'first'
  /** Options for http.createServer. */
  serverOptions?: Record<string, unknown>
  /** A 'state' listener that throws on every transition (`'async'`: an async listener
   * whose promise rejects on every transition). */
  throwingState?: boolean | 'async'
  env?: Record<string, string>
  /** Another fixture that prints the same lines (default test/fixtures/app.ts). */
  fixture?: string
}

export async function startApp(config: AppConfig = {}): Promise<AppProcess> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...config.env }
  for (const key of Object.keys(env)) {
    if (key.startsWith('LAMEDUCK_') && !(config.env && key in config.env)) delete env[key]
  }
  if (!(config.env && 'KUBERNETES_SERVICE_HOST' in config.env)) delete env.KUBERNETES_SERVICE_HOST
  env.FIXTURE_OPTIONS = JSON.stringify(config.options ?? {})
  env.FIXTURE_HOOKS = JSON.stringify(config.hooks ?? [])
  env.FIXTURE_DRAIN = JSON.stringify(config.drain ?? [])
  if (config.https) env.FIXTURE_HTTPS = '1'
  if (config.stubborn) env.FIXTURE_STUBBORN = '1'
  if (config.expect) env.FIXTURE_EXPECT = '1'
  if (config.upgrade) env.FIXTURE_UPGRADE = '1'
  if (config.late) env.FIXTURE_LATE = '1'
  if (config.appCloses) env.FIXTURE_APP_CLOSES = config.appCloses === 'first' ? 'first' : '1'
  if (config.separate) env.FIXTURE_SEPARATE = '1'
  if (config.serverOptions) env.FIXTURE_SERVER_OPTIONS = JSON.stringify(config.serverOptions)
  if (config.throwingState) {
    env.FIXTURE_THROWING_STATE = config.throwingState === 'async' ? 'async' : '1'
  }
  const app = spawnNode(fromRoot(`dist/test/fixtures/${config.fixture ?? 'app'}.js`), [], { env })
  const out = await app.waitFor(/listening \d+/, 'the fixture app to listen')
  const [, port, httpsPort] = /listening (\d+)(?: (\d+))?/.exec(out) ?? []
  return {
    ...app,
    port: Number(port),
    httpsPort: httpsPort === undefined ? undefined : Number(httpsPort),
    logs: () =>
      app
        .stderr()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>),
    signal: (signal) => {
      app.child.kill(signal)
    },
    state: (state) => app.waitFor(`state ${state}`, `state ${state}`),
    exit: (ms) => exited(app.child, 'the fixture app to exit', ms),
  }
}
