// What a lab run SIGKILLed before it could clean up leaves behind: its pods and its ingress
// proxy, each in a session of its own (process.ts) so that they outlive the lab, and the
// proxy's directory. Each run writes the process groups it starts to a file named for its
// pid; the next run ends the groups of runs that are gone, removes their files, and says so.
// (The kernel data path's namespaces and rules are found and removed by drivers/kernel.ts.)
import { appendFileSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const RECORD_PREFIX = 'lameduck-run-'
/** The ingress drivers' directories: `lameduck-<proxy>-<lab pid>-<ms>` (drivers/ingress.ts). */
const PROXY_DIR = /^lameduck-(?:nginx|haproxy)-(\d+)-\d+$/

/**
 * When `pid` started, in clock ticks since boot (field 22 of /proc/PID/stat): with the pid, it
 * names one process, not whichever process reuses the pid later. Undefined when it is gone.
 */
export function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

let record: string | undefined

/** Writes a process group this run started to the run's record. */
export function recordGroup(pgid: number): void {
  const started = startTime(pgid)
  if (started === undefined) return
  if (record === undefined) {
    record = join(tmpdir(), `${RECORD_PREFIX}${process.pid}`)
    appendFileSync(record, `lab ${process.pid} ${startTime(process.pid) ?? ''}\n`)
    const path = record
    process.once('exit', () => rmSync(path, { force: true }))
  }
  appendFileSync(record, `${pgid} ${started}\n`)
}

/**
 * Ends the process groups of earlier runs that are gone, removes their records and their
 * ingress directories; a sentence naming what it ended, or undefined when there was nothing.
 */
export function removeLeftovers(): string | undefined {
  const ended: string[] = []
  const gone = new Set<string>()
  const dir = tmpdir()
  const names = readdirSync(dir)
  for (const name of names) {
    if (!name.startsWith(RECORD_PREFIX)) continue
    const path = join(dir, name)
    let lines: string[]
    try {
      lines = readFileSync(path, 'utf8').trim().split('\n')
    } catch {
      continue
    }
    const [, lab, labStarted] = lines[0]?.split(' ') ?? []
    if (lab === undefined || startTime(Number(lab)) === labStarted) continue
    for (const line of lines.slice(1)) {
      const [pgid, started] = line.split(' ')
      if (pgid === undefined || startTime(Number(pgid)) !== started) continue
      try {
        process.kill(-Number(pgid), 'SIGKILL')
        ended.push(pgid)
      } catch {
        // ESRCH: it ended meanwhile.
      }
    }
    rmSync(path, { force: true })
    gone.add(lab)
  }
  const dirs: string[] = []
  for (const name of names) {
    const lab = PROXY_DIR.exec(name)?.[1]
    if (lab === undefined || !gone.has(lab)) continue
    rmSync(join(dir, name), { recursive: true, force: true })
    dirs.push(join(dir, name))
  }
  if (ended.length === 0 && dirs.length === 0) return undefined
  const what = [
    ended.length > 0 ? `ended ${ended.length} process group(s) (pids ${ended.join(', ')})` : '',
    dirs.length > 0 ? `removed ${dirs.join(', ')}` : '',
  ].filter((part) => part !== '')
  return `an earlier run of the lab was killed before it could clean up: ${what.join('; ')}`
}
