// Reading plain manifests fast. js-yaml's parser turns a file into one flat array of events
// (mapping, sequence, scalar, each with its offset in the text) at several times the speed of
// the `yaml` library's syntax trees; the values are constructed from those events, and the
// position of a field is looked up in them only when a finding or a timeline asks for it.
//
// "Plain" is what rendered manifests almost always are: no anchors, aliases, tags, merge keys,
// directives or templates. For anything else, and for any error, `readPlain` answers
// undefined and load.ts reads the file with the `yaml` library, which is slower but says
// exactly what is wrong. Plain scalars are resolved by the `yaml` library's own core-schema
// tags, so a value is the same whichever library read it.
import {
  constructFromEvents,
  defineMappingTag,
  defineScalarTag,
  EVENT_ID,
  type Event,
  getScalarValue,
  mapTag,
  NOT_RESOLVED,
  parseEvents,
  SCALAR_STYLE,
  type ScalarEvent,
  Schema,
  seqTag,
  strTag,
} from 'js-yaml'
import { isScalar, type ScalarTag, Schema as YamlSchema } from 'yaml'

/**
 * Deepest nesting read here. Deeper documents go to the `yaml` library, which applies the
 * checker's own nesting limit and names it in its error.
 */
const MAX_DEPTH = 100

/** The `yaml` library's core-schema tags that resolve plain scalars, in its order. */
const CORE_TAGS = new YamlSchema({ schema: 'core' }).tags.filter(
  (tag): tag is ScalarTag & { test: RegExp } =>
    tag.default === true && 'test' in tag && tag.test instanceof RegExp,
)
const RESOLVE_OPTIONS = { intAsBigInt: false }

/** What the `yaml` library makes of a plain scalar's text: null, a boolean, a number, or itself. */
export function resolvePlain(source: string): unknown {
  for (const tag of CORE_TAGS) {
    if (tag.test.test(source)) return resolveWith(tag, source)
  }
  return source
}

function resolveWith(tag: ScalarTag, source: string): unknown {
  const value = tag.resolve(source, () => {}, RESOLVE_OPTIONS)
  return isScalar(value) ? value.value : value
}

/** js-yaml scalar tags that resolve exactly as the `yaml` library's core schema does. */
const scalarTags = [...new Set(CORE_TAGS.map((tag) => tag.tag))].map((name) => {
  const tags = CORE_TAGS.filter((tag) => tag.tag === name)
  return defineScalarTag(name, {
    implicit: true,
    resolve: (source, isExplicit) => {
      if (isExplicit) return NOT_RESOLVED // explicit tags are never read here
      for (const tag of tags) if (tag.test.test(source)) return resolveWith(tag, source)
      return NOT_RESOLVED
    },
    identify: () => false,
  })
})

/** Plain objects, with a null key read as '' as the `yaml` library's toJS reads it. */
const keyOf = (key: unknown) => (key === null ? '' : key)
const objectTag = defineMappingTag('tag:yaml.org,2002:map', {
  create: () => ({}) as Record<string, unknown>,
  addPair: (map, key, value) => mapTag.addPair(map, keyOf(key), value),
  has: (map, key) => mapTag.has(map, keyOf(key)),
  keys: (map) => mapTag.keys(map),
  get: (map, key) => mapTag.get(map, keyOf(key)),
  identify: () => false,
})

const SCHEMA = new Schema([strTag, seqTag, objectTag, ...scalarTags])

/** One document of a plain file: its value, and where a field inside it is written. */
export interface PlainDocument {
  value: unknown
  /**
   * Offset of the field at `path` (or of its deepest existing prefix), as the `yaml` library
   * would give it; undefined in the rare shapes this reader does not place (a null or block
   * scalar item written oddly), which the caller then places with the `yaml` library.
   */
  offsetOf(path: readonly (string | number)[]): number | undefined
}

/**
 * The documents of `text` when it is plain (see above), in order, empty ones included;
 * undefined when it is not, or cannot be parsed. `keep(value)` says whether a document's
 * events are kept for `offsetOf` from the start; the others parse the file again when first
 * asked.
 */
