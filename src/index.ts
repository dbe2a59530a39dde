export type { ErrorCode } from './errors.js'
export { LameduckError } from './errors.js'
export type { Hook, HookPhase, HookResult } from './hooks.js'
export type {
  InstrumentOptionsLike,
  MeterLike,
  ObservableCallbackLike,
  ObservableLike,
  ObservableResultLike,
} from './integrations/opentelemetry.js'
export { openTelemetryMetrics } from './integrations/opentelemetry.js'
export type {
  PromClientLike,
  PromClientMetricsOptions,
  PromCounterLike,
  PromGaugeLike,
  PromMetricConfigLike,
  PromRegistryLike,
} from './integrations/prom-client.js'
export { promClientMetrics } from './integrations/prom-client.js'
export type { EventStreams, EventStreamsOptions, StreamedResponseLike } from './integrations/sse.js'
export { eventStreams } from './integrations/sse.js'
export type { WebSocketLike, WebSocketServerLike, WebSocketsOptions } from './integrations/ws.js'
export { webSockets } from './integrations/ws.js'
export type { ServerLike } from './lameduck.js'
export { lameduck } from './lameduck.js'
export type {
  ForceCause,
  Lameduck,
  LameduckEvents,
  ShutdownOutcome,
  ShutdownReason,
  State,
} from './lifecycle.js'
export type { Check, LameduckOptions, LoggerLike, ProbeOptions } from './options.js'
