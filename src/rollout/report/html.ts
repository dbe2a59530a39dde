import type { LabResult } from '../result.js'

export function renderHtml(result: LabResult): string {
  return `<!doctype html><pre>${JSON.stringify(result.outcomes)}</pre>`
}
