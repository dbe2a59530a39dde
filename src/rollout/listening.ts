// Which TCP ports a pod's processes listen on, read from /proc (Linux): a command that ignores
// $PORT listens somewhere else, and the lab can say where. Elsewhere it finds nothing. The
// reading of /proc is `lameduck serve`'s, which tells the same about a child that does not
// open its port.
import { groupListening } from '../serve/diagnose.js'

/** The TCP ports the processes of group `pgid` listen on, sorted; empty when unknown. */
export function listeningPorts(pgid: number): number[] {
  const ports = new Set((groupListening(pgid) ?? []).map((socket) => socket.port))
  return [...ports].sort((a, b) => a - b)
}
