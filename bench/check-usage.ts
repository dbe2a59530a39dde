// Loaded with `node --import` into a `lameduck check` run by bench/check.ts: at exit it writes
// the process's CPU time and peak resident memory to stderr, on a line of its own.
import { writeSync } from 'node:fs'

process.on('exit', () => {
  const usage = process.resourceUsage()
  const cpuMs = (usage.userCPUTime + usage.systemCPUTime) / 1000
  writeSync(2, `\nlameduck-bench-usage ${JSON.stringify({ cpuMs, maxRssKiB: usage.maxRSS })}\n`)
})
