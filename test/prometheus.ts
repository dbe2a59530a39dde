// The Prometheus text format (0.0.4), parsed strictly as a scraper would: for the tests of
// probes.metrics, in one process and in a pod of `lameduck serve --workers`.
import assert from 'node:assert/strict'

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/**
 * Parses the text format (0.0.4) strictly: every sample belongs to a family announced by
 * `# HELP` and `# TYPE` before it, names and labels are well formed, values are numbers.
 */
export function parse(text: string): { samples: Sample[]; types: Map<string, string> } {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline')
  const types = new Map<string, string>()
  const helps = new Set<string>()
  const samples: Sample[] = []
  for (const line of text.slice(0, -1).split('\n')) {
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line)
    if (comment !== null) {
      const [, kind, name, rest] = comment as unknown as [string, string, string, string]
      if (kind === 'HELP') helps.add(name)
      else {
        assert.match(rest, /^(gauge|counter)$/, line)
        types.set(name, rest)
      }
      continue
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    assert.ok(sample !== null, `a sample line: ${JSON.stringify(line)}`)
    const [, name, labelText, value] = sample as unknown as [
      string,
      string,
      string | undefined,
      string,
    ]
    assert.ok(types.has(name) && helps.has(name), `${name} has HELP and TYPE before its samples`)
    if (types.get(name) === 'counter') assert.match(name, /_total$/)
    const labels: Record<string, string> = {}
    for (const [, key, raw] of (labelText ?? '').matchAll(
      /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g,
    )) {
      labels[key as string] = raw as string
    }
    assert.ok(Number.isFinite(Number(value)), `${line}: a number`)
    samples.push({ name, labels, value: Number(value) })
  }
  return { samples, types }
}

/** The sample of `name` whose labels include `labels`; fails when there is none. */
export function sample(
  samples: readonly Sample[],
  name: string,
  labels: Record<string, string> = {},
): number {
  const found = samples.find(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  )
  assert.ok(found, `${name} ${JSON.stringify(labels)} is exposed`)
  return found.value
}
