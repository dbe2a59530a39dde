// Small readers for untyped manifest data: a wrong type reads as absent, so one odd field
// never stops the check of the rest. No imports from the model, so the model and the modules
// it uses (adoption.ts, images.ts) all read values through this one file.
import { isRecord, type Path } from './load.js'

export function get(value: unknown, path: Path): unknown {
  let current = value
  for (const key of path) {
    if (typeof key === 'number') current = Array.isArray(current) ? current[key] : undefined
    else current = isRecord(current) ? current[key] : undefined
    if (current === undefined) return undefined
  }
  return current
}

export function record(value: unknown): Record<string, unknown> | undefined {
  return isRecord(value) ? value : undefined
}

export function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : []
}

export function text(value: unknown): string | undefined {
  return typeof value === 'string' ? value : undefined
}

export function integer(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined
}
