// Invalid options and environment values fail at construction with a stable code and a
// message that names the option and echoes the value.
import assert from 'node:assert/strict'
import http from 'node:http'
import { test } from 'node:test'
import { LameduckError, lameduck } from 'lameduck'
import { LameduckError as ModuleLameduckError } from '../src/errors.js'
import { resolveOptions } from '../src/options.js'

const base = { signals: [], exit: false, logger: false as const }

// The package's LameduckError is its bundle's; resolveOptions, imported from its module for
// these unit tests, throws the module's (the same class, another copy).
function rejects(fn: () => unknown, code: string, ...patterns: RegExp[]) {
  assert.throws(fn, (error: unknown) => {
    assert.ok(
      error instanceof LameduckError || error instanceof ModuleLameduckError,
      `expected a LameduckError, got ${String(error)}`,
    )
    assert.equal(error.code, code)
    for (const pattern of patterns) assert.match(error.message, pattern)
    return true
  })
}

test('invalid options throw LAMEDUCK_ERR_INVALID_OPTION naming the option and the value', () => {
  const cases: [Record<string, unknown>, RegExp[]][] = [
    [{ drainDelay: -1 }, [/`drainDelay`/, /`-1` \(number\)/]],
    [{ drainDelay: Number.NaN }, [/`drainDelay`/, /`NaN` \(number\)/]],
    [{ drainDelay: '10s' }, [/`drainDelay`/, /'10s' \(string\)/]],
    [{ shutdownTimeout: 1.5 }, [/`shutdownTimeout`/, /`1.5`/]],
    [{ shutdownTimeout: 2 ** 31 }, [/`shutdownTimeout`/, /at most 2147483647/]],
    [{ hookTimeout: 0 }, [/`hookTimeout`/, /integer >= 1/]],
    [{ checkTimeout: -5 }, [/`checkTimeout`/]],
    [{ signals: ['SIGTERM', 'SIGNOPE'] }, [/`signals`/, /'SIGNOPE'/]],
    [{ signals: ['SIGKILL'] }, [/`signals`/, /catchable/]],
    [{ signals: 'SIGTERM' }, [/`signals`/, /an array/]],
    [{ exit: 'yes' }, [/`exit`/, /a boolean/]],
    [{ autoReady: 1 }, [/`autoReady`/]],
    [{ probes: { readiness: 'readyz' } }, [/`probes.readiness`/, /'readyz'/]],
    [{ probes: { readiness: '/x', liveness: '/x' } }, [/`probes`/, /differ/]],
    [{ probes: { port: 70_000 } }, [/`probes.port`/, /70000/]],
    [{ probes: { host: '::1' } }, [/`probes.host`/, /only together with probes.port/]],
    [
      { probes: { readyness: '/r' } },
      [/Unknown option `probes.readyness`/, /did you mean `readiness`\?/],
    ],
    [{ probes: { metrics: 'metrics' } }, [/`probes.metrics`/, /'metrics'/]],
    [{ checks: { db: 'select 1' } }, [/`checks.db`/, /a function/]],
    [{ livenessChecks: { loop: true } }, [/`livenessChecks.loop`/, /a function/]],
    [{ livenessChecks: [] }, [/`livenessChecks`/, /named functions/]],
    [{ shutdownOnCrash: 'yes' }, [/`shutdownOnCrash`/, /a boolean/]],
    [{ probes: { details: 1 } }, [/`probes.details`/, /a boolean/]],
    [{ logger: {} }, [/`logger`/, /info, warn and error/]],
    [{ drainDelays: 5 }, [/Unknown option `drainDelays`/, /did you mean `drainDelay`\?/]],
    [{ draindelay: 5 }, [/did you mean `drainDelay`\?/]],
    [{ timeout: 5 }, [/Unknown option `timeout`/, /expected one of drainDelay, /]],
  ]
  for (const [options, patterns] of cases) {
    rejects(() => resolveOptions(options, {}), 'LAMEDUCK_ERR_INVALID_OPTION', ...patterns)
  }
  // No suggestion when nothing is close: `timeout` is not a typo of `hookTimeout`.
  const typo: Record<string, unknown> = { timeout: 5 }
  assert.throws(
    () => resolveOptions(typo, {}),
    (error: Error) => {
      assert.doesNotMatch(error.message, /did you mean/)
      return true
    },
  )
})

