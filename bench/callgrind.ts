// Reading callgrind profiles: per-function exclusive instruction counts, via callgrind_annotate,
// grouped into the components of a node process.
import { execFileSync } from 'node:child_process'

export type Costs = Map<string, number>

/** Per-function exclusive instruction counts (callgrind_annotate's `file:function` lines). */
export function functionCosts(profile: string): Costs {
  const text = execFileSync('callgrind_annotate', ['--threshold=100', profile], {
    encoding: 'utf8',
    maxBuffer: 256 * 2 ** 20,
  })
  const costs: Costs = new Map()
  for (const line of text.split('\n')) {
    const match = line.match(/^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.+)$/)
    if (match === null || line.includes('PROGRAM TOTALS')) continue
    const name = match[2] as string
    costs.set(name, (costs.get(name) ?? 0) + Number((match[1] as string).replaceAll(',', '')))
  }
  return costs
}

/** Code V8 generated at run time has no symbol: callgrind names it by address. */
export const JIT_CODE = 'generated code (JIT, ???)'
/** V8's optimising compilers: TurboFan, and Maglev from Node 22 on. */
export const COMPILER = 'V8 optimising compilers'

export const COMPONENTS: readonly (readonly [string, RegExp])[] = [
  [COMPILER, /v8::internal::(compiler|maglev)::/],
  ['V8 builtins', /Builtins_/],
  [
    'V8 garbage collector',
    /v8::internal::(Heap|MarkCompact|Scaveng|Marking|Sweep|Evacuat|RememberedSet|SlotSet|PagedSpace|SemiSpace)/,
  ],
  ['V8 runtime, parser, interpreter', /v8::/],
  [JIT_CODE, /^\?\?\?:0x[0-9a-f]+('\d+)? \[\?\?\?\]/],
  ['node C++', /node::/],
  ['llhttp', /llhttp/],
  ['libuv', /\buv_|\buv__/],
  ['libc', /libc\.so/],
]

export function component(name: string): string {
  return COMPONENTS.find(([, pattern]) => pattern.test(name))?.[0] ?? 'other'
}

/** Instructions per component. */
export function componentCosts(costs: Costs): Costs {
  const out: Costs = new Map()
  for (const [name, cost] of costs) {
    const k = component(name)
    out.set(k, (out.get(k) ?? 0) + cost)
  }
  return out
}
