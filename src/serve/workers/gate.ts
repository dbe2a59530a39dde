// Which worker node:cluster may hand a new connection to.
//
// With round-robin scheduling (the default except on Windows) the primary accepts each
// connection and hands it to a worker whose server listens, over IPC, with a `newconn`
// message; the worker answers `accepted: false` when it no longer has that server, and the
// primary then hands the connection to another worker. A worker listens long before it is
// ready (its app calls listen(), then warms up and calls ready()): node would give it
// connections, probes included, while it still answers 503. The gate answers `accepted:
// false` in such a worker's place, so the connection goes to a ready worker instead.
//
// This leans on node:cluster's internal protocol (lib/internal/cluster/round_robin_handle.js
// and utils.js: `{cmd: 'NODE_CLUSTER', act: 'newconn', seq}`, answered by `{ack: seq,
// accepted}`), unchanged from Node 16 to 26. Where it differs, nothing is gated and node
// distributes as it always did (isNewConnection never matches).
import type { Worker } from 'node:cluster'

interface NewConnection {
  cmd: 'NODE_CLUSTER'
  act: 'newconn'
  seq: number
}

function isNewConnection(message: unknown): message is NewConnection {
  if (typeof message !== 'object' || message === null) return false
  const m = message as Partial<NewConnection>
  return m.cmd === 'NODE_CLUSTER' && m.act === 'newconn' && typeof m.seq === 'number'
}

/**
 * Hands `worker` a new connection only while `admit()` is true; otherwise node gives it to
 * another worker. `admit` must be true for at least one worker, or a connection goes round
 * until one is.
 */
export function gateConnections(worker: Worker, admit: () => boolean): void {
  const child = worker.process
  const send = child.send.bind(child) as (...args: unknown[]) => boolean
  ;(child as { send: (...args: unknown[]) => boolean }).send = (...args: unknown[]) => {
    const [message, handle] = args
    if (handle === undefined || !isNewConnection(message) || admit()) return send(...args)
    // The worker's own answer when its server is closed. Answered on the next turn of the
    // event loop: node re-offers the connection (and this worker asks for the next one) from
    // within the answer, which must not recurse.
    setImmediate(() =>
      child.emit('internalMessage', { cmd: 'NODE_CLUSTER', ack: message.seq, accepted: false }),
    )
    return true
  }
}
