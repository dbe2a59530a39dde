// What every command does with a word it does not know: name it, and suggest the closest
// one it does. node:util parseArgs' own messages are never shown as they are: they talk
// about positional arguments and quoting, not about this command's options.

/** Edits (insert, delete, substitute, swap two neighbours) from `a` to `b`. */
export function editDistance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i])
  for (let j = 1; j <= b.length; j++) rows[0]![j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, rows[i - 2]![j - 2]! + 1)
      }
      rows[i]![j] = best
    }
  }
  return rows[a.length]![b.length]!
}

/**
 * The known word `word` most likely stands for: the closest by edits when it is a typo (at
 * most a third of its letters, at least one), else the only one it begins (`no-prestop` for
 * `no-prestop-delay`). Undefined when nothing is close or the prefix is ambiguous.
 */
export function closest(word: string, known: Iterable<string>): string | undefined {
  const candidates = [...known]
  const limit = Math.max(1, Math.floor(word.length / 3))
  let best: string | undefined
  let bestDistance = limit + 1
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase())
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  if (best !== undefined) return best
  const extending = candidates.filter((c) => word.length >= 3 && c.startsWith(word))
  return extending.length === 1 ? extending[0] : undefined
}

/** ` (did you mean 'x'?)` when a known word is close to `word`, else nothing. */
export function didYouMean(word: string, known: Iterable<string>): string {
  const match = closest(word, known)
  return match === undefined ? '' : ` (did you mean '${match}'?)`
}

interface OptionSpec {
  type: 'string' | 'boolean'
}

/**
 * node:util parseArgs' error (ERR_PARSE_ARGS_*) in this command's words, with the closest
 * option for an unknown one. `seeHelp` ends every message; `examples` gives a plausible
 * value per option for "expects a value".
 */
export function parseArgsMessage(
  error: unknown,
  options: Readonly<Record<string, OptionSpec>>,
  seeHelp: string,
  examples: Readonly<Record<string, string>> = {},
): string {
  const { code, message } = error as NodeJS.ErrnoException
  const option = /'(?:-\w, )?(--?[\w-]+)/.exec(String(message))?.[1]
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const what = option ?? 'an option'
      const known = Object.keys(options).map((name) => `--${name}`)
      return `unknown option '${what}'${what.startsWith('--') ? didYouMean(what, known) : ''}; ${seeHelp}`
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const name = option ?? 'an option'
      if (/does not take an argument/.test(String(message)))
        return `${name} takes no value; ${seeHelp}`
      const long = options[name.replace(/^--/, '')] === undefined ? undefined : name.slice(2)
      const example = (long === undefined ? undefined : examples[long]) ?? '<value>'
      // `--drain-delay -1s`: parseArgs reads the '-1s' as another option, not as the value.
      const dash = /starting with a dash/.test(String(message))
        ? ` (a value that starts with '-' goes after '=': ${name}=-…)`
        : ''
      return `${name} expects a value, e.g. ${name} ${example}${dash}; ${seeHelp}`
    }
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': {
      const argument = /'([^']*)'/.exec(String(message))?.[1]
      return `unexpected argument${argument === undefined ? '' : ` '${argument}'`}; ${seeHelp}`
    }
    default:
      // Not the user's input (a wrong option table, say): a bug to show as it is.
      throw error
  }
}
