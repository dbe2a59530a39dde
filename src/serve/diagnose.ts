// What `lameduck serve` can tell about a child that does not open its port: which TCP ports
// the processes of its group listen on, read from Linux's /proc (nothing elsewhere).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'

/** A listening TCP socket: its local address as `host:port` (`[::]:8000` for IPv6). */
export interface Listening {
  address: string
  port: number
  pid: number
}

/** The pids whose process group is `pgid`. */
function groupPids(pgid: number): number[] {
  const pids: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      // Fields after the command name (which may hold spaces and parentheses): state, ppid,
      // pgrp.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[2]) === pgid) pids.push(Number(entry))
    } catch {
      // The process ended meanwhile.
    }
  }
  return pids
}

/** The socket inodes a process holds open. */
function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>()
  let fds: string[]
  try {
    fds = readdirSync(`/proc/${pid}/fd`)
  } catch {
    return inodes
  }
  for (const fd of fds) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (match !== null) inodes.add(match[1] as string)
    } catch {
      // Closed meanwhile.
    }
  }
  return inodes
}

/** `0100007F:1F90` (IPv4) or 32 hex digits (IPv6), as the kernel prints them: each 32-bit
 * word in host byte order (little-endian on x86 and arm64). */
function decodeAddress(hex: string): { host: string; port: number } {
  const [addr = '', port = '0'] = hex.split(':')
  const words: number[][] = []
  for (let i = 0; i < addr.length; i += 8) {
    const word = addr.slice(i, i + 8)
    words.push([6, 4, 2, 0].map((j) => Number.parseInt(word.slice(j, j + 2), 16)))
  }
  const bytes = words.flat()
  let host: string
  if (bytes.length === 4) host = bytes.join('.')
  else {
    const groups: string[] = []
    for (let i = 0; i < 16; i += 2)
      groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16))
    host = `[${groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::')}]`
  }
  return { host, port: Number.parseInt(port, 16) }
}

/** TCP LISTEN sockets by inode, from /proc/net/tcp and tcp6. */
function listeningSockets(): Map<string, { host: string; port: number }> {
  const sockets = new Map<string, { host: string; port: number }>()
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      if (fields.length < 10 || fields[3] !== '0A') continue
      sockets.set(fields[9] as string, decodeAddress(fields[1] as string))
    }
  }
  return sockets
}

/**
 * The TCP ports the processes in process group `pgid` listen on; undefined where /proc
 * cannot tell (not Linux, or not allowed to read the processes' descriptors).
 */
export function groupListening(pgid: number): Listening[] | undefined {
  try {
    readdirSync('/proc/self/fd')
  } catch {
    return undefined
  }
  const sockets = listeningSockets()
  const found: Listening[] = []
  const seen = new Set<string>()
  for (const pid of groupPids(pgid)) {
    for (const inode of socketInodes(pid)) {
      const socket = sockets.get(inode)
      if (socket === undefined || seen.has(inode)) continue
      seen.add(inode)
      found.push({ address: `${socket.host}:${socket.port}`, port: socket.port, pid })
    }
  }
  return found
}