export function readPlain(
  text: string,
  keep: (value: unknown) => boolean = () => true,
): PlainDocument[] | undefined {
  const events = plainEvents(text)
  if (events === undefined) return undefined
  let values: unknown[]
  try {
    values = constructFromEvents(events, { source: text, schema: SCHEMA, maxAliases: 0 })
  } catch {
    return undefined
  }
  const starts = documentStarts(events)
  if (starts.length !== values.length) return undefined
  return values.map((value, index) => {
    const start = starts[index]!
    const end = starts[index + 1] ?? events.length
    // A document not kept parses the file again the first time it is asked, and keeps its own
    // events from then on.
    let own = keep(value) ? new DocumentEvents(text, events.slice(start, end)) : undefined
    return {
      value,
      offsetOf(path) {
        if (own === undefined) {
          const again = plainEvents(text)
          if (again === undefined) return undefined
          own = new DocumentEvents(text, again.slice(start, end))
        }
        return own.offsetOf(path)
      },
    }
  })
}

/** The file's events when it is plain; undefined otherwise. */
function plainEvents(text: string): Event[] | undefined {
  // A lone carriage return is a line break to YAML; lines here are counted on \n only.
  if (/\r(?!\n)/.test(text)) return undefined
  let events: Event[]
  try {
    events = parseEvents(text, { maxDepth: MAX_DEPTH })
  } catch {
    return undefined
  }
  return isPlain(text, events) ? events : undefined
}

/**
 * No directives, anchors, aliases, tags or merge keys, and no mapping written as `{{`
 * (an unrendered Helm template that happens to parse).
 */
function isPlain(text: string, events: readonly Event[]): boolean {
  // Per open collection: whether it is a mapping, and how many nodes it holds so far.
  const mapping: boolean[] = []
  const counts: number[] = []
  let depth = -1
  for (const event of events) {
    switch (event.type) {
      case EVENT_ID.DOCUMENT:
        if (event.directives.length > 0) return false
        break
      case EVENT_ID.MAPPING:
      case EVENT_ID.SEQUENCE:
        if (event.anchorStart !== -1 || event.tagStart !== -1) return false
        if (event.type === EVENT_ID.MAPPING && text.startsWith('{{', event.start)) return false
        if (depth >= 0) counts[depth]!++
        depth++
        mapping[depth] = event.type === EVENT_ID.MAPPING
        counts[depth] = 0
        break
      case EVENT_ID.SCALAR:
        if (event.anchorStart !== -1 || event.tagStart !== -1) return false
        if (depth >= 0) {
          const isKey = mapping[depth] === true && counts[depth]! % 2 === 0
          counts[depth]!++
          if (isKey && !plainKey(text, event)) return false
        }
        break
      case EVENT_ID.ALIAS:
        return false
      case EVENT_ID.POP:
        // A POP closes a document when no collection is open.
        if (depth >= 0) depth--
        break
    }
  }
  return true
}

/**
 * A key this reader takes as the `yaml` library would: not a merge key (`<<`), and not longer
 * than the 1024 characters YAML allows an implicit key (the `yaml` library refuses those).
 */
function plainKey(text: string, key: ScalarEvent): boolean {
  const length = key.valueEnd - key.valueStart
  if (length > MAX_KEY_LENGTH) return false
  return !(
    key.style === SCALAR_STYLE.PLAIN &&
    length === 2 &&
    text.startsWith('<<', key.valueStart)
  )
}

/** Longest key read here; YAML limits implicit keys to 1024 characters. */
const MAX_KEY_LENGTH = 1000

function documentStarts(events: readonly Event[]): number[] {
  const starts: number[] = []
  for (const [index, event] of events.entries()) {
    if (event.type === EVENT_ID.DOCUMENT) starts.push(index)
  }
  return starts
}

/** The events of one document ([DOCUMENT, node..., POP]), with a lazily built skip table. */
class DocumentEvents {
  readonly #text: string
  readonly #events: readonly Event[]
  /** For each collection event, the index just past its POP. */
  #after: Int32Array | undefined

  constructor(text: string, events: readonly Event[]) {
    this.#text = text
    this.#events = events
  }

