import { readFileSync } from 'node:fs'

/** lameduck's version, from its package.json (three levels up from dist/{src,bundle}/cli/). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'))
  return String(pkg.version)
}
