// Where do the extra instructions per request go? Compares the marginal cost of two servers,
// each between two callgrind profiles from `npm run bench -- overhead` (in bench/out/), by
// component and by function, from callgrind_annotate's per-function totals:
//
//   node dist/bench/annotate.js [--inclusive] BASE_N1 BASE_N2 OTHER_N1 OTHER_N2 [TOP=20]
//
// e.g. (in bench/out/) callgrind.out.node20.overhead.bare.20000.1
//   callgrind.out.node20.overhead.bare.40000.1 callgrind.out.node20.overhead.lameduck.20000.1
//   callgrind.out.node20.overhead.lameduck.40000.1
//
// Builtins and C++ have symbols; code V8 generated at run time (optimised JavaScript) shows
// as `???` addresses, which differ from run to run, so it is only counted as a whole, unless
// the runs were made with `npm run bench -- overhead --perf-map`: then each profile has V8's
// perf map beside it and generated code is named by its JavaScript function (`JIT *name`;
// an optimised function includes what it inlined). --inclusive lists each function with
// what it calls (callgrind_annotate --inclusive=yes) instead of its own instructions.
import { COMPONENTS, type Costs, componentCosts, functionCosts } from './callgrind.js'

/** Generated code that no perf map named. */
const UNNAMED_JIT = /^\?\?\?:0x[0-9a-f]+('\d+)? \[\?\?\?\]$/

function requestsOf(profile: string): number {
  const requests = Number(profile.match(/\.(\d+)\.\d+$/)?.[1])
  if (!Number.isFinite(requests)) {
    throw new Error(`expected a profile named callgrind.out.….REQUESTS.REP, got ${profile}`)
  }
  return requests
}

/** (costs(second) - costs(first)) / (requests(second) - requests(first)), per key. */
function marginal(
  first: string,
  second: string,
  group: (costs: Costs) => Costs,
  inclusive = false,
): Costs {
  const n = requestsOf(second) - requestsOf(first)
  const out: Costs = new Map()
  for (const [profile, sign] of [
    [first, -1],
    [second, 1],
  ] as const) {
    for (const [name, cost] of group(functionCosts(profile, inclusive))) {
      out.set(name, (out.get(name) ?? 0) + (sign * cost) / n)
    }
  }
  return out
}

const args = process.argv.slice(2)
const inclusive = args[0] === '--inclusive'
const [base1, base2, other1, other2, top = '20'] = inclusive ? args.slice(1) : args
if (other2 === undefined || base1 === undefined || base2 === undefined || other1 === undefined) {
  console.error('usage: annotate [--inclusive] BASE_N1 BASE_N2 OTHER_N1 OTHER_N2 [TOP]')
  process.exit(2)
}
const round = (x: number) => Math.round(x).toLocaleString('en-US')
const same = (costs: Costs) => costs

const baseComponents = marginal(base1, base2, componentCosts)
const otherComponents = marginal(other1, other2, componentCosts)
console.log('| component | base instr/request | other instr/request | difference |')
console.log('|---|---:|---:|---:|')
let baseTotal = 0
let otherTotal = 0
for (const name of [...COMPONENTS.map(([n]) => n), 'other']) {
  const x = baseComponents.get(name) ?? 0
  const y = otherComponents.get(name) ?? 0
  baseTotal += x
  otherTotal += y
  console.log(`| ${name} | ${round(x)} | ${round(y)} | ${round(y - x)} |`)
}
console.log(
  `| total | ${round(baseTotal)} | ${round(otherTotal)} | ${round(otherTotal - baseTotal)} |`,
)

const baseFunctions = marginal(base1, base2, same, inclusive)
const otherFunctions = marginal(other1, other2, same, inclusive)
const differences = [...new Set([...baseFunctions.keys(), ...otherFunctions.keys()])]
  .filter((name) => !UNNAMED_JIT.test(name))
  .map((name) => [name, (otherFunctions.get(name) ?? 0) - (baseFunctions.get(name) ?? 0)] as const)
  .sort((x, y) => Math.abs(y[1]) - Math.abs(x[1]))
  .slice(0, Number(top))
console.log(
  `\n| difference per request | base | other | function (${inclusive ? 'inclusive' : 'exclusive'}) |`,
)
console.log('|---:|---:|---:|---|')
for (const [name, difference] of differences) {
  const shown = name
    .replace(/ \[.*\]$/, '')
    .replace(/^\?\?\?:/, '')
    .slice(0, 110)
  console.log(
    `| ${round(difference)} | ${round(baseFunctions.get(name) ?? 0)} | ${round(otherFunctions.get(name) ?? 0)} | \`${shown}\` |`,
  )
}
