// Helpers for the tests that run the whole lab as a user does: `lameduck rollout ...` in a
// child process, with the JSON report read back.
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { LabResult } from '../../src/rollout/result.js'
import { type Exit, exited, fromRoot, type Spawned, spawnNode, until } from '../helpers.js'

export const bin = fromRoot('bin/lameduck.js')
export const fixture = (name: string) => fromRoot(`test/fixtures/rollout/${name}`)

/** Options that keep a lab run short: fast probes, short propagation. */
export const FAST = [
  '--readiness-period',
  '200ms',
  '--readiness-timeout',
  '200ms',
  '--propagation-delay',
  '300ms',
  '--propagation-jitter',
  '100ms',
]

export interface LabRun {
  exit: Exit
  /** The lab's process id. */
  pid: number | undefined
  stdout: string
  stderr: string
  result: LabResult | undefined
}

/**
 * A naive service's run went to its end. Its verdict may be inconclusive (exit 3) as well as
 * a pass under `--max-failures`: on a busy machine the load can first reach a pod after its
 * SIGTERM, and a deleted pod that carried no request across its shutdown makes any run
 * inconclusive. That takes nothing from what these runs show, the failures they count
 * (asserted by the callers). The report and stderr name what happened when it fails.
 */
export function assertNaiveRan(run: LabRun): void {
  assert.ok(
    run.exit.code === 0 || run.exit.code === 3,
    `the naive run exited ${run.exit.code ?? run.exit.signal}\n${run.stdout}\n${run.stderr}`,
  )
}

/** A temporary directory removed by `dispose()`. */
export function scratch(): { dir: string; dispose: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'lameduck-lab-'))
  return { dir, dispose: () => rmSync(dir, { recursive: true, force: true }) }
}

/** Starts `lameduck rollout ARGS`; the child is SIGKILLed if the test process ends first. */
export function startLab(args: string[], env: NodeJS.ProcessEnv = process.env): Spawned {
  return spawnNode(bin, ['rollout', ...args], { env })
}

/** Runs `lameduck rollout --quiet --json FILE ARGS -- COMMAND` to its end. */
export async function runLab(
  args: string[],
  command: string[],
  ms: number,
  env?: NodeJS.ProcessEnv,
): Promise<LabRun> {
  const { dir, dispose } = scratch()
  try {
    const json = join(dir, 'result.json')
    const run = startLab(['--quiet', '--json', json, ...args, '--', ...command], env)
    const exit = await exited(run.child, `lameduck rollout ${args.join(' ')}`, ms)
    let result: LabResult | undefined
    try {
      result = JSON.parse(readFileSync(json, 'utf8'))
    } catch {
      result = undefined
    }
    return { exit, pid: run.child.pid, stdout: run.stdout(), stderr: run.stderr(), result }
  } finally {
    dispose()
  }
}

/** True when `pid` is gone (or a zombie, which holds no resources and can do nothing). */
export function gone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
  } catch {
    return true
  }
}

/** Resolves once every pid is gone; rejects naming the survivors after `ms`. */
export async function allGone(pids: number[], ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms
  for (;;) {
    const alive = pids.filter((pid) => !gone(pid))
    if (alive.length === 0) return
    if (Date.now() > deadline) throw new Error(`processes still alive: ${alive.join(', ')}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const HOST_LOCK = join(tmpdir(), 'lameduck-test-host-network.lock')

/** Takes the host-network lock if it is free or its holder is gone. */
function takeHostLock(): boolean {
  try {
    writeFileSync(HOST_LOCK, String(process.pid), { flag: 'wx' })
    return true
  } catch {
    let owner: number
    try {
      owner = Number(readFileSync(HOST_LOCK, 'utf8'))
    } catch {
      return false // released meanwhile: the next poll takes it
    }
    // A test process killed while it held the lock.
    if (Number.isInteger(owner) && owner > 0 && gone(owner)) rmSync(HOST_LOCK, { force: true })
    return false
  }
}

/**
 * Holds the host's network namespaces and iptables for one test, across test files (they run
 * two at a time). Every kernel-path lab run removes what killed runs left on the host, so a
 * test that kills a lab and expects the next run to name its leftovers must not share the host
 * with another file's kernel-path run. Wraps a test's body.
 */
export function onHostNetwork(body: () => Promise<void>): () => Promise<void> {
  return async () => {
    await until(
      'the host network, held by a kernel-path test of another file',
      takeHostLock,
      5 * 60_000,
      100,
    )
    try {
      await body()
    } finally {
      rmSync(HOST_LOCK, { force: true })
    }
  }
}
