// Prometheus text exposition (format 0.0.4) of the lifecycle, served on `probes.metrics`.
// Everything is read when a scrape arrives: serving requests costs nothing extra.
import type { ServerResponse } from 'node:http'
import type { Lameduck, State, Tracker } from './lifecycle.js'

const STATES: readonly State[] = ['starting', 'ready', 'draining', 'stopping', 'stopped']
const PHASES = ['drain', 'close', 'hooks'] as const

/** What a scrape reads. */
export interface MetricsSource {
  lifecycle: Lameduck
  trackers: readonly Tracker[]
}

interface Family {
  name: string
  type: 'gauge' | 'counter'
  help: string
  samples: [labels: string, value: number][]
}

/** A label value escaped as the text format requires (backslash, quote, newline). */
function label(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}

function render(families: readonly Family[]): string {
  let text = ''
  for (const family of families) {
    text += `# HELP ${family.name} ${family.help}\n# TYPE ${family.name} ${family.type}\n`
    for (const [labels, value] of family.samples) {
      text += `${family.name}${labels === '' ? '' : `{${labels}}`} ${value}\n`
    }
  }
  return text
}

/** The exposition for one scrape; `scrape` is the scrape's own response, which does not
 * count as an in-flight request. */
export function renderMetrics(source: MetricsSource, scrape?: ServerResponse): string {
  const { lifecycle, trackers } = source
  let open = 0
  let inFlight = 0
  let closed = 0
  let forced = 0
  for (const tracker of trackers) {
    open += tracker.size
    inFlight += tracker.inFlight(scrape)
    closed += tracker.closedCount
    forced += tracker.forcedCount
  }
  const phases = lifecycle.phaseDurations
  const state = lifecycle.state
  return render([
    {
      name: 'lameduck_state',
      type: 'gauge',
      help: 'Lifecycle state: 1 for the current one, 0 for the others.',
      samples: STATES.map((s) => [`state="${label(s)}"`, s === state ? 1 : 0]),
    },
    {
      name: 'lameduck_in_flight_requests',
      type: 'gauge',
      help: 'Requests whose response is in progress, not counting this scrape.',
      samples: [['', inFlight]],
    },
    {
      name: 'lameduck_open_connections',
      type: 'gauge',
      help: 'Open TCP connections to the managed servers, idle ones included.',
      samples: [['', open]],
    },
    {
      name: 'lameduck_shutdown_phase_seconds',
      type: 'gauge',
      help: 'Duration of each shutdown phase so far (the running one until now); 0 before the shutdown.',
      samples: PHASES.map((phase) => [
        `phase="${phase}"`,
        phases === undefined ? 0 : phases[`${phase}Ms`] / 1_000,
      ]),
    },
    {
      name: 'lameduck_shutdown_closed_connections_total',
      type: 'counter',
      help: 'Connections that ended on their own after the shutdown began.',
      samples: [['', closed]],
    },
    {
      name: 'lameduck_shutdown_forced_connections_total',
      type: 'counter',
      help: 'Connections destroyed at shutdownTimeout or on a second signal.',
      samples: [['', forced]],
    },
  ])
}
