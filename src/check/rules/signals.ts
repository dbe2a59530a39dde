// Whether the stop signal reaches node, and whether lameduck acts on it (pitfalls 6 and 11).
import { ENV } from '../../contract.js'
import {
  containerArgv,
  pm2,
  programName,
  serveCommand,
  shellScript,
  signalPath,
  simpleCommands,
  withoutInit,
} from '../commands.js'
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

/** `command: [...]` as a fix shows it. */
function commandText(argv: readonly string[]): string {
  return `command: ${JSON.stringify(argv)}`
}

/**
 * The same command with the package manager taken out, when the checker can tell what it
 * runs: `npx tsx server.ts` → node_modules/.bin/tsx; `yarn node app.js` → node app.js.
 * Undefined for scripts (`npm start`), whose command is in package.json.
 */
function withoutPackageManager(argv: readonly string[]): string[] | undefined {
  const bare = [...withoutInit(argv)]
  const program = programName(bare[0])
  if (program === 'npx' || program === 'pnpx') {
    const rest = bare.slice(1)
    const i = rest.findIndex((w) => !w.startsWith('-'))
    if (i === -1) return undefined
    return [`node_modules/.bin/${rest[i]}`, ...rest.slice(i + 1)]
  }
  if ((program === 'yarn' || program === 'pnpm') && (bare[1] === 'node' || bare[1] === 'exec')) {
    const words = bare[1] === 'node' ? ['node', ...bare.slice(2)] : bare.slice(2)
    return words.length > 0 ? words : undefined
  }
  return undefined
}

/** What to write instead of a package-manager start, in the container's own terms. */
function directFix(argv: readonly string[]): string {
  const direct = withoutPackageManager(argv)
  if (direct !== undefined) return `run it directly in exec form: ${commandText(direct)}`
  const bare = withoutInit(argv)
  const script =
    bare[1] === 'run' || bare[1] === 'run-script'
      ? bare[2]
      : bare[1] === 'start'
        ? 'start'
        : bare[1]
  return `run the command of the "${script ?? 'start'}" script in package.json directly, in exec form (node and its file, e.g. command: ["node", "<the file it starts>"]), so that node is PID 1 and gets SIGTERM`
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
              : path.viaShell
                ? `run it without the package manager as the shell's last command, after exec (${directFix(path.lastCommand ?? argv)})`
                : directFix(argv),
        })
      }
    }
  },
}

/** The container's own script with `exec` before its last command. */
function execFix(argv: readonly string[]): string {
  const bare = withoutInit(argv)
  const script = shellScript(bare)
  if (script === undefined) return 'start the last command of the script with exec'
  const commands = simpleCommands(script)
  const last = commands.at(-1) ?? []
  // One command and nothing for a shell to expand: exec form does without the shell.
  if (commands.length === 1 && last.length > 0 && !/[$`*?~]/.test(script))
    return `exec form, without the shell: ${commandText(last)}`
  // A loop or a conditional cannot be exec'd: the shell itself must act on SIGTERM (PID 1
  // ignores signals it has no handler for).
  if (
    commands.some((words) =>
      /^(while|until|for|if|case|do|done|fi|esac|then)$/.test(words[0] ?? ''),
    )
  )
    return `have the shell exit on SIGTERM, at the start of the script: ${JSON.stringify(`trap 'exit 0' TERM; ${script.length > 100 ? `${script.slice(0, 97)}...` : script}`)}`
  const at = last[0] === undefined ? -1 : script.lastIndexOf(last[0])
  if (at === -1) return 'start the last command of the script with exec'
  const fixed = `${script.slice(0, at)}exec ${script.slice(at)}`.trim()
  const shown = fixed.length > 160 ? `…${fixed.slice(-157)}` : fixed
  return `put exec before the last command, so that it replaces the shell and gets SIGTERM: ${JSON.stringify(shown)}`
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
          fix: execFix(argv),
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
          fix: `pass --kill-timeout ${neededMs} and raise terminationGracePeriodSeconds to match, or run the app without pm2 (node and its file in exec form)`,
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
