// Live progress on stderr: on a terminal, events scroll above one status line that is
// rewritten in place; otherwise, one plain line per event.
import type { LabObserver, LabStatus } from '../lab.js'
import type { LabEvent } from '../recorder.js'
import { count } from './format.js'

/** Rewrite the status line at most this often on a terminal. */
const STATUS_INTERVAL_MS = 200

export function describeEvent(event: LabEvent): string {
  const pod = event.pod ?? ''
  switch (event.type) {
    case 'pod-created':
      return `pod ${pod} created (${event.detail})`
    case 'pod-ready':
      return `pod ${pod} ready`
    case 'pod-not-ready':
      return `pod ${pod} not ready (${event.detail})`
    case 'pod-deleted':
      return `pod ${pod} deleted`
    case 'sigterm':
      return `pod ${pod} <- SIGTERM`
    case 'sigkill':
      return `pod ${pod} <- SIGKILL (${event.detail})`
    case 'pod-exited':
      return `pod ${pod} exited (${event.detail})`
    case 'endpoint-added':
      return `service routes to ${pod}`
    case 'endpoint-removed':
      return `service stops routing to ${pod}`
    case 'load-started':
      return `load started: ${event.detail}`
    case 'load-stopped':
      return `load stopped: ${event.detail}`
    case 'rollout-started':
      return `rolling update ${event.detail} started`
    case 'rollout-complete':
      return `rolling update ${event.detail} complete`
    case 'warning':
      return `warning: ${event.detail}`
  }
}

export function statusLine(status: LabStatus): string {
  const rollout = status.rollout === 0 ? '' : ` ${status.rollout}/${status.rollouts}`
  return `${(status.t / 1_000).toFixed(1).padStart(6)}s  ${status.phase}${rollout}  pods ${status.readyPods} ready ${status.terminatingPods} terminating  endpoints ${status.endpoints}  requests ${count(status.sent)}  in flight ${status.inFlight}  failed ${count(status.failed)}`
}

/** An observer printing to `stream`; `close()` clears the status line. */
export function progress(stream: NodeJS.WriteStream): LabObserver & { close: () => void } {
  const tty = stream.isTTY === true
  let lastStatus: LabStatus | undefined
  let lastDrawn = 0
  const clear = () => {
    if (tty) stream.write('\r\x1b[2K')
  }
  const draw = () => {
    if (tty && lastStatus !== undefined) {
      const line = statusLine(lastStatus)
      const columns = stream.columns !== undefined && stream.columns > 0 ? stream.columns : 120
      stream.write(line.slice(0, columns - 1))
    }
  }
  return {
    onEvent(event) {
      clear()
      stream.write(`${(event.t / 1_000).toFixed(2).padStart(7)}s  ${describeEvent(event)}\n`)
      draw()
    },
    onTick(status) {
      lastStatus = status
      if (!tty || status.t - lastDrawn < STATUS_INTERVAL_MS) return
      lastDrawn = status.t
      clear()
      draw()
    },
    close() {
      clear()
    },
  }
}
