// lameduck's figures as OpenTelemetry observable instruments on the application's own
// meter. @opentelemetry/api is the user's: the meter is passed in, described here by the
// few members used, and never imported.
import { describeValue, LameduckError } from '../errors.js'
import type { Lameduck } from '../lifecycle.js'
import { assertLameduck, figuresOf, PHASES, STATES } from '../metrics.js'

export interface ObservableResultLike {
  observe(value: number, attributes?: Record<string, string>): void
}

export type ObservableCallbackLike = (result: ObservableResultLike) => void

export interface ObservableLike {
  addCallback(callback: ObservableCallbackLike): void
  removeCallback(callback: ObservableCallbackLike): void
}

export interface InstrumentOptionsLike {
  description?: string
  unit?: string
}

/** An OpenTelemetry Meter (`metrics.getMeter('my-service')` from @opentelemetry/api 1.x). */
export interface MeterLike {
  createObservableGauge(name: string, options?: InstrumentOptionsLike): ObservableLike
  createObservableCounter(name: string, options?: InstrumentOptionsLike): ObservableLike
  createObservableUpDownCounter(name: string, options?: InstrumentOptionsLike): ObservableLike
}

/**
 * Creates observable instruments on `meter` that read lameduck's figures at each
 * collection: `lameduck.state` (gauge, 1 for the current `state` attribute),
 * `lameduck.in_flight_requests` and `lameduck.open_connections` (up-down counters),
 * `lameduck.shutdown.phase.duration` (gauge, seconds, by `phase`), and
 * `lameduck.shutdown.closed_connections` / `lameduck.shutdown.forced_connections`
 * (counters). Returns a function that removes the callbacks.
 */
export function openTelemetryMetrics(ld: Lameduck, meter: MeterLike): () => void {
  assertLameduck(ld, 'openTelemetryMetrics')
  const methods = [
    'createObservableGauge',
    'createObservableCounter',
    'createObservableUpDownCounter',
  ] as const
  if (
    typeof meter !== 'object' ||
    meter === null ||
    methods.some((m) => typeof meter[m] !== 'function')
  ) {
    throw new LameduckError(
      'LAMEDUCK_ERR_INVALID_OPTION',
      `Expected the second argument of openTelemetryMetrics to be an OpenTelemetry Meter (metrics.getMeter(name) from @opentelemetry/api), got ${describeValue(meter)}`,
    )
  }
  const registered: [ObservableLike, ObservableCallbackLike][] = []
  const observe = (instrument: ObservableLike, callback: ObservableCallbackLike) => {
    instrument.addCallback(callback)
    registered.push([instrument, callback])
  }
  observe(
    meter.createObservableGauge('lameduck.state', {
      description: 'Lifecycle state: 1 for the current one, 0 for the others.',
    }),
    (result) => {
      const { state } = figuresOf(ld)
      for (const s of STATES) result.observe(s === state ? 1 : 0, { state: s })
    },
  )
  observe(
    meter.createObservableUpDownCounter('lameduck.in_flight_requests', {
      description: 'Requests whose response is in progress.',
      unit: '{request}',
    }),
    (result) => result.observe(figuresOf(ld).inFlight),
  )
  observe(
    meter.createObservableUpDownCounter('lameduck.open_connections', {
      description: 'Open TCP connections to the managed servers, idle ones included.',
      unit: '{connection}',
    }),
    (result) => result.observe(figuresOf(ld).open),
  )
  observe(
    meter.createObservableGauge('lameduck.shutdown.phase.duration', {
      description:
        'Duration of each shutdown phase so far (the running one until now); 0 before the shutdown.',
      unit: 's',
    }),
    (result) => {
      const { phases } = figuresOf(ld)
      for (const phase of PHASES) {
        result.observe(phases === undefined ? 0 : phases[`${phase}Ms`] / 1_000, { phase })
      }
    },
  )
  observe(
    meter.createObservableCounter('lameduck.shutdown.closed_connections', {
      description: 'Connections that ended on their own after the shutdown began.',
      unit: '{connection}',
    }),
    (result) => result.observe(figuresOf(ld).closed),
  )
  observe(
    meter.createObservableCounter('lameduck.shutdown.forced_connections', {
      description: 'Connections destroyed at shutdownTimeout or on a second signal.',
      unit: '{connection}',
    }),
    (result) => result.observe(figuresOf(ld).forced),
  )
  return () => {
    for (const [instrument, callback] of registered) instrument.removeCallback(callback)
  }
}
