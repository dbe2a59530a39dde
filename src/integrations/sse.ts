import { describeValue, LameduckError } from '../errors.js'
import type { Lameduck } from '../lifecycle.js'

/** A streamed response: node:http's ServerResponse, node:http2's compatibility response, or
 * a ServerHttp2Stream (structurally). */
export interface StreamedResponseLike {
  readonly writableEnded: boolean
  write(chunk: string): unknown
  end(): unknown
  once(event: 'close', listener: () => void): unknown
}

export interface EventStreamsOptions {
  /** The reconnection delay sent to EventSource clients in a `retry:` field, in ms.
   * @default 1000 */
  retry?: number
}

/** How long an EventSource client waits before it reconnects, unless told otherwise. */
export const DEFAULT_SSE_RETRY_MS = 1_000

/** Streams registered with `add()`, ended with a `retry:` hint when the lame duck starts. */
export interface EventStreams {
  /** Follows a server-sent events response (call it once its headers are set). During the
   * lame duck it is ended at once, after the `retry:` hint. */
  add(res: StreamedResponseLike): void
  /** How many streams are open. */
  readonly size: number
}

/**
 * Ends server-sent event streams at the lame duck instead of leaving them to be cut at the
 * deadline: each gets `retry: <ms>` and a blank line, then its response ends, so the
 * EventSource reconnects after `retry` ms (with its Last-Event-ID), through the data path
 * that is being updated. A stream added during the lame duck gets the same at once.
 */
export function eventStreams(ld: Lameduck, options: EventStreamsOptions = {}): EventStreams {
  const retry = options.retry ?? DEFAULT_SSE_RETRY_MS
  if (!Number.isInteger(retry) || retry < 0) {
    throw new LameduckError(
      'LAMEDUCK_ERR_INVALID_OPTION',
      `Expected the \`retry\` option to be a non-negative integer (ms), got ${describeValue(retry)}`,
    )
  }
  const hint = `retry: ${retry}\n\n`
  const open = new Set<StreamedResponseLike>()
  let ending = ld.state === 'draining' || ld.state === 'stopping' || ld.state === 'stopped'
  const finish = (res: StreamedResponseLike) => {
    if (res.writableEnded) return
    res.write(hint)
    res.end()
  }
  ld.on('state', (state) => {
    if (ending || (state !== 'draining' && state !== 'stopping')) return
    ending = true
    for (const res of open) finish(res)
    open.clear()
  })
  return {
    add(res) {
      if (typeof res !== 'object' || res === null || typeof res.write !== 'function') {
        throw new LameduckError(
          'LAMEDUCK_ERR_INVALID_OPTION',
          `Expected a streamed response (ServerResponse or Http2 stream), got ${describeValue(res)}`,
        )
      }
      if (ending) {
        finish(res)
        return
      }
      open.add(res)
      res.once('close', () => open.delete(res))
    },
    get size() {
      return open.size
    },
  }
}
