import type { Worker } from 'node:cluster'
import type { ToWorker } from '../../cluster.js'
import type { State } from '../../lifecycle.js'
import type { Figures } from '../../metrics.js'

/** A worker's place in the pod. `serving` workers count towards readiness. */
export type Role = 'serving' | 'replacement' | 'retiring'

/** One worker, as the primary knows it. */
export interface Slot {
  worker: Worker
  role: Role
  /** The state the worker's lameduck reported; undefined until its first lameduck() call. */
  state: State | undefined
  /** What the worker was told last (re-sent when it first reports, in case it was busy
   * loading when the message arrived). */
  command: ToWorker | undefined
  /** SIGTERMed while still loading: it served nothing, so its end by that signal is clean. */
  stoppedLoading: boolean
  startedAt: number
  /** The worker's figures as it last sent them (a scrape, or its final ones at `exiting`). */
  figures: Figures | undefined
}

export function newSlot(worker: Worker, role: Role): Slot {
  return {
    worker,
    role,
    state: undefined,
    command: undefined,
    stoppedLoading: false,
    startedAt: performance.now(),
    figures: undefined,
  }
}

/** True once the slot's process has exited. */
export function hasExited(slot: Slot): boolean {
  return slot.worker.process.exitCode !== null || slot.worker.process.signalCode !== null
}

/** Waits until the slot reports ready (true), or exits or `ms` pass (false). The primary
 * emits `lameduck-state` on the worker for every state it reports. */
export function whenReady(slot: Slot, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    // Unref'd: the worker itself keeps the primary alive while it starts.
    const timer = setTimeout(() => settle(false), ms).unref()
    const onState = (state: State) => {
      if (state === 'ready') settle(true)
    }
    const onExit = () => settle(false)
    function settle(ok: boolean) {
      clearTimeout(timer)
      slot.worker.off('lameduck-state', onState)
      slot.worker.off('exit', onExit)
      resolve(ok)
    }
    if (slot.state === 'ready') {
      settle(true)
      return
    }
    slot.worker.on('lameduck-state', onState)
    slot.worker.once('exit', onExit)
  })
}
