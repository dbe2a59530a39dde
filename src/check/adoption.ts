// Whether a container runs a lameduck app. Only those are held to lameduck's budget
// (drain + shutdown + hooks), its probe paths and its LAMEDUCK_* settings; every other
// container is judged on what Kubernetes itself does. This is the one place that decides.
import { ENV_PREFIX } from '../contract.js'
import { containerArgv, type ServeCommand, serveCommand } from './commands.js'
import type { Container, Model, Workload } from './model.js'
import { get, list, record, text } from './model.js'

/**
 * Annotation, on the workload or its pod template, that says which containers run
 * lameduck: `"true"` (all), `"false"` (none, even with --assume-lameduck), or a
 * comma-separated list of container names.
 */
export const LAMEDUCK_ANNOTATION = 'lameduck/app'

/** Prefix of every environment variable lameduck reads. */
export const LAMEDUCK_ENV_PREFIX = ENV_PREFIX

export type LameduckReason = 'env' | 'annotation' | 'serve' | 'assumed'

export interface LameduckUse {
  reason: LameduckReason
  /** How the checker knows, for messages: `LAMEDUCK_DRAIN_DELAY_MS in env`. */
  detail: string
  /**
   * The container runs `lameduck serve` (whatever the reason): its timings come from the
   * command's flags before LAMEDUCK_* variables, and in proxy mode the child's stop time
   * takes the place of the hooks.
   */
  serve?: ServeCommand
}

function annotation(w: Workload): { value: string; where: string } | undefined {
  const template = text(
    get(w.source.value, ['spec', 'template', 'metadata', 'annotations', LAMEDUCK_ANNOTATION]),
  )
  if (template !== undefined && w.kind !== 'Pod') return { value: template, where: 'pod template' }
  const own = get(w.source.value, ['metadata', 'annotations', LAMEDUCK_ANNOTATION])
  if (typeof own === 'string' || typeof own === 'boolean')
    return { value: String(own), where: w.kind }
  return undefined
}

/** The first LAMEDUCK_* name in env, or in a ConfigMap in the input that envFrom loads. */
function lameduckVariable(model: Model, w: Workload, c: Container): string | undefined {
  for (const entry of list(c.spec['env'])) {
    const name = text(record(entry)?.['name'])
    if (name?.startsWith(LAMEDUCK_ENV_PREFIX)) return `${name} in env`
  }
  for (const entry of list(c.spec['envFrom'])) {
    const prefix = text(get(entry, ['prefix'])) ?? ''
    const mapName = text(get(entry, ['configMapRef', 'name']))
    if (mapName === undefined) continue
    for (const map of model.configMapsByName.get(mapName) ?? []) {
      if (map.namespace !== undefined && w.namespace !== undefined && map.namespace !== w.namespace)
        continue
      const key = Object.keys(map.data).find((k) => `${prefix}${k}`.startsWith(LAMEDUCK_ENV_PREFIX))
      if (key !== undefined) return `${prefix}${key} from ConfigMap ${mapName}`
    }
  }
  return undefined
}

/**
 * Why `c` is taken for a lameduck app, or undefined when it is not. In order: the
 * annotation (which can also say no), a command that runs `lameduck serve`, a LAMEDUCK_*
 * variable, then --assume-lameduck.
 */
export function lameduckUse(
  model: Model,
  w: Workload,
  c: Container,
  options: { assumeLameduck?: boolean } = {},
): LameduckUse | undefined {
  const marked = annotation(w)
  const serve = serveCommand(containerArgv(c.spec))
  const withServe = (use: LameduckUse): LameduckUse =>
    serve === undefined ? use : { ...use, serve }
  if (marked !== undefined) {
    const value = marked.value.trim()
    if (value === 'false') return undefined
    const names = value.split(',').map((n) => n.trim())
    if (value === 'true' || names.includes(c.name)) {
      return withServe({
        reason: 'annotation',
        detail: `${LAMEDUCK_ANNOTATION} on the ${marked.where}`,
      })
    }
  }
  if (serve !== undefined) {
    return {
      reason: 'serve',
      detail: `${serve.program} serve${serve.mode === 'workers' ? ' --workers' : ''} in the command`,
      serve,
    }
  }
  const variable = lameduckVariable(model, w, c)
  if (variable !== undefined) return { reason: 'env', detail: variable }
  if (options.assumeLameduck === true) return { reason: 'assumed', detail: '--assume-lameduck' }
  return undefined
}
