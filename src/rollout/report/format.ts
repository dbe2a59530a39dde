// Small formatting helpers shared by the reports.
import type { PodSummary } from '../result.js'

/** `12345` → `12,345` */
export function count(n: number): string {
  return n.toLocaleString('en-US')
}

/** ms since the lab started → `12.34` (seconds) */
export function seconds(ms: number | undefined, digits = 2): string {
  return ms === undefined ? '-' : (ms / 1_000).toFixed(digits)
}

/** A time span in seconds, `2.41–2.45 s`; one time, `2.41 s`, when both ends print the same. */
export function span(from: number | undefined, to: number | undefined, digits = 2): string {
  const low = seconds(from, digits)
  const high = seconds(to, digits)
  return low === high ? `${low} s` : `${low}–${high} s`
}

/** A latency: `0.84 ms`, `12.3 ms`, `2,004 ms` */
export function latency(ms: number): string {
  if (ms < 10) return `${ms.toFixed(2)} ms`
  if (ms < 100) return `${ms.toFixed(1)} ms`
  return `${count(Math.round(ms))} ms`
}

/** A success rate to 3 decimals, never rounded up to 100 % when something failed. */
export function rate(successRate: number): string {
  const percent = successRate * 100
  if (successRate === 1) return '100 %'
  return `${(Math.floor(percent * 1_000) / 1_000).toFixed(3)} %`
}

/** How a pod's process ended, in a few words. */
export function podEnd(pod: PodSummary): string {
  if (pod.exit === undefined) return 'running'
  if (pod.stoppedByLab) return 'stopped by the lab'
  if (pod.exit.error !== undefined) return pod.exit.error
  if (pod.sigkillAt !== undefined) return 'SIGKILL at grace period'
  if (pod.exit.signal !== null) return `killed by ${pod.exit.signal}`
  return `exit code ${pod.exit.code}`
}
