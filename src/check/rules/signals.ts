// Whether the stop signal reaches node, and whether lameduck acts on it (pitfalls 6 and 11).
import { ENV } from '../../contract.js'
import { containerArgv, pm2, serveCommand, signalPath } from '../commands.js'
import { imageInfo } from '../images.js'
import type { Path } from '../load.js'
import { type Container, get, list, record, text } from '../model.js'
import type { Rule } from './types.js'

/** pm2's kill_timeout default: it SIGKILLs the app this long after asking it to stop. */
export const PM2_DEFAULT_KILL_TIMEOUT_MS = 1_600

/** Signals lameduck shuts down on unless LAMEDUCK_SIGNALS says otherwise. */
export const LAMEDUCK_DEFAULT_SIGNALS: readonly string[] = ['SIGTERM', 'SIGINT']
export const SIGNALS_ENV = ENV.signals

function commandPath(container: Container): Path {
  return [...container.path, container.spec['command'] !== undefined ? 'command' : 'args']
}

function quoteArgv(argv: readonly string[]): string {
  return JSON.stringify(argv)
}

export const npmStart: Rule = {
  id: 'npm-start',
  severity: 'error',
  scope: 'containers',
  summary:
    'npm, yarn, pnpm or npx runs the app: the stop signal reaches the package manager, not node',
  rationale:
    'package managers run the app as a child and do not reliably pass SIGTERM on or wait for it, so the app never shuts down gracefully and the kubelet SIGKILLs it at the end of the grace period',
  check({ model, report }) {
    for (const w of model.workloads) {
      for (const c of w.containers) {
        const argv = containerArgv(c.spec)
        if (argv === undefined) continue
        const path = signalPath(argv)
        if (path.kind !== 'package-manager') continue
        report({
          object: w,
          container: c,
          path: commandPath(c),
          message: `${quoteArgv(argv)} makes ${path.program} the process that gets SIGTERM${path.viaShell ? ' (through a shell)' : ''}`,
          fix:
            serveCommand(argv) !== undefined
              ? 'run lameduck serve directly in exec form, so that it is PID 1 and gets SIGTERM itself: command: ["node_modules/.bin/lameduck", "serve", ...] (or "lameduck" when it is on PATH)'
              : 'run node directly in exec form: command: ["node", "server.js"]',
        })
      }
    }
  },
}

export const shellCommand: Rule = {
  id: 'shell-command',
  severity: 'warning',
  scope: 'containers',
  summary:
    'the app runs under `sh -c` without `exec`: the shell may keep the stop signal from the app',
  rationale:
    'the shell is PID 1 and does not forward SIGTERM to its child (some shells exec a lone last command, many do not), so the app may never see the signal and is SIGKILLed at the end of the grace period',
  check({ model, report }) {
    for (const w of model.workloads) {
      for (const c of w.containers) {
        const argv = containerArgv(c.spec)
        if (argv === undefined) continue
        const path = signalPath(argv)
        if (path.kind !== 'shell') continue
        report({
          object: w,
          container: c,
          path: commandPath(c),
          message: `the command runs through a shell without exec: ${JSON.stringify(path.script.length > 120 ? `${path.script.slice(0, 117)}...` : path.script)}`,
          fix: 'start the last command with exec (sh -c "... && exec the-app"), or use exec form: command: ["the-app", "arg"]',
        })
      }
    }
  },
}

export const pm2KillTimeout: Rule = {
  id: 'pm2-kill-timeout',
  severity: 'error',
  scope: 'lameduck',
  summary:
    'pm2-runtime kills the app after 1.6 s (or its --kill-timeout), before lameduck can drain',
  rationale:
    'pm2 SIGKILLs its app kill_timeout after asking it to stop, whatever the app is doing: lameduck’s drain and shutdown are cut short',
  check({ model, report, timelineOf }) {
    for (const w of model.workloads) {
      for (const c of w.containers) {
        if (c.lameduck === undefined) continue
        const argv = containerArgv(c.spec)
        if (argv === undefined) continue
        const found = pm2(argv)
        if (found === undefined) continue
        if (found.killTimeoutMs === undefined && found.ecosystemFile && found.raw === undefined) {
          continue // kill_timeout may be set in the ecosystem file, which the checker cannot see
        }
        const t = timelineOf(w, c)
        const neededMs = t.drain.ms + t.shutdown.ms + t.hooks.ms
        const killMs = found.killTimeoutMs ?? PM2_DEFAULT_KILL_TIMEOUT_MS
        if (killMs >= neededMs) continue
        report({
          object: w,
          container: c,
          path: commandPath(c),
          message: `pm2 SIGKILLs the app ${killMs} ms after asking it to stop${found.killTimeoutMs === undefined ? ' (its default kill_timeout)' : ''}, but lameduck needs up to ${neededMs} ms (drain ${t.drain.ms} + shutdown ${t.shutdown.ms} + hooks ${t.hooks.ms})`,
          fix: `run node directly (command: ["node", "server.js"]), or pass --kill-timeout ${neededMs} and raise terminationGracePeriodSeconds to match`,
        })
      }
    }
  },
}

function envEntry(c: Container, name: string): { value: string | undefined; index: number } {
  const env = list(c.spec['env'])
  for (let i = env.length - 1; i >= 0; i--) {
    const entry = record(env[i])
    if (entry?.['name'] === name) return { value: text(entry['value']), index: i }
  }
  return { value: undefined, index: -1 }
}

export const stopSignalUnhandled: Rule = {
  id: 'stop-signal-unhandled',
  severity: 'error',
  scope: 'lameduck',
  summary: 'the container’s stop signal is not one lameduck shuts down on',
  rationale:
    'without a handler for the stop signal node exits at once (or, as PID 1, ignores it until SIGKILL), and nothing drains',
  check({ model, report }) {
    for (const w of model.workloads) {
      for (const c of w.containers) {
        const signals = envEntry(c, SIGNALS_ENV)
        const stopSignal = text(get(c.spec, ['lifecycle', 'stopSignal']))
        if (c.lameduck === undefined || (stopSignal === undefined && signals.value === undefined))
          continue
        // A stop signal that the image's program treats as its graceful stop is deliberate.
        const image = imageInfo(c.image)
        if (stopSignal !== undefined && image?.gracefulSignals?.includes(stopSignal)) continue
        const handled =
          signals.value !== undefined && signals.value.trim() !== ''
            ? signals.value.split(',').map((s) => s.trim().toUpperCase())
            : LAMEDUCK_DEFAULT_SIGNALS
        const sent = stopSignal ?? 'SIGTERM'
        if (handled.includes(sent)) continue
        const fromEnv = signals.value !== undefined && signals.value.trim() !== ''
        report({
          object: w,
          container: c,
          path:
            stopSignal !== undefined
              ? [...c.path, 'lifecycle', 'stopSignal']
              : [...c.path, 'env', signals.index, 'value'],
          message: `Kubernetes stops it with ${sent}${stopSignal === undefined ? ' (unless the image sets another STOPSIGNAL)' : ''}, but lameduck shuts down on ${handled.join(', ')}${fromEnv ? ` (${SIGNALS_ENV})` : ''}`,
          fix:
            stopSignal !== undefined
              ? 'remove lifecycle.stopSignal (SIGTERM is the default) or add it to LAMEDUCK_SIGNALS'
              : `include SIGTERM: ${SIGNALS_ENV}: "SIGTERM,SIGINT"`,
        })
      }
    }
  },
}