test('invalid environment values throw LAMEDUCK_ERR_INVALID_ENV naming the variable and the value', () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ LAMEDUCK_DRAIN_DELAY_MS: '10s' }, /LAMEDUCK_DRAIN_DELAY_MS.*'10s'/],
    [{ LAMEDUCK_DRAIN_DELAY_MS: '-1' }, /LAMEDUCK_DRAIN_DELAY_MS.*'-1'/],
    [{ LAMEDUCK_SHUTDOWN_TIMEOUT_MS: 'NaN' }, /LAMEDUCK_SHUTDOWN_TIMEOUT_MS.*'NaN'/],
    [{ LAMEDUCK_HOOK_TIMEOUT_MS: '0' }, /LAMEDUCK_HOOK_TIMEOUT_MS/],
    [{ LAMEDUCK_SIGNALS: 'SIGTERM,TERM' }, /LAMEDUCK_SIGNALS.*'TERM'/],
    [{ LAMEDUCK_PROBE_PORT: 'http' }, /LAMEDUCK_PROBE_PORT.*'http'/],
  ]
  for (const [env, pattern] of cases)
    rejects(() => resolveOptions({}, env), 'LAMEDUCK_ERR_INVALID_ENV', pattern)
})

test('defaults: drainDelay is 10 s on Kubernetes and 0 elsewhere; environment overrides code', () => {
  assert.equal(resolveOptions({}, {}).drainDelay, 0)
  assert.equal(resolveOptions({}, { KUBERNETES_SERVICE_HOST: '10.0.0.1' }).drainDelay, 10_000)
  const defaults = resolveOptions({}, {})
  assert.equal(defaults.shutdownTimeout, 20_000)
  assert.equal(defaults.hookTimeout, 5_000)
  assert.equal(defaults.checkTimeout, 1_000)
  assert.deepEqual(defaults.signals, ['SIGTERM', 'SIGINT'])
  assert.equal(defaults.exit, true)
  assert.equal(defaults.autoReady, true)
  assert.deepEqual(defaults.probes, {
    readiness: '/readyz',
    liveness: '/livez',
    startup: '/startupz',
    metrics: false,
    port: undefined,
    host: '0.0.0.0',
    details: false,
  })
  assert.equal(defaults.shutdownOnCrash, false)
  assert.equal(defaults.livenessChecks.size, 0)
  const env = {
    LAMEDUCK_DRAIN_DELAY_MS: '1500',
    LAMEDUCK_SHUTDOWN_TIMEOUT_MS: '2500',
    LAMEDUCK_HOOK_TIMEOUT_MS: '300',
    LAMEDUCK_CHECK_TIMEOUT_MS: '200',
    LAMEDUCK_SIGNALS: 'SIGTERM, SIGUSR2',
    LAMEDUCK_PROBE_PORT: '9000',
  }
  const tuned = resolveOptions({ drainDelay: 5, shutdownTimeout: 6, signals: ['SIGINT'] }, env)
  assert.equal(tuned.drainDelay, 1500)
  assert.equal(tuned.shutdownTimeout, 2500)
  assert.equal(tuned.hookTimeout, 300)
  assert.equal(tuned.checkTimeout, 200)
  assert.deepEqual(tuned.signals, ['SIGTERM', 'SIGUSR2'])
  assert.equal(tuned.probes === false ? undefined : tuned.probes.port, 9000)
})

test('a bad option in code fails even when the environment overrides it', () => {
  rejects(
    () => resolveOptions({ drainDelay: -1 }, { LAMEDUCK_DRAIN_DELAY_MS: '5' }),
    'LAMEDUCK_ERR_INVALID_OPTION',
    /`drainDelay`/,
  )
})

test('lameduck() rejects what is not a node:http or node:https server, and a server managed twice', () => {
  rejects(
    () => lameduck({} as http.Server, base),
    'LAMEDUCK_ERR_INVALID_SERVER',
    /node:http, node:https or node:http2 server/,
  )
  rejects(
    () => lameduck([], base),
    'LAMEDUCK_ERR_INVALID_SERVER',
    /manages no server, so its probes have nowhere to be answered: set probes.port/,
  )
  const server = http.createServer()
  rejects(() => lameduck([server, server], base), 'LAMEDUCK_ERR_INVALID_SERVER', /twice/)
  const ld = lameduck(server, base)
  rejects(() => lameduck(server, base), 'LAMEDUCK_ERR_INVALID_SERVER', /already managed/)
  void ld.shutdown()
})

test('invalid hooks fail when registered, and hooks cannot be added once shutdown started', async () => {
  const ld = lameduck(http.createServer(), base)
  rejects(() => ld.onShutdown('', () => {}), 'LAMEDUCK_ERR_INVALID_HOOK', /non-empty string/)
  rejects(
    () => ld.onShutdown('db', 'close' as never),
    'LAMEDUCK_ERR_INVALID_HOOK',
    /'db'.*a function/,
  )
  rejects(
    () => ld.onShutdown('db', () => {}, { timeout: -1 }),
    'LAMEDUCK_ERR_INVALID_HOOK',
    /`timeout`.*`-1`/,
  )
  const outcome = ld.shutdown('test')
  rejects(
    () => ld.onShutdown('late', () => {}),
    'LAMEDUCK_ERR_SHUTTING_DOWN',
    /after the shutdown started/,
  )
  assert.equal((await outcome).exitCode, 0)
  assert.equal(ld.shutdown(), outcome, 'every caller gets the same promise')
})
