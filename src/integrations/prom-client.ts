// lameduck's figures as metrics on the application's own prom-client registry, so they are
// served by the application's /metrics beside its own. prom-client is the user's: it is
// passed in, described here by the few members used, and never imported.
import { describeValue, LameduckError } from '../errors.js'
import type { Lameduck } from '../lifecycle.js'
import { assertLameduck, figuresOf, PHASES, STATES } from '../metrics.js'

/** A prom-client registry (`client.register`, or a `new client.Registry()`). */
export interface PromRegistryLike {
  removeSingleMetric(name: string): void
}

/** The configuration prom-client's Gauge and Counter take, as far as lameduck uses it. */
export interface PromMetricConfigLike<Registry extends PromRegistryLike = PromRegistryLike> {
  name: string
  help: string
  labelNames?: string[]
  registers?: Registry[]
  /** Called by prom-client when the registry is read: the figures are read at scrape time. */
  collect?: () => void
}

export interface PromGaugeLike {
  set(labels: Record<string, string>, value: number): void
  set(value: number): void
}

export interface PromCounterLike {
  reset(): void
  inc(value: number): void
}

/** The prom-client module (the package's default export); tested with prom-client 15. */
export interface PromClientLike<Registry extends PromRegistryLike = PromRegistryLike> {
  Gauge: new (config: PromMetricConfigLike<Registry>) => PromGaugeLike
  Counter: new (config: PromMetricConfigLike<Registry>) => PromCounterLike
  register: Registry
}

export interface PromClientMetricsOptions<Registry extends PromRegistryLike = PromRegistryLike> {
  /** The registry to add the metrics to. @default client.register (the global registry) */
  registry?: Registry
}

/**
 * Adds lameduck's figures to a prom-client registry: `lameduck_state{state}`,
 * `lameduck_in_flight_requests`, `lameduck_open_connections`,
 * `lameduck_shutdown_phase_seconds{phase}` and the shutdown's closed and forced connection
 * counters, the same families as `probes.metrics`, read when the registry is scraped.
 * Returns a function that removes them from the registry.
 */
export function promClientMetrics<Registry extends PromRegistryLike>(
  ld: Lameduck,
  client: PromClientLike<Registry>,
  options: PromClientMetricsOptions<Registry> = {},
): () => void {
  assertLameduck(ld, 'promClientMetrics')
  if (
    typeof client !== 'object' ||
    client === null ||
    typeof client.Gauge !== 'function' ||
    typeof client.Counter !== 'function'
  ) {
    throw new LameduckError(
      'LAMEDUCK_ERR_INVALID_OPTION',
      `Expected the second argument of promClientMetrics to be the prom-client module (the package's default export), got ${describeValue(client)}`,
    )
  }
  const registry = options.registry ?? client.register
  if (typeof registry?.removeSingleMetric !== 'function') {
    throw new LameduckError(
      'LAMEDUCK_ERR_INVALID_OPTION',
      `Expected the \`registry\` option of promClientMetrics to be a prom-client Registry, got ${describeValue(registry)}`,
    )
  }
  const registers = [registry]
  const names: string[] = []
  const gauge = (
    name: string,
    help: string,
    labelNames: string[],
    read: (g: PromGaugeLike) => void,
  ) => {
    names.push(name)
    const metric: PromGaugeLike = new client.Gauge({
      name,
      help,
      labelNames,
      registers,
      collect: () => read(metric),
    })
  }
  const counter = (name: string, help: string, read: () => number) => {
    names.push(name)
    const metric: PromCounterLike = new client.Counter({
      name,
      help,
      registers,
      collect: () => {
        metric.reset()
        metric.inc(read())
      },
    })
  }
  gauge(
    'lameduck_state',
    'Lifecycle state: 1 for the current one, 0 for the others.',
    ['state'],
    (g) => {
      const { state } = figuresOf(ld)
      for (const s of STATES) g.set({ state: s }, s === state ? 1 : 0)
    },
  )
  gauge(
    'lameduck_in_flight_requests',
    'Requests whose response is in progress (a scrape through the managed server counts itself).',
    [],
    (g) => g.set(figuresOf(ld).inFlight),
  )
  gauge(
    'lameduck_open_connections',
    'Open TCP connections to the managed servers, idle ones included.',
    [],
    (g) => g.set(figuresOf(ld).open),
  )
  gauge(
    'lameduck_shutdown_phase_seconds',
    'Duration of each shutdown phase so far (the running one until now); 0 before the shutdown.',
    ['phase'],
    (g) => {
      const { phases } = figuresOf(ld)
      for (const phase of PHASES)
        g.set({ phase }, phases === undefined ? 0 : phases[`${phase}Ms`] / 1_000)
    },
  )
  counter(
    'lameduck_shutdown_closed_connections_total',
    'Connections that ended on their own after the shutdown began.',
    () => figuresOf(ld).closed,
  )
  counter(
    'lameduck_shutdown_forced_connections_total',
    'Connections destroyed at shutdownTimeout or on a second signal.',
    () => figuresOf(ld).forced,
  )
  return () => {
    for (const name of names) registry.removeSingleMetric(name)
  }
}
