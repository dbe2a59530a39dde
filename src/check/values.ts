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

/** `30`, `30s`, `1m05s`, `500ms` (Go durations and bare seconds) in seconds; undefined if not. */
export function durationSeconds(raw: string): number | undefined {
  const text = raw.trim()
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text)
  if (!/^(\d+(\.\d+)?(ms|h|m|s))+$/.test(text)) return undefined
  let total = 0
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) {
    total += Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2] as 'ms' | 's' | 'm' | 'h']
  }
  return total
}
