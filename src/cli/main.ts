import { didYouMean } from './args.js'
import { CliError } from './errors.js'
import { packageVersion } from './version.js'

/** One subcommand. `load` is a dynamic import so a command's libraries load only when it runs. */
interface Command {
  summary: string
  load: () => Promise<{ run: (argv: string[]) => Promise<number> }>
}

const commands: Record<string, Command> = {
  check: {
    summary: 'check Kubernetes manifests for settings that break graceful shutdown',
    load: () => import('./check.js'),
  },
  rollout: {
    summary: 'reproduce a Kubernetes rolling update locally and count every failed request',
    load: () => import('./rollout.js'),
  },
  serve: {
    summary:
      'run a service in any language behind a draining proxy, or a Node app as N workers with one pod-wide drain',
    load: () => import('./serve.js'),
  },
}

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length), 8)
  const lines = Object.entries(commands).map(
    ([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`,
  )
  return [
    'Usage: lameduck <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `lameduck <command> --help` (or `lameduck help <command>`) for the options of one command.',
    '',
    'Options:',
    '  -h, --help     print this help and exit 0 (also: lameduck help)',
    '  -V, --version  print the version and exit 0 (also: lameduck version)',
    '',
    'Examples:',
    '  lameduck rollout --rollouts 3 --html report.html -- node server.js',
    '  lameduck check k8s/',
    '  lameduck help rollout',
    'Docs: https://www.npmjs.com/package/lameduck (README, docs/)',
  ].join('\n')
}

/**
 * Resolves once everything written to `stream` so far has been handed to the OS, or the
 * stream failed (its reader went away: `lameduck check | head`). A write to a pipe whose
 * reader is slower than the writer is finished asynchronously: what does not fit in the
 * pipe (64 KiB on Linux) waits in the stream until the reader takes it, and a
 * `process.exit` before then drops it. Writes complete in order, so the callback of an
 * empty write runs after every earlier write.
 */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || stream.writableEnded) return resolve()
    // EPIPE and the like: nothing more can be written, and a CLI whose reader left is done.
    stream.on('error', () => resolve())
    stream.write('', () => resolve())
  })
}

/** Ends the process with `code` once stdout and stderr have been flushed. */
export async function exitAfterOutput(code: number): Promise<never> {
  await Promise.all([flushed(process.stdout), flushed(process.stderr)])
  process.exit(code)
}

/** Names the CLI answers to besides its commands. */
const HELP_NAMES = ['help', '--help', '-h']
const VERSION_NAMES = ['version', '--version', '-V', '-v']

function unknownCommand(name: string): number {
  const option = name.startsWith('-')
  const known = option ? ['--help', '--version'] : [...Object.keys(commands), 'help', 'version']
  console.error(
    `lameduck: unknown ${option ? 'option' : 'command'} '${name}'${didYouMean(name, known)}; expected a command: ${Object.keys(commands).join(', ')}`,
  )
  console.error('Run `lameduck --help` for usage.')
  return 2
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === 'help' && rest[0] !== undefined) {
    return commands[rest[0]] === undefined ? unknownCommand(rest[0]) : main([rest[0], '--help'])
  }
  if (name === undefined || HELP_NAMES.includes(name)) {
    console.log(usage())
    return name === undefined ? 2 : 0
  }
  if (VERSION_NAMES.includes(name)) {
    console.log(packageVersion())
    return 0
  }
  const command = commands[name]
  if (command === undefined) return unknownCommand(name)
  try {
    const module = await command.load()
    return await module.run(rest)
  } catch (error) {
    if (error instanceof CliError) {
      console.error(`lameduck ${name}: ${error.message}`)
      return error.exitCode
    }
    throw error
  }
}
