import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'

/** The CPUs a container may use, from its cgroup's CPU quota (v2, then v1), rounded up;
 * undefined when there is no quota. Kubernetes turns `resources.limits.cpu` into this quota,
 * while `os.availableParallelism()` still counts the node's CPUs. */
export function cgroupCpuLimit(
  read = (path: string) => readFileSync(path, 'utf8'),
): number | undefined {
  const attempt = (fn: () => number | undefined) => {
    try {
      return fn()
    } catch {
      return undefined
    }
  }
  const v2 = attempt(() => {
    const [quota, period] = read('/sys/fs/cgroup/cpu.max').trim().split(/\s+/)
    return quota === 'max' ? undefined : Number(quota) / Number(period)
  })
  const v1 = () =>
    attempt(() => {
      const quota = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_quota_us').trim())
      const period = Number(read('/sys/fs/cgroup/cpu/cpu.cfs_period_us').trim())
      return quota > 0 ? quota / period : undefined
    })
  const cpus = v2 ?? v1()
  return cpus !== undefined && Number.isFinite(cpus) && cpus > 0 ? Math.ceil(cpus) : undefined
}

/** `--workers auto`: one worker per CPU the container may use, at least one. */
export function autoWorkers(): number {
  const limit = cgroupCpuLimit()
  return Math.max(1, Math.min(availableParallelism(), limit ?? Number.POSITIVE_INFINITY))
}
