// Which TCP ports a pod's processes listen on, read from /proc (Linux): a command that ignores
// $PORT listens somewhere else, and the lab can say where. Elsewhere it finds nothing.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'

/** TCP state LISTEN in /proc/net/tcp. */
const TCP_LISTEN = '0A'

function listeningInodes(): Map<string, number> {
  const inodes = new Map<string, number>()
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 10 || fields[3] !== TCP_LISTEN) continue
      const port = Number.parseInt(fields[1]!.split(':')[1]!, 16)
      inodes.set(fields[9]!, port)
    }
  }
  return inodes
}

/** Pids of the process group `pgid` (a pod's processes). */
function groupMembers(pgid: number): number[] {
  const members: number[] = []
  let entries: string[]
  try {
    entries = readdirSync('/proc')
  } catch {
    return members
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      // Fields after the command name, which is in parentheses and may hold spaces.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(rest[2]) === pgid) members.push(Number(entry))
    } catch {
      // The process ended while we looked.
    }
  }
  return members
}

/** The TCP ports the processes of group `pgid` listen on, sorted; empty when unknown. */
export function listeningPorts(pgid: number): number[] {
  const inodes = listeningInodes()
  const ports = new Set<number>()
  for (const pid of groupMembers(pgid)) {
    let fds: string[]
    try {
      fds = readdirSync(`/proc/${pid}/fd`)
    } catch {
      continue
    }
    for (const fd of fds) {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
        const port = match === null ? undefined : inodes.get(match[1]!)
        if (port !== undefined) ports.add(port)
      } catch {
        // The descriptor closed while we looked.
      }
    }
  }
  return [...ports].sort((a, b) => a - b)
}
