// `lameduck rollout --from deployment.yaml`: the lab's Deployment and pod settings taken from
// the user's own manifest, read by the loader `lameduck check` uses (check/load.ts), so a
// user rolls *their* settings. Flags given on the command line win; every setting says where
// it came from.
import { readFileSync } from 'node:fs'
import { InputError, isRecord, type ManifestObject, type Path, parseSource } from '../check/load.js'
import {
  LabOptionError,
  type LabOptions,
  LIMITS,
  parseDuration,
  parseInteger,
  parseIntOrPercent,
} from './options.js'

/** The settings a manifest can give, by the flag that would override each. */
export const FROM_FLAGS = {
  name: 'name',
  replicas: 'replicas',
  maxSurge: 'max-surge',
  maxUnavailable: 'max-unavailable',
  minReadyMs: 'min-ready',
  progressDeadlineMs: 'progress-deadline',
  gracePeriodMs: 'termination-grace-period',
  preStopSleepMs: 'pre-stop-sleep',
  readinessPath: 'readiness-path',
  readinessPeriodMs: 'readiness-period',
  readinessTimeoutMs: 'readiness-timeout',
  readinessFailureThreshold: 'readiness-failure-threshold',
  readinessSuccessThreshold: 'readiness-success-threshold',
  env: 'env',
} as const satisfies Partial<Record<keyof LabOptions, string>>

export type FromKey = keyof typeof FROM_FLAGS

export interface FromManifest {
  values: Partial<Pick<LabOptions, FromKey>>
  /** Where each value is written: `file:line (field)`. */
  where: Partial<Record<FromKey, string>>
  /** What was in the manifest and is not used, one sentence each. */
  notes: string[]
}

const at = (object: ManifestObject, path: Path, field: string) => {
  const { line } = object.locate(path)
  return `${object.file}:${line} (${field})`
}

