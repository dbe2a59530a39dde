// What a container's command line does with signals, and how long a preStop command sleeps.
// Shell scripts are only split into simple commands on the operators that separate them;
// quoting is honoured well enough for `sh -c "sleep 5"` and `sh -c 'exec node server.js'`.
import { posix } from 'node:path'

const SHELLS = new Set(['sh', 'bash', 'ash', 'dash', 'zsh', 'ksh', 'mksh'])
const PACKAGE_MANAGERS = new Set(['npm', 'npx', 'yarn', 'yarnpkg', 'pnpm', 'pnpx', 'corepack'])
/** Minimal inits that forward signals to their one child and reap zombies. */
const INITS = new Set(['tini', 'tini-static', 'dumb-init', 'catatonit'])
/** Entrypoint scripts that end in `exec "$@"` (the official node image's, for one). */
const EXEC_WRAPPERS = new Set(['docker-entrypoint.sh'])

export function programName(word: string | undefined): string {
  return word === undefined ? '' : posix.basename(word)
}

/** The script of `sh -c SCRIPT` (also `bash -lc`, `/bin/sh -ec`), or undefined. */
export function shellScript(argv: readonly string[]): string | undefined {
  if (!SHELLS.has(programName(argv[0]))) return undefined
  for (let i = 1; i < argv.length; i++) {
    const word = argv[i]!
    if (!word.startsWith('-') || word === '-' || word === '--') return undefined
    if (!word.startsWith('--') && word.slice(1).includes('c')) return argv[i + 1]
  }
  return undefined
}

/** Splits a shell script into simple commands (words), on newlines, `;`, `&`, `&&`, `||`, `|`. */
export function simpleCommands(script: string): string[][] {
  const out: string[][] = []
  let words: string[] = []
  let word = ''
  let inWord = false
  let quote: string | undefined
  const endWord = () => {
    if (inWord) words.push(word)
    word = ''
    inWord = false
  }
  const endCommand = () => {
    endWord()
    if (words.length > 0) out.push(words)
    words = []
  }
  for (let i = 0; i < script.length; i++) {
    const c = script[i]!
    if (quote !== undefined) {
      if (c === quote) quote = undefined
      else if (c === '\\' && quote === '"' && i + 1 < script.length) word += script[++i]
      else word += c
      continue
    }
    if (c === "'" || c === '"') {
      quote = c
      inWord = true
    } else if (c === '\\' && i + 1 < script.length) {
      word += script[++i]
      inWord = true
    } else if (c === '#' && !inWord) {
      while (i + 1 < script.length && script[i + 1] !== '\n') i++
    } else if (c === '\n' || c === ';' || c === '&' || c === '|') {
      endCommand()
    } else if (c === ' ' || c === '\t' || c === '(' || c === ')' || c === '{' || c === '}') {
      endWord()
    } else {
      word += c
      inWord = true
    }
  }
  endCommand()
  return out
}

/** Seconds `sleep ARGS` waits (GNU and busybox sleep add their arguments), or undefined. */
export function sleepSeconds(args: readonly string[]): number | undefined {
  if (args.length === 0) return undefined
  let total = 0
  for (const arg of args) {
    if (/^inf(inity)?$/i.test(arg)) return Number.POSITIVE_INFINITY
    const match = /^(\d+(?:\.\d*)?|\.\d+)([smhd]?)$/.exec(arg)
    if (match === null) return undefined
    const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[match[2] as '' | 's' | 'm' | 'h' | 'd']
    total += Number(match[1]) * unit
  }
  return total
}

function sleepCommand(words: readonly string[]): number | undefined {
  if (programName(words[0]) === 'sleep') return sleepSeconds(words.slice(1))
  if (programName(words[0]) === 'busybox' && words[1] === 'sleep')
    return sleepSeconds(words.slice(2))
  return undefined
}

export interface PreStopSleep {
  /** Seconds of sleep found; 0 when none. */
  seconds: number
  /** The command sleeps and does nothing else. */
  exact: boolean
  /** A sleep was found at all. */
  sleeps: boolean
  /** The sleep goes through a shell (`sh -c`), which the image must contain. */
  viaShell: boolean
}

/** How long an exec preStop command sleeps: `[sleep, 5]`, `[sh, -c, "sleep 5 && ..."]`. */
export function preStopSleep(argv: readonly string[]): PreStopSleep {
  const direct = sleepCommand(argv)
  if (direct !== undefined) return { seconds: direct, exact: true, sleeps: true, viaShell: false }
  const script = shellScript(argv)
  if (script === undefined) return { seconds: 0, exact: false, sleeps: false, viaShell: false }
  let seconds = 0
  let sleeps = false
  let others = false
  for (const words of simpleCommands(script)) {
    const command = words[0] === 'exec' ? words.slice(1) : words
    const slept = sleepCommand(command)
    if (slept === undefined) others = true
    else {
      seconds += slept
      sleeps = true
    }
  }
  return { seconds, exact: sleeps && !others, sleeps, viaShell: true }
}