  offsetOf(path: readonly (string | number)[]): number | undefined {
    let node = 1
    const root = this.#events[node]
    if (root === undefined || root.type === EVENT_ID.POP) return 0
    let offset = this.#start(node)
    if (offset === undefined) return undefined
    for (const key of path) {
      const event = this.#events[node]!
      if (event.type === EVENT_ID.MAPPING) {
        const pair = this.#findKey(node, String(key))
        if (pair === undefined) break
        const start = this.#start(pair)
        if (start === undefined) return undefined
        offset = start
        node = this.#next(pair)
      } else if (event.type === EVENT_ID.SEQUENCE && typeof key === 'number') {
        let item = node + 1
        for (let i = 0; i < key && this.#events[item]!.type !== EVENT_ID.POP; i++) {
          item = this.#next(item)
        }
        if (this.#events[item]!.type === EVENT_ID.POP) break
        const start = this.#start(item)
        if (start === undefined) return undefined
        offset = start
        node = item
      } else {
        break
      }
    }
    return offset
  }

  /** Index of the key event whose text reads `key` in the mapping at `map`. */
  #findKey(map: number, key: string): number | undefined {
    let index = map + 1
    while (this.#events[index]!.type !== EVENT_ID.POP) {
      const event = this.#events[index]!
      if (event.type === EVENT_ID.SCALAR && this.#keyText(event) === key) return index
      index = this.#next(this.#next(index))
    }
    return undefined
  }

  /** A key as the `yaml` library compares it: `String()` of its resolved value. */
  #keyText(event: ScalarEvent): string {
    const source = getScalarValue(this.#text, event)
    return event.style === SCALAR_STYLE.PLAIN ? String(resolvePlain(source)) : source
  }

  /** Index of the node after the one at `index` (past a collection's POP). */
  #next(index: number): number {
    const event = this.#events[index]!
    if (event.type !== EVENT_ID.MAPPING && event.type !== EVENT_ID.SEQUENCE) return index + 1
    this.#after ??= skipTable(this.#events)
    return this.#after[index]!
  }

  /** Where the node at `index` starts, as the `yaml` library's node range does. */
  #start(index: number): number | undefined {
    const event = this.#events[index]!
    if (event.type === EVENT_ID.MAPPING || event.type === EVENT_ID.SEQUENCE) return event.start
    if (event.type !== EVENT_ID.SCALAR || event.valueStart === -1) return undefined
    switch (event.style) {
      case SCALAR_STYLE.PLAIN:
        return event.valueStart
      case SCALAR_STYLE.SINGLE_QUOTED:
      case SCALAR_STYLE.DOUBLE_QUOTED:
        return event.valueStart - 1
      default:
        return this.#blockHeader(event.valueStart)
    }
  }

  /**
   * The `|` or `>` of a block scalar whose content starts at `contentStart`: its header is the
   * line before, after the indentation and any `- ` of the sequence items it opens.
   */
  #blockHeader(contentStart: number): number | undefined {
    const text = this.#text
    if (text[contentStart - 1] !== '\n') return undefined
    const lineStart = text.lastIndexOf('\n', contentStart - 2) + 1
    const lead = /^[ ]*(?:-[ \t]+)*/.exec(text.slice(lineStart, contentStart))![0]
    const at = lineStart + lead.length
    return text[at] === '|' || text[at] === '>' ? at : undefined
  }
}

function skipTable(events: readonly Event[]): Int32Array {
  const after = new Int32Array(events.length)
  const open: number[] = []
  for (const [index, event] of events.entries()) {
    if (event.type === EVENT_ID.MAPPING || event.type === EVENT_ID.SEQUENCE) open.push(index)
    else if (event.type === EVENT_ID.POP && open.length > 0) after[open.pop()!] = index + 1
  }
  return after
}

/** How many of the ascending `values` are at most `limit` (a binary search). */
export function countUpTo(values: readonly number[], limit: number): number {
  let low = 0
  let high = values.length
  while (low < high) {
    const mid = (low + high) >> 1
    if (values[mid]! <= limit) low = mid + 1
    else high = mid
  }
  return low
}

/** 1-based line and column of an offset, counting lines as the `yaml` library's LineCounter. */
export class LineIndex {
  readonly #text: string
  #starts: number[] | undefined
  constructor(text: string) {
    this.#text = text
  }
  at(offset: number): { line: number; column: number } {
    if (this.#starts === undefined) {
      const starts = [0]
      for (let i = this.#text.indexOf('\n'); i !== -1; i = this.#text.indexOf('\n', i + 1)) {
        starts.push(i + 1)
      }
      this.#starts = starts
    }
    const starts = this.#starts
    const low = countUpTo(starts, offset)
    return { line: Math.max(low, 1), column: offset - starts[Math.max(low - 1, 0)]! + 1 }
  }
}