/** Reads the one Deployment of `file`; throws LabOptionError naming what is wrong. */
export function loadDeployment(file: string): FromManifest {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw new LabOptionError(
      `--from ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    )
  }
  let objects: ManifestObject[]
  try {
    objects = parseSource({ name: file, text })
  } catch (error) {
    if (error instanceof InputError) throw new LabOptionError(`--from ${error.message}`)
    throw error
  }
  const deployments = objects.filter((o) => o.value.kind === 'Deployment')
  if (deployments.length !== 1) {
    const kinds = objects.map((o) => String(o.value.kind)).join(', ') || 'nothing'
    throw new LabOptionError(
      `--from ${file}: expected exactly one Deployment, found ${deployments.length} (the file holds ${kinds})`,
    )
  }
  return fromDeployment(deployments[0]!)
}

function fromDeployment(object: ManifestObject): FromManifest {
  const out: FromManifest = { values: {}, where: {}, notes: [] }
  const value = object.value
  const get = (path: Path): unknown => {
    let node: unknown = value
    for (const key of path) {
      if (typeof key === 'number') node = Array.isArray(node) ? node[key] : undefined
      else node = isRecord(node) ? node[key] : undefined
    }
    return node
  }
  const set = <K extends FromKey>(key: K, path: Path, parse: (text: string) => LabOptions[K]) => {
    const raw = get(path)
    if (raw === undefined || raw === null) return
    const field = path.join('.')
    try {
      out.values[key] = parse(String(raw))
    } catch (error) {
      if (!(error instanceof LabOptionError)) throw error
      throw new LabOptionError(
        `${at(object, path, field)}: ${error.message.replace(/^--[\w-]+ /, `${field} `)}`,
      )
    }
    out.where[key] = at(object, path, field)
  }
  const seconds = (option: string, range: readonly [number, number]) => (text: string) =>
    parseDuration(option, text, range)

  const name = get(['metadata', 'name'])
  if (typeof name === 'string' && /^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$/.test(name)) {
    set('name', ['metadata', 'name'], (text) => text)
  }
  set('replicas', ['spec', 'replicas'], (t) => parseInteger('replicas', t, LIMITS.replicas))
  const strategy = get(['spec', 'strategy', 'type'])
  if (strategy === 'Recreate') {
    throw new LabOptionError(
      `${at(object, ['spec', 'strategy', 'type'], 'spec.strategy.type')}: strategy Recreate takes every pod down at once; the lab rolls RollingUpdate Deployments only`,
    )
  }
  set('maxSurge', ['spec', 'strategy', 'rollingUpdate', 'maxSurge'], (t) =>
    parseIntOrPercent('max-surge', t),
  )
  set('maxUnavailable', ['spec', 'strategy', 'rollingUpdate', 'maxUnavailable'], (t) =>
    parseIntOrPercent('max-unavailable', t),
  )
  set('minReadyMs', ['spec', 'minReadySeconds'], seconds('min-ready', LIMITS.durationMs))
  set(
    'progressDeadlineMs',
    ['spec', 'progressDeadlineSeconds'],
    seconds('progress-deadline', LIMITS.progressDeadlineMs),
  )
  const pod = ['spec', 'template', 'spec']
  set(
    'gracePeriodMs',
    [...pod, 'terminationGracePeriodSeconds'],
    seconds('termination-grace-period', LIMITS.durationMs),
  )
  const containers = get([...pod, 'containers'])
  if (!Array.isArray(containers) || containers.length === 0) {
    out.notes.push('the Deployment has no container: only its Deployment settings are used')
    return out
  }
  if (containers.length > 1) {
    out.notes.push(
      `the pod has ${containers.length} containers: the first one's probe, preStop and env are used`,
    )
  }
  const c = [...pod, 'containers', 0]
  const probe = [...c, 'readinessProbe']
  if (get([...probe, 'httpGet']) !== undefined) {
    set('readinessPath', [...probe, 'httpGet', 'path'], (text) => text)
  } else if (get(probe) !== undefined) {
    out.notes.push(
      'the readiness probe is not httpGet: the lab probes with HTTP GET --readiness-path',
    )
  }
  set(
    'readinessPeriodMs',
    [...probe, 'periodSeconds'],
    seconds('readiness-period', LIMITS.readinessPeriodMs),
  )
  set(
    'readinessTimeoutMs',
    [...probe, 'timeoutSeconds'],
    seconds('readiness-timeout', LIMITS.readinessTimeoutMs),
  )
  set('readinessFailureThreshold', [...probe, 'failureThreshold'], (t) =>
    parseInteger('readiness-failure-threshold', t, LIMITS.threshold),
  )
  set('readinessSuccessThreshold', [...probe, 'successThreshold'], (t) =>
    parseInteger('readiness-success-threshold', t, LIMITS.threshold),
  )
  const preStop = [...c, 'lifecycle', 'preStop']
  if (get([...preStop, 'sleep', 'seconds']) !== undefined) {
    set(
      'preStopSleepMs',
      [...preStop, 'sleep', 'seconds'],
      seconds('pre-stop-sleep', LIMITS.durationMs),
    )
  } else {
    const command = get([...preStop, 'exec', 'command'])
    const words = Array.isArray(command) ? command.map(String) : []
    const sleep = /^(?:\S*\/)?sleep\s+(\d+(?:\.\d+)?)$/.exec(
      words.join(' ').replace(/^(?:\S*\/)?(?:ba)?sh -c /, ''),
    )
    if (sleep !== null) {
      set('preStopSleepMs', [...preStop, 'exec', 'command'], () =>
        parseDuration('pre-stop-sleep', sleep[1]!, LIMITS.durationMs),
      )
    } else if (get(preStop) !== undefined) {
      out.notes.push(
        'the preStop hook is neither a sleep action nor an exec of sleep: it is not run',
      )
    }
  }
  const env = get([...c, 'env'])
  if (Array.isArray(env)) {
    const values: Record<string, string> = {}
    const skipped: string[] = []
    for (const entry of env) {
      if (!isRecord(entry) || typeof entry.name !== 'string') continue
      if (entry.value === undefined || entry.value === null) skipped.push(entry.name)
      else values[entry.name] = String(entry.value)
    }
    if (Object.keys(values).length > 0) {
      out.values.env = values
      out.where.env = at(object, [...c, 'env'], `${c.join('.')}.env`)
    }
    if (skipped.length > 0) {
      out.notes.push(
        `env from a Secret, ConfigMap or field reference is not set: ${skipped.join(', ')}`,
      )
    }
  }
  return out
}
