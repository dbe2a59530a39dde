// Prometheus text exposition (format 0.0.4) of the lifecycle, served on `probes.metrics`.
// Everything is read when a scrape arrives: serving requests costs nothing extra.
// In a worker of `lameduck serve --workers` a scrape answers for the pod: the figures of
// every worker, summed by the primary (src/cluster.ts, src/serve/workers/primary.ts).
import type { ServerResponse } from 'node:http'
import { describeValue, LameduckError } from './errors.js'
import { type Lameduck, STATE_RANK, type State, type Tracker } from './lifecycle.js'

export const STATES: readonly State[] = ['starting', 'ready', 'draining', 'stopping', 'stopped']
export const PHASES = ['drain', 'close', 'hooks'] as const

/** What a scrape reads. */
export interface MetricsSource {
  lifecycle: Lameduck
  trackers: readonly Tracker[]
}

/** Shutdown phase durations in milliseconds. */
export interface PhaseDurations {
  drainMs: number
  closeMs: number
  hooksMs: number
}

/** The figures of one process (or, summed, of a pod), as a scrape renders them. */
export interface Figures {
  state: State
  inFlight: number
  open: number
  closed: number
  forced: number
  /** Undefined before the shutdown. */
  phases: PhaseDurations | undefined
}

/** What a scrape in a `lameduck serve --workers` worker renders besides the figures. */
export interface PodFigures extends Figures {
  /** Live workers by the state they last reported (a worker still loading counts as
   * starting). */
  workers: Record<State, number>
  /** Workers left out of the gauges because they did not answer in time. */
  unanswered: number
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

/** Each lifecycle's trackers, for the adapters onto the user's own metrics libraries. */
const sources = new WeakMap<object, MetricsSource>()

/** Makes a lifecycle's figures readable by `figuresOf` (called by lameduck()). */
export function registerSource(source: MetricsSource): void {
  sources.set(source.lifecycle, source)
}

/** The figures of the servers `ld` manages, read now (in a worker of `lameduck serve
 * --workers`, this worker's own). */
export function figuresOf(ld: Lameduck): Figures {
  const source = sources.get(ld)
  if (source === undefined) throw notLameduck(ld)
  return readFigures([source])
}

/** Throws unless `ld` is what lameduck() returned. */
export function assertLameduck(ld: unknown, fn: string): asserts ld is Lameduck {
  if (typeof ld !== 'object' || ld === null || !sources.has(ld)) throw notLameduck(ld, fn)
}

function notLameduck(value: unknown, fn = 'figuresOf'): LameduckError {
  return new LameduckError(
    'LAMEDUCK_ERR_INVALID_OPTION',
    `Expected the first argument of ${fn} to be what lameduck() returned, got ${describeValue(value)}`,
  )
}

/** Reads the figures of one or more lifecycles (a worker may call lameduck() more than
 * once); `scrapes` are scrape responses, which do not count as in-flight requests. The
 * state is the least advanced of the lifecycles', the phases the longest of each. */
export function readFigures(
  sources: readonly MetricsSource[],
  scrapes?: ServerResponse | ReadonlySet<ServerResponse>,
): Figures {
  let open = 0
  let inFlight = 0
  let closed = 0
  let forced = 0
  let state: State | undefined
  let phases: PhaseDurations | undefined
  for (const { lifecycle, trackers } of sources) {
    for (const tracker of trackers) {
      open += tracker.size
      inFlight += tracker.inFlight(scrapes)
      closed += tracker.closedCount
      forced += tracker.forcedCount
    }
    if (state === undefined || STATE_RANK[lifecycle.state] < STATE_RANK[state]) {
      state = lifecycle.state
    }
    phases = longest(phases, lifecycle.phaseDurations)
  }
  return { state: state ?? 'starting', inFlight, open, closed, forced, phases }
}

/** Each phase's longest duration of the two. */
export function longest(
  a: PhaseDurations | undefined,
  b: PhaseDurations | undefined,
): PhaseDurations | undefined {
  if (a === undefined || b === undefined) return a ?? b
  return {
    drainMs: Math.max(a.drainMs, b.drainMs),
    closeMs: Math.max(a.closeMs, b.closeMs),
    hooksMs: Math.max(a.hooksMs, b.hooksMs),
  }
}

function families(figures: Figures): Family[] {
  const { state, phases } = figures
  return [
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
      samples: [['', figures.inFlight]],
    },
    {
      name: 'lameduck_open_connections',
      type: 'gauge',
      help: 'Open TCP connections to the managed servers, idle ones included.',
      samples: [['', figures.open]],
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
      samples: [['', figures.closed]],
    },
    {
      name: 'lameduck_shutdown_forced_connections_total',
      type: 'counter',
      help: 'Connections destroyed at shutdownTimeout or on a second signal.',
      samples: [['', figures.forced]],
    },
  ]
}

/** The exposition for one scrape; `scrape` is the scrape's own response, which does not
 * count as an in-flight request. */
export function renderMetrics(source: MetricsSource, scrape?: ServerResponse): string {
  return render(families(readFigures([source], scrape)))
}

function scope(which: 'pod' | 'worker'): Family {
  return {
    name: 'lameduck_metrics_scope',
    type: 'gauge',
    help: 'What the figures cover: 1 for pod (every worker, summed by the primary) or worker (only the worker that answered: the primary did not reply in time).',
    samples: [
      ['scope="pod"', which === 'pod' ? 1 : 0],
      ['scope="worker"', which === 'worker' ? 1 : 0],
    ],
  }
}

/** A scrape in a `lameduck serve --workers` worker: the pod's figures. */
export function renderPodMetrics(pod: PodFigures): string {
  return render([
    ...families(pod),
    {
      name: 'lameduck_workers',
      type: 'gauge',
      help: 'Live workers of the pod by the state each last reported.',
      samples: STATES.map((s) => [`state="${label(s)}"`, pod.workers[s]]),
    },
    {
      name: 'lameduck_metrics_unanswered_workers',
      type: 'gauge',
      help: 'Workers that did not answer this scrape in time, left out of the gauges.',
      samples: [['', pod.unanswered]],
    },
    scope('pod'),
  ])
}

/** A scrape in a `lameduck serve --workers` worker whose primary did not reply: this
 * worker's own figures, marked as such. */
export function renderWorkerMetrics(figures: Figures): string {
  return render([...families(figures), scope('worker')])
}
