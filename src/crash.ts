// `shutdownOnCrash`: an uncaught exception or an unhandled rejection starts the ordered
// shutdown (exit code 1) instead of ending the process at once with requests in flight.

/** Where a crash came from: the two process events Node raises for an error nobody caught. */
export type CrashOrigin = 'uncaughtException' | 'unhandledRejection'

/**
 * Listens for `uncaughtException` and `unhandledRejection` and returns a function that stops.
 *
 * A listener on either event replaces Node's default for it (print and exit 1, which for
 * rejections is the default since Node 15), so from here on the process ends only when the
 * handler makes it end: the shutdown's own exit, bounded by its force-exit timer.
 */
export function onCrashes(handler: (origin: CrashOrigin, error: unknown) => void): () => void {
  const uncaught = (error: unknown) => handler('uncaughtException', error)
  const unhandled = (reason: unknown) => handler('unhandledRejection', reason)
  process.on('uncaughtException', uncaught)
  process.on('unhandledRejection', unhandled)
  return () => {
    process.off('uncaughtException', uncaught)
    process.off('unhandledRejection', unhandled)
  }
}

/** The fields a crash is logged with: the message and stack, never the whole object (an
 * error can carry a request or a connection string in its own properties). */
export function describeCrash(error: unknown): { error: string; stack?: string } {
  if (error instanceof Error) {
    return error.stack === undefined
      ? { error: error.message }
      : { error: error.message, stack: error.stack }
  }
  return { error: String(error) }
}
