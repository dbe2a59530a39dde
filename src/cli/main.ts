import { readFileSync } from 'node:fs'
import { CliError } from './errors.js'

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

export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'))
  return String(pkg.version)
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
    'Examples:',
    '  lameduck rollout --rollouts 3 --html report.html -- node server.js',
    '  lameduck check k8s/',
    '  lameduck help rollout',
    'Docs: https://www.npmjs.com/package/lameduck (README, docs/)',
  ].join('\n')
}

/** Runs the CLI; resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (name === 'help' && rest[0] !== undefined && commands[rest[0]] !== undefined) {
    return main([rest[0], '--help'])
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage())
    return name === undefined ? 2 : 0
  }
  if (name === '--version' || name === '-v') {
    console.log(packageVersion())
    return 0
  }
  const command = commands[name]
  if (command === undefined) {
    console.error(
      `lameduck: unknown command '${name}'; expected one of: ${Object.keys(commands).join(', ')}`,
    )
    console.error('Run `lameduck --help` for usage.')
    return 2
  }
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
