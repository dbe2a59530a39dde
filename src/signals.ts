/**
 * Installs one handler for each signal and returns a function that removes them.
 *
 * Node delivers a signal to JavaScript only while a handler is installed; without one the
 * default action (terminate) applies. As PID 1 in a container the kernel ignores signals
 * that have no handler, which is why `docker stop` on a bare node image waits for SIGKILL.
 */
export function onSignals(
  signals: readonly NodeJS.Signals[],
  handler: (signal: NodeJS.Signals) => void,
): () => void {
  const listeners = signals.map((signal) => {
    const listener = () => handler(signal)
    // First, whenever the application registered its own: an application's SIGTERM handler
    // (one that calls server.close(), say) then runs with the drain already begun.
    process.prependListener(signal, listener)
    return [signal, listener] as const
  })
  return () => {
    for (const [signal, listener] of listeners) process.off(signal, listener)
  }
}
