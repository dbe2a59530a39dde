// How the preStop hook waits (KUBERNETES.md pitfall 5).
import { lacksShell } from '../images.js'
import { seconds, type Timeline } from '../timeline.js'
import type { Rule } from './types.js'

function sleepFix(t: Timeline): string {
  const n = Number.isFinite(t.preStop.seconds) && t.preStop.seconds > 0 ? t.preStop.seconds : 10
  return `lifecycle: {preStop: {sleep: {seconds: ${Math.ceil(n)}}}} (Kubernetes 1.30 or later; no shell needed)`
}

export const prestopExecNoShell: Rule = {
  id: 'prestop-exec-no-shell',
  severity: 'error',
  scope: 'serving',
  summary: 'an exec preStop sleep in an image that has no shell or sleep binary',
  rationale:
    'an exec hook whose program is missing fails at once: the kubelet logs an event and sends SIGTERM, so the drain the sleep was for never happens',
  check({ timelines, report }) {
    for (const t of timelines) {
      if (t.preStop.kind !== 'exec-sleep' || !lacksShell(t.container.image)) continue
      report({
        object: t.workload,
        container: t.container,
        path: [...t.preStop.path, 'exec', 'command'],
        message: `preStop runs ${t.preStop.viaShell ? 'sh -c' : 'sleep'} (${seconds(t.preStop.seconds)}), but ${t.container.image} has no shell or sleep binary`,
        fix: `use the native sleep action: ${sleepFix(t)}`,
      })
    }
  },
}

export const prestopExecSleep: Rule = {
  id: 'prestop-exec-sleep',
  severity: 'info',
  scope: 'serving',
  summary: 'an exec preStop sleep where the native sleep action would do',
  rationale:
    'an exec sleep needs the sleep binary (and a shell for sh -c) in the image; if an image update drops them the hook fails, only an event says so, and SIGTERM comes at once; the sleep action (Kubernetes 1.30+) needs nothing in the image',
  check({ timelines, report }) {
    for (const t of timelines) {
      if (t.preStop.kind !== 'exec-sleep' || lacksShell(t.container.image)) continue
      // A hook that also runs other commands (`sleep 5 && nginx -s quit`) cannot become a
      // sleep action without losing them: no fix to offer.
      if (t.preStop.atLeast) continue
      report({
        object: t.workload,
        container: t.container,
        path: [...t.preStop.path, 'exec', 'command'],
        message: `preStop execs ${t.preStop.viaShell ? 'a shell to sleep' : 'sleep'}`,
        fix: `on Kubernetes 1.30+, the native sleep action: ${sleepFix(t)}`,
      })
    }
  },
}

export const prestopUnknownDuration: Rule = {
  id: 'prestop-unknown-duration',
  severity: 'info',
  scope: 'lameduck',
  summary: 'a preStop hook whose duration the checker cannot know (httpGet, exec without sleep)',
  rationale:
    'the hook’s time counts against the grace period before lameduck’s own budget starts; the checker counts it as 0 s, so the grace-period check may be short by that much',
  check({ timelines, report }) {
    for (const t of timelines) {
      if (t.lameduck === undefined || t.preStop.known) continue
      const what =
        t.preStop.kind === 'httpGet' ? 'an httpGet' : 'an exec command that does not sleep'
      report({
        object: t.workload,
        container: t.container,
        path: t.preStop.path,
        message: `preStop is ${what}; its duration is unknown and counted as 0 s`,
        fix: 'make sure terminationGracePeriodSeconds covers the hook too; for a plain delay use lifecycle: {preStop: {sleep: {seconds: 10}}}',
      })
    }
  },
}