/** What a preStop command that does not sleep does, when the checker knows it. */
export interface PreStopCommand {
  /** The command as the user wrote it, for messages: `kong quit`. */
  text: string
  /** Seconds it waits before the program stops accepting connections (`kong quit --wait`). */
  waits: number
}

/** Programs that signal the app (or tell it to stop) and return at once. */
function signalsAndReturns(words: readonly string[]): boolean {
  const program = programName(words[0])
  if (program === 'kill' || program === 'pkill' || program === 'killall') return true
  // nginx -s quit|stop|reload sends the signal to the master and returns.
  if (program === 'nginx' || program === 'openresty') return words.includes('-s')
  return false
}

/**
 * A preStop command the checker can time although it does not sleep: one that tells the
 * app to stop and returns (`nginx -s quit`, `kill -QUIT 1`, `kong quit`, which stops Kong's
 * listeners at once unless `--wait N` delays it). Undefined for anything else.
 */
export function preStopCommand(argv: readonly string[]): PreStopCommand | undefined {
  const script = shellScript(argv)
  const commands = script === undefined ? [argv] : simpleCommands(script)
  if (commands.length === 0) return undefined
  let waits = 0
  for (const raw of commands) {
    const words = raw[0] === 'exec' ? raw.slice(1) : raw
    const program = programName(words[0])
    if (program === 'kong' && words[1] === 'quit') {
      let wait: string | undefined
      for (let i = 2; i < words.length; i++) {
        if (words[i] === '--wait') wait = words[i + 1]
        else if (words[i]!.startsWith('--wait=')) wait = words[i]!.slice(7)
      }
      if (wait !== undefined) {
        if (!/^\d+$/.test(wait)) return undefined
        waits += Number(wait)
      }
      continue
    }
    if (!signalsAndReturns(words)) return undefined
  }
  return { text: script ?? argv.join(' '), waits }
}

/** The argv the container runs: `command` + `args`, or `args` for the image's entrypoint. */
export function containerArgv(spec: Record<string, unknown>): string[] | undefined {
  const strings = (value: unknown) =>
    Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : undefined
  const command = strings(spec['command'])
  const args = strings(spec['args']) ?? []
  if (command !== undefined && command.length > 0) return [...command, ...args]
  return args.length > 0 ? args : undefined
}

/**
 * Removes a leading tini / dumb-init and its options, or an entrypoint script that execs its
 * arguments: the process they start is the one that gets the signal.
 */
export function withoutInit(argv: readonly string[]): readonly string[] {
  if (EXEC_WRAPPERS.has(programName(argv[0]))) return argv.slice(1)
  if (!INITS.has(programName(argv[0]))) return argv
  let i = 1
  while (i < argv.length && argv[i]!.startsWith('-')) {
    if (argv[i] === '--') {
      i++
      break
    }
    i++
  }
  return argv.slice(i)
}

export type SignalPath =
  | { kind: 'direct'; argv: readonly string[] }
  | { kind: 'package-manager'; program: string; viaShell: boolean; lastCommand?: string[] }
  | { kind: 'shell'; script: string }

/**
 * Who receives the container's stop signal: the program itself (`direct`), a package
 * manager that runs the app as its child, or a shell that does not `exec` the app.
 */
export function signalPath(argv: readonly string[]): SignalPath {
  const bare = withoutInit(argv)
  const first = programName(bare[0])
  if (PACKAGE_MANAGERS.has(first))
    return { kind: 'package-manager', program: first, viaShell: false }
  const script = shellScript(bare)
  if (script === undefined) return { kind: 'direct', argv: bare }
  const commands = simpleCommands(script)
  const last = commands.at(-1) ?? []
  const execed = last[0] === 'exec' ? last.slice(1) : undefined
  const runs = execed ?? last
  if (PACKAGE_MANAGERS.has(programName(runs[0]))) {
    return {
      kind: 'package-manager',
      program: programName(runs[0]),
      viaShell: true,
      lastCommand: runs,
    }
  }
  if (execed !== undefined && execed.length > 0) return { kind: 'direct', argv: execed }
  return { kind: 'shell', script }
}

