// Reading callgrind profiles: per-function exclusive instruction counts, via callgrind_annotate,
// grouped into the components of a node process.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'

export type Costs = Map<string, number>

/**
 * Per-function instruction counts (callgrind_annotate's `file:function` lines): exclusive,
 * or inclusive (a function and everything it calls). Code V8 generated at run time is
 * named by the JavaScript function it belongs to when V8's perf map of the run
 * (`node --perf-basic-prof`, copied to PROFILE.perf-map) is there: `JIT *name file:line`.
 */
export function functionCosts(profile: string, inclusive = false): Costs {
  const text = execFileSync(
    'callgrind_annotate',
    ['--threshold=100', `--inclusive=${inclusive ? 'yes' : 'no'}`, profile],
    { encoding: 'utf8', maxBuffer: 256 * 2 ** 20 },
  )
  const jit = perfMap(`${profile}.perf-map`)
  const costs: Costs = new Map()
  for (const line of text.split('\n')) {
    const match = line.match(/^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.+)$/)
    if (match === null || line.includes('PROGRAM TOTALS')) continue
    let name = match[2] as string
    const address = name.match(/^\?\?\?:0x([0-9a-f]+)(?:'\d+)? \[\?\?\?\]$/)?.[1]
    if (address !== undefined && jit !== undefined) name = jit(Number.parseInt(address, 16)) ?? name
    costs.set(name, (costs.get(name) ?? 0) + Number((match[1] as string).replaceAll(',', '')))
  }
  return costs
}

/** V8's perf map (`START SIZE NAME` in hex, one code object a line) as a lookup from an
 * address to `JIT NAME`; undefined when the file is absent. Later entries win (code
 * created at an address freed by an earlier one). */
function perfMap(file: string): ((address: number) => string | undefined) | undefined {
  if (!existsSync(file)) return undefined
  const entries: { start: number; end: number; name: string }[] = []
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const match = line.match(/^([0-9a-f]+) ([0-9a-f]+) (.+)$/)
    if (match === null) continue
    const start = Number.parseInt(match[1] as string, 16)
    entries.push({
      start,
      end: start + Number.parseInt(match[2] as string, 16),
      name: match[3] as string,
    })
  }
  return (address) => {
    for (let i = entries.length - 1; i >= 0; i--) {
      const entry = entries[i] as (typeof entries)[number]
      if (address >= entry.start && address < entry.end) return `JIT ${entry.name}`
    }
    return undefined
  }
}

/** Code V8 generated at run time has no symbol: callgrind names it by address. */
export const JIT_CODE = 'generated code (JIT, ???)'
/** V8's optimising compilers: TurboFan, and Maglev from Node 22 on. */
export const COMPILER = 'V8 optimising compilers'
/** V8's garbage collector, root visiting included. */
export const GC = 'V8 garbage collector'

export const COMPONENTS: readonly (readonly [string, RegExp])[] = [
  [COMPILER, /v8::internal::(compiler|maglev)::/],
  ['V8 builtins', /Builtins_/],
  [
    GC,
    // IterateObjectCache and the other root visitors run at every scavenge (the startup
    // object cache alone is ~1 500 instructions per request on Node 20).
    /v8::internal::(Heap|MarkCompact|Scaveng|Marking|Sweep|Evacuat|RememberedSet|SlotSet|PagedSpace|SemiSpace|\(anonymous namespace\)::IterateObjectCache|Isolate::Iterate|GlobalHandles|RootScavengeVisitor|BodyDescriptorBase::Iterate)/,
  ],
  ['V8 runtime, parser, interpreter', /v8::/],
  [JIT_CODE, /^(\?\?\?:0x[0-9a-f]+('\d+)? \[\?\?\?\]|JIT )/],
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
