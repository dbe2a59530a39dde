// How the preStop hook waits (KUBERNETES.md pitfall 5).
import { seconds, type Timeline } from '../timeline.js'
import type { Rule } from './types.js'

/**
 * Images known to ship neither a shell nor `sleep`: distroless (except its `:debug` tags,
 * which add busybox) and Chainguard's non `-dev` images.
 */
export function lacksShell(image: string | undefined): boolean {
  if (image === undefined) return false
  const tag = image.includes('@') ? '' : (image.split('/').at(-1)?.split(':')[1] ?? '')
  if (/(^|\/)distroless\//.test(image)) return !tag.includes('debug')
  if (image.startsWith('cgr.dev/chainguard/')) return !tag.endsWith('-dev')
  return false
}

function sleepFix(t: Timeline): string {
  const n = Number.isFinite(t.preStop.seconds) && t.preStop.seconds > 0 ? t.preStop.seconds : 10
  return `lifecycle: {preStop: {sleep: {seconds: ${Math.ceil(n)}}}} (Kubernetes 1.30 or later; no shell needed)`
}

export const prestopExecNoShell: Rule = {
  id: 'prestop-exec-no-shell',
  severity: 'error',
  summary: 'an exec preStop sleep in an image that has no shell or sleep binary',
  check({ timelines, report }) {
    for (const t of timelines) {
      if (t.preStop.kind !== 'exec-sleep' || !lacksShell(t.container.image)) continue
      report({
        object: t.workload,
        container: t.container,
        path: [...t.preStop.path, 'exec', 'command'],
        message: `container ${t.container.name}: preStop runs ${t.preStop.viaShell ? 'sh -c' : 'sleep'} but ${t.container.image} has no shell or sleep binary: the hook fails, an event is logged and SIGTERM follows at once, so the ${seconds(t.preStop.seconds)} drain never happens`,
        fix: `use the native sleep action: ${sleepFix(t)}`,
      })
    }
  },
}

export const prestopExecSleep: Rule = {
  id: 'prestop-exec-sleep',
  severity: 'info',
  summary: 'an exec preStop sleep where the native sleep action would do',
  check({ timelines, report }) {
    for (const t of timelines) {
      if (t.preStop.kind !== 'exec-sleep' || lacksShell(t.container.image)) continue
      report({
        object: t.workload,
        container: t.container,
        path: [...t.preStop.path, 'exec', 'command'],
        message: `container ${t.container.name}: preStop execs ${t.preStop.viaShell ? 'a shell to sleep' : 'sleep'}${t.preStop.atLeast ? ' among other commands' : ''}: it needs ${t.preStop.viaShell ? 'sh and sleep' : 'a sleep binary'} in the image; without them the hook fails (only an event says so) and SIGTERM comes at once`,
        fix: `use the native sleep action: ${sleepFix(t)}`,
      })
    }
  },
}

export const prestopUnknownDuration: Rule = {
  id: 'prestop-unknown-duration',
  severity: 'info',
  summary: 'a preStop hook whose duration the checker cannot know (httpGet, exec without sleep)',
  check({ timelines, report }) {
    for (const t of timelines) {
      if (t.preStop.known) continue
      const what =
        t.preStop.kind === 'httpGet' ? 'an httpGet' : 'an exec command that does not sleep'
      report({
        object: t.workload,
        container: t.container,
        path: t.preStop.path,
        message: `container ${t.container.name}: preStop is ${what}; its duration is unknown and counted as 0 s, so the timeline and grace-period checks may be short by that much`,
        fix: 'make sure terminationGracePeriodSeconds covers the hook too; for a plain delay use lifecycle: {preStop: {sleep: {seconds: 10}}}',
      })
    }
  },
}