/** `pm2-runtime` (or `pm2 … --no-daemon`) with what it was told about its kill timeout. */
export function pm2(
  argv: readonly string[],
):
  | { killTimeoutMs: number | undefined; ecosystemFile: boolean; raw: string | undefined }
  | undefined {
  const path = signalPath(argv)
  const words = path.kind === 'direct' ? path.argv : []
  const program = programName(words[0])
  const isRuntime =
    program === 'pm2-runtime' ||
    program === 'pm2-docker' ||
    (program === 'pm2' && words.includes('--no-daemon'))
  if (!isRuntime) return undefined
  let raw: string | undefined
  for (let i = 1; i < words.length; i++) {
    const word = words[i]!
    if (word === '--kill-timeout') raw = words[i + 1]
    else if (word.startsWith('--kill-timeout=')) raw = word.slice('--kill-timeout='.length)
  }
  const killTimeoutMs = raw !== undefined && /^\d+$/.test(raw) ? Number(raw) : undefined
  const ecosystemFile = words
    .slice(1)
    .some(
      (word) =>
        !word.startsWith('-') &&
        /(^|\/)(ecosystem|process)[^/]*\.(c?js|json|ya?ml)$|\.config\.c?js$/.test(word),
    )
  return { killTimeoutMs, ecosystemFile, raw }
}

/**
 * A main process that only waits (`sleep infinity`, `tail -f /dev/null`): the container
 * serves nothing, whatever Service selects its pod (a client pod in a service mesh sample).
 */
export function idleCommand(argv: readonly string[] | undefined): boolean {
  if (argv === undefined) return false
  const path = signalPath(argv)
  const words =
    path.kind === 'direct'
      ? path.argv
      : path.kind === 'shell'
        ? (simpleCommands(path.script).at(-1) ?? [])
        : []
  const program = programName(words[0])
  if (program === 'sleep') return true
  return program === 'tail' && words.includes('-f') && words.includes('/dev/null')
}

/** Options of `lameduck serve` that take no value. */
const SERVE_SWITCHES = new Set(['quiet', 'help'])
/** node options that take the next word as their value. */
const NODE_VALUE_OPTIONS = new Set(['-r', '--require', '--import', '--loader', '-e', '--eval'])

/** A container that runs `lameduck serve`, with the options written before its command. */
export interface ServeCommand {
  /** `workers` with --workers (node:cluster workers of a Node app), else `proxy`. */
  mode: 'proxy' | 'workers'
  /** Option name (without the dashes) → its value as written, the last one winning. */
  flags: Record<string, string>
  /** The program as written before `serve`: `lameduck`, `npx lameduck`, `node bin/lameduck.js`. */
  program: string
}

/**
 * Whether `argv` runs `lameduck serve`: `lameduck serve …`, `npx lameduck serve …`,
 * `node_modules/.bin/lameduck serve …`, `node …/bin/lameduck.js serve …`, also behind an
 * init or as the last command of `sh -c`. Its options are read up to `--` or the app.
 */
export function serveCommand(argv: readonly string[] | undefined): ServeCommand | undefined {
  if (argv === undefined) return undefined
  let words = withoutInit(argv)
  const script = shellScript(words)
  if (script !== undefined) {
    const last = simpleCommands(script).at(-1) ?? []
    words = withoutInit(last[0] === 'exec' ? last.slice(1) : last)
  }
  let i = 0
  const first = programName(words[0])
  const viaNode = first === 'node' || first === 'nodejs'
  if (first === 'npx' || first === 'pnpx' || viaNode) {
    i = 1
    while (i < words.length && words[i]!.startsWith('-')) {
      if (viaNode && NODE_VALUE_OPTIONS.has(words[i]!)) i++
      i++
    }
  }
  const name = programName(words[i])
  const isLameduck = viaNode ? /^lameduck(\.[cm]?js)?$/.test(name) : name === 'lameduck'
  if (!isLameduck || words[i + 1] !== 'serve') return undefined
  const flags: Record<string, string> = {}
  const rest = words.slice(i + 2)
  for (let j = 0; j < rest.length; j++) {
    const word = rest[j]!
    if (word === '--' || !word.startsWith('--')) break
    const eq = word.indexOf('=')
    const option = word.slice(2, eq === -1 ? undefined : eq)
    if (eq !== -1) flags[option] = word.slice(eq + 1)
    else if (!SERVE_SWITCHES.has(option)) flags[option] = rest[++j] ?? ''
  }
  return {
    mode: flags['workers'] !== undefined ? 'workers' : 'proxy',
    flags,
    program: words.slice(0, i + 1).join(' '),
  }
}

/** `--name=value` or `--name value` in argv (also `-name`); the last one wins. */
export function flagValue(argv: readonly string[], names: readonly string[]): string | undefined {
  let found: string | undefined
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!
    for (const name of names) {
      for (const dashes of ['--', '-']) {
        const flag = `${dashes}${name}`
        if (word === flag) found = argv[i + 1]
        else if (word.startsWith(`${flag}=`)) found = word.slice(flag.length + 1)
      }
    }
  }
  return found
}
