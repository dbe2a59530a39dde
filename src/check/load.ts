// Reading manifests: files, directories and stdin to text, text to Kubernetes objects that
// remember where each of their fields is. A plain file (what rendered manifests almost always
// are) is read from js-yaml's event stream (events.ts), several times faster; any other file,
// and every file with an error, goes through the `yaml` library, which reports exactly what is
// wrong. Both read YAML 1.2 with the same core schema (JSON is a subset of it); this file
// decides what to read and what to reject.
import { type Dirent, readdirSync, readFileSync, realpathSync, type Stats, statSync } from 'node:fs'
import { extname, join } from 'node:path'
import {
  Composer,
  type CST,
  type Document,
  isAlias,
  isMap,
  isNode,
  isScalar,
  isSeq,
  LineCounter,
  Parser,
  type YAMLMap,
} from 'yaml'
import { countUpTo, LineIndex, readPlain } from './events.js'

/** Largest input read, per file and for stdin, so a wrong path cannot exhaust memory. */
export const MAX_INPUT_BYTES = 64 * 1024 * 1024

/**
 * Alias expansions allowed per document (the `yaml` library's `maxAliasCount`; its default
 * is 100). Rendered manifests rarely use anchors; a billion-laughs document exceeds this
 * within its first levels and is rejected instead of expanded.
 */
export const MAX_ALIAS_COUNT = 1_000

/**
 * Deepest collection nesting accepted. The `yaml` composer recurses once per level and
 * runs out of stack near a thousand levels (and V8 may then abort the process instead of
 * throwing), so nesting is measured on the library's iterative CST first. Kubernetes objects
 * nest about 15 levels; CRD schemas rarely pass 60.
 */
export const MAX_NESTING_DEPTH = 256

/** File name endings read when a directory is given. */
export const MANIFEST_EXTENSIONS: readonly string[] = ['.yaml', '.yml', '.json']

/** The name stdin goes by in messages and reports. */
export const STDIN_NAME = '<stdin>'

/** One input: its name as the user gave it (a path, or `<stdin>`) and its text. */
export interface Source {
  name: string
  text: string
}

/** A 1-based line and column. */
export interface Location {
  line: number
  column: number
}

/** A field path inside a document: keys of mappings, indexes of sequences. */
export type Path = readonly (string | number)[]

/** Input that cannot be read or parsed. The CLI prints `message` as is and exits 2. */
export class InputError extends Error {
  override name = 'InputError'
  readonly file: string
  readonly location: Location | undefined
  constructor(file: string, reason: string, location?: Location, options?: { cause?: unknown }) {
    super(
      location === undefined
        ? `${file}: ${reason}`
        : `${file}:${location.line}:${location.column}: ${reason}`,
      options,
    )
    this.file = file
    this.location = location
  }
}

/** One Kubernetes object (a document, or one item of a `kind: List`) with its source. */
export interface ManifestObject {
  file: string
  /** Index of the YAML document within the file, from 0. */
  document: number
  /** Path of the object inside its document: `[]`, or `['items', n]` for a List item. */
  base: Path
  /** The object as plain data. Aliased parts are shared, not copied. */
  value: Record<string, unknown>
  /**
   * Where the field at `path` (relative to the object) is written: the key of a mapping
   * entry, the start of a sequence item. When the field is missing, the nearest enclosing
   * one that exists.
   */
  locate(path: Path): Location
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export interface ParseOptions {
  /**
   * Whether the YAML syntax tree of an object of this kind is kept for `locate`. Trees take
   * several times the memory of the text; objects of other kinds re-parse their document
   * when `locate` is called. Default: every kind.
   */
  retain?: (kind: string) => boolean
  /**
   * Where a document that cannot be read (a syntax error, a duplicate key, an unrendered
   * template) is recorded, and the file's other documents are still read. Without it, the
   * first such document throws.
   */
  problems?: InputError[]
}

const COMPOSER_OPTIONS = { merge: true, prettyErrors: false, uniqueKeys: true } as const

/** Parses one input into the Kubernetes objects it holds; throws InputError when it can't. */
export function parseSource(source: Source, options: ParseOptions = {}): ManifestObject[] {
  return readPlainSource(source, options.retain ?? (() => true)) ?? readWithYaml(source, options)
}

/** The objects in a Kubernetes document: the document itself, or the items of a List. */
function objectsIn(value: unknown): [Path, Record<string, unknown>][] {
  if (!isRecord(value) || typeof value['kind'] !== 'string') return []
  const items = value['items']
  return value['kind'].endsWith('List') && Array.isArray(items)
    ? items.flatMap((item, i): [Path, Record<string, unknown>][] =>
        isRecord(item) && typeof item['kind'] === 'string' ? [[['items', i], item]] : [],
      )
    : [[[], value]]
}

/** The objects found in document `index` of `file`, each placing its fields with `locate` (a path from the document's root). */
function located(
  file: string,
  index: number,
  found: [Path, Record<string, unknown>][],
  locate: (path: Path) => Location,
): ManifestObject[] {
  return found.map(([base, value]) => ({
    file,
    document: index,
    base,
    value,
    locate: (path) => locate([...base, ...path]),
  }))
}

/** A plain file read through events.ts; undefined when it is not plain. */
function readPlainSource(
  source: Source,
  retain: (kind: string) => boolean,
): ManifestObject[] | undefined {
  const { name, text } = source
  const read = withoutSchemas(text)
  const documents = readPlain(read.text, (value) =>
    objectsIn(value).some(([, object]) => retain(String(object['kind']))),
  )
  if (documents === undefined) return undefined
  const lines = new LineIndex(text)
  // The `yaml` library's trees, for the rare field the event reader does not place.
  let trees: Document.Parsed[] | undefined
  const objects: ManifestObject[] = []
  for (const [index, document] of documents.entries()) {
    const found = objectsIn(document.value)
    objects.push(
      ...located(name, index, found, (path) => {
        let offset = read.original(document.offsetOf(path))
        if (offset === undefined) {
          trees ??= parseTrees(text)
          offset = offsetOf(trees[index]!, path)
        }
        return lines.at(offset)
      }),
    )
  }
  return objects
}

/** A file's text with parts cut out, and the way back to the offsets of the whole file. */
interface Reduced {
  text: string
  original(offset: number | undefined): number | undefined
}

const DOCUMENT_START = /^(?:---|\.\.\.)(?=[ \t\r\n]|$)/gm
const CRD_KIND = /^kind:[ \t]*(["']?)CustomResourceDefinition\1[ \t]*(?:#.*)?\r?$/m
const SCHEMA_KEY = /^(?:spec|status):/gm
/** The end of a top-level block: a line break before a line that starts in column 0 with
 * anything but a comment. YAML allows no other line of the block there. */
const BLOCK_END = /\n(?=[^ \t#\r\n])/g

/**
 * The text without the `spec` and `status` of its CustomResourceDefinitions: OpenAPI schemas
 * (43 % of the bytes of the real manifests in test/fixtures/real) that hold nothing the
 * checker reads, cut before the plain reader parses them. The key stays, with no value; a
 * block holding `{{` is kept, so an unrendered template is still found. Every other document
 * is read whole, and offsets map back to the whole file's.
 */
export function withoutSchemas(text: string): Reduced {
  const whole: Reduced = { text, original: (offset) => offset }
  if (!text.includes('CustomResourceDefinition')) return whole
  const starts = [0]
  for (const marker of text.matchAll(DOCUMENT_START))
    if (marker.index > 0) starts.push(marker.index)
  starts.push(text.length)
  // Cuts as [start, end) offsets of the whole text, in order.
  const cuts: [number, number][] = []
  for (let d = 0; d + 1 < starts.length; d++) {
    const document = text.slice(starts[d], starts[d + 1])
    if (!CRD_KIND.test(document)) continue
    for (const key of document.matchAll(SCHEMA_KEY)) {
      const from = key.index + key[0].length
      BLOCK_END.lastIndex = from
      const next = BLOCK_END.exec(document)
      // The last block of a document ends at the document's end; its final line break stays.
      const to = next?.index ?? document.length - (document.endsWith('\n') ? 1 : 0)
      if (to > from && !document.slice(from, to).includes('{{')) {
        cuts.push([starts[d]! + from, starts[d]! + to])
      }
    }
  }
  if (cuts.length === 0) return whole
  const parts: string[] = []
  // For each cut: where it is in the reduced text, and how much was cut up to and including it.
  const at: number[] = []
  const removed: number[] = []
  let kept = 0
  let total = 0
  for (const [from, to] of cuts) {
    parts.push(text.slice(kept, from))
    total += to - from
    at.push(from - (total - (to - from)))
    removed.push(total)
    kept = to
  }
  parts.push(text.slice(kept))
  return {
    text: parts.join(''),
    original(offset) {
      if (offset === undefined) return undefined
      // The cuts at or before this offset of the reduced text.
      const low = countUpTo(at, offset)
      return low === 0 ? offset : offset + removed[low - 1]!
    },
  }
}

/** Every document of `text` as a `yaml` tree with positions (the file is known to be valid). */
function parseTrees(text: string): Document.Parsed[] {
  const composer = new Composer(COMPOSER_OPTIONS)
  return [...composer.compose(new Parser().parse(text), true, text.length)]
}

/**
 * The `yaml` library's reading of one input, for files that are not plain (exported for the
 * test that holds both readers to the same answers).
 */
export function readWithYaml(source: Source, options: ParseOptions): ManifestObject[] {
  const { name, text } = source
  const retain = options.retain ?? (() => true)
  const lineCounter = new LineCounter()
  const at = (offset: number): Location => {
    const { line, col } = lineCounter.linePos(offset)
    return { line: Math.max(line, 1), column: col }
  }
  const parser = new Parser(lineCounter.addNewLine)
  const composer = new Composer(COMPOSER_OPTIONS)
  function* checkedTokens(): Generator<CST.Token> {
    for (const token of parser.parse(text)) {
      if (token.type === 'document') {
        const tooDeep = firstTooDeep(token)
        if (tooDeep !== undefined) {
          throw new InputError(
            name,
            `YAML nested more than ${MAX_NESTING_DEPTH} levels deep; not a Kubernetes manifest`,
            at(tooDeep),
          )
        }
      }
      yield token
    }
  }

  // The next `{{` at or after the current document, found once per file, not per document.
  let braces = text.indexOf('{{')
  const bracesIn = ([start, , end]: Document.Parsed['range']): boolean => {
    if (braces !== -1 && braces < start) braces = text.indexOf('{{', start)
    return braces !== -1 && braces < end
  }
  const objects: ManifestObject[] = []
  let index = -1
  for (const document of composer.compose(checkedTokens(), false, text.length)) {
    index++
    const problems = documentProblems(name, text, document, at, bracesIn(document.range))
    if (problems.length > 0) {
      if (options.problems === undefined) throw problems[0]
      options.problems.push(...problems)
      continue
    }
    let value: unknown
    try {
      value = document.toJS({ maxAliasCount: MAX_ALIAS_COUNT })
    } catch (cause) {
      const start = at(document.contents?.range[0] ?? 0)
      const reason =
        cause instanceof ReferenceError && /Excessive alias count/.test(cause.message)
          ? `YAML aliases expand more than ${MAX_ALIAS_COUNT} times (an alias bomb?); refusing to expand them`
          : `YAML cannot be resolved: ${firstLine(cause instanceof Error ? cause.message : String(cause))}`
      throw new InputError(name, reason, start, { cause })
    }
    const found = objectsIn(value)
    if (found.length === 0) continue
    const kept = found.some(([, object]) => retain(String(object['kind']))) ? document : undefined
    const [start, , end] = document.range
    const tree = (): { document: Document.Parsed; shift: number } =>
      kept !== undefined
        ? { document: kept, shift: 0 }
        : { document: reparse(text.slice(start, end)), shift: start }
    objects.push(
      ...located(name, index, found, (path) => {
        const { document: parsed, shift } = tree()
        return at(shift + offsetOf(parsed, path))
      }),
    )
  }
  return objects
}

/**
 * Why a document cannot be read, one problem per duplicate key or the first syntax error;
 * none when it can. A document that kubectl would reject is not checked at all.
 */
function documentProblems(
  file: string,
  text: string,
  document: Document.Parsed,
  at: (offset: number) => Location,
  hasBraces: boolean,
): InputError[] {
  if (document.errors.length === 0) {
    const template = hasBraces ? unrenderedTemplate(text, document) : undefined
    if (template === undefined) return []
    const shown = templateText(text, template)
    return [
      new InputError(
        file,
        `unrendered template ${shown}: this is a chart's source, not a manifest; pipe \`helm template\` output in`,
        at(template),
      ),
    ]
  }
  if (document.errors.every((error) => error.code === 'DUPLICATE_KEY')) {
    return document.errors.map((error) => {
      const duplicate = findDuplicate(document, error.pos[0])
      const what =
        duplicate === undefined
          ? 'duplicate key'
          : `duplicate key ${JSON.stringify(duplicate.key)} in ${duplicate.path.length === 0 ? 'the top level' : duplicate.path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('')} (first at line ${at(duplicate.first).line})`
      return new InputError(
        file,
        `${what}: kubectl's strict field validation (its default) rejects the object; it is not checked`,
        at(error.pos[0]),
      )
    })
  }
  const error = document.errors.find((e) => e.code !== 'DUPLICATE_KEY')!
  // yaml places some errors at the indentation before the offending token; point at it.
  let offset = error.pos[0]
  while (text[offset] === ' ') offset++
  const hint = text.includes('{{')
    ? ' (an unrendered template? pipe `helm template` output in)'
    : ''
  return [new InputError(file, `YAML syntax error: ${firstLine(error.message)}${hint}`, at(offset))]
}

/** The nodes of a document in the order they are written, with the keys that lead to each. */
function* nodes(document: Document.Parsed): Generator<[unknown, (string | number)[]]> {
  const stack: [unknown, (string | number)[]][] = [[document.contents, []]]
  while (stack.length > 0) {
    const [node, path] = stack.pop()!
    yield [node, path]
    const children: [unknown, (string | number)[]][] = []
    if (isMap(node)) {
      for (const pair of node.items as PairLike[]) {
        children.push([pair.key, path])
        children.push([pair.value, [...path, isScalar(pair.key) ? String(pair.key.value) : '?']])
      }
    } else if (isSeq(node)) {
      for (const [i, item] of node.items.entries()) children.push([item, [...path, i]])
    }
    stack.push(...children.reverse())
  }
}

/**
 * Offset of the first `{{` that YAML read as a flow mapping inside a flow mapping: Helm's
 * `replicas: {{ .Values.replicas }}` is valid YAML (a mapping whose only key is a mapping),
 * but no Kubernetes field is written that way.
 */
function unrenderedTemplate(text: string, document: Document.Parsed): number | undefined {
  for (const [node] of nodes(document)) {
    const offset = nodeStart(node)
    if (isMap(node) && offset !== undefined && text.startsWith('{{', offset)) return offset
  }
  return undefined
}

/** The template at `offset`, up to its `}}` on the same line. */
function templateText(text: string, offset: number): string {
  const lineEnd = text.indexOf('\n', offset)
  const line = text.slice(offset, lineEnd === -1 ? undefined : lineEnd)
  const close = line.indexOf('}}')
  return close === -1 ? line.trimEnd() : line.slice(0, close + 2)
}

/** The duplicate key written at `offset`: its name, the mapping's path, its first occurrence. */
function findDuplicate(
  document: Document.Parsed,
  offset: number,
): { key: string; path: (string | number)[]; first: number } | undefined {
  for (const [node, path] of nodes(document)) {
    if (!isMap(node)) continue
    const pairs = node.items as PairLike[]
    const index = pairs.findIndex((pair) => nodeStart(pair.key) === offset)
    if (index === -1) continue
    const key = pairs[index]!.key
    if (!isScalar(key)) return undefined
    const earlier = pairs
      .slice(0, index)
      .find((pair) => isScalar(pair.key) && pair.key.value === key.value)
    return { key: String(key.value), path, first: nodeStart(earlier?.key) ?? offset }
  }
  return undefined
}

/** A document parsed again from its own text, for `locate` on objects whose tree was dropped. */
function reparse(text: string): Document.Parsed {
  const composer = new Composer(COMPOSER_OPTIONS)
  const documents = [...composer.compose(new Parser().parse(text), true, text.length)]
  return documents[0]!
}

function firstLine(message: string): string {
  return message.split('\n', 1)[0]!.trim()
}

/** Offset of the first collection nested deeper than MAX_NESTING_DEPTH, walked iteratively. */
function firstTooDeep(document: CST.Document): number | undefined {
  const stack: [CST.Token | null | undefined, number][] = [[document.value, 0]]
  while (stack.length > 0) {
    const [token, depth] = stack.pop()!
    if (token === undefined || token === null) continue
    if (
      token.type !== 'block-map' &&
      token.type !== 'block-seq' &&
      token.type !== 'flow-collection'
    )
      continue
    if (depth >= MAX_NESTING_DEPTH) return token.offset
    for (const item of token.items) {
      if ('key' in item) stack.push([item.key, depth + 1])
      stack.push([item.value, depth + 1])
    }
  }
  return undefined
}

const MAX_MERGE_DEPTH = 8

/** Offset where `path` is written in `document` (or where its deepest existing prefix is). */
function offsetOf(document: Document.Parsed, path: Path): number {
  let node: unknown = document.contents
  let offset = nodeStart(node) ?? 0
  for (const key of path) {
    node = deref(document, node)
    if (isMap(node)) {
      const pair = findPair(document, node, String(key), 0)
      if (pair === undefined) break
      offset = nodeStart(pair.key) ?? nodeStart(pair.value) ?? offset
      node = pair.value
    } else if (isSeq(node) && typeof key === 'number') {
      const item: unknown = node.items[key]
      if (item === undefined) break
      offset = nodeStart(deref(document, item)) ?? offset
      node = item
    } else {
      break
    }
  }
  return offset
}

function nodeStart(node: unknown): number | undefined {
  return isNode(node) && node.range !== undefined && node.range !== null ? node.range[0] : undefined
}

/** The node an alias stands for (anchors are set on non-alias nodes, so one step suffices). */
function deref(document: Document.Parsed, node: unknown): unknown {
  return isAlias(node) ? node.resolve(document) : node
}

interface PairLike {
  key: unknown
  value: unknown
}

/** The entry for `key` in a mapping, looking through `<<` merge keys as Kubernetes' YAML does. */
function findPair(
  document: Document.Parsed,
  map: YAMLMap,
  key: string,
  depth: number,
): PairLike | undefined {
  const merges: unknown[] = []
  for (const pair of map.items as PairLike[]) {
    if (isScalar(pair.key)) {
      const value = pair.key.value
      if (typeof value === 'symbol' && value.description === '<<') merges.push(pair.value)
      else if (String(value) === key) return pair
    }
  }
  if (depth >= MAX_MERGE_DEPTH) return undefined
  for (const merge of merges) {
    const source = deref(document, merge)
    const candidates = isSeq(source) ? source.items.map((item) => deref(document, item)) : [source]
    for (const candidate of candidates) {
      if (!isMap(candidate)) continue
      const found = findPair(document, candidate, key, depth + 1)
      if (found !== undefined) return found
    }
  }
  return undefined
}

/** Decodes bytes as UTF-8 text, rejecting what is clearly not a manifest. */
export function decodeText(name: string, bytes: Uint8Array): string {
  if (bytes.length > MAX_INPUT_BYTES) {
    throw new InputError(name, `larger than ${MAX_INPUT_BYTES / 1024 / 1024} MiB; not read`)
  }
  const nul = bytes.indexOf(0)
  if (nul !== -1) {
    throw new InputError(name, `binary file (NUL byte at offset ${nul}); expected YAML or JSON`)
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch (cause) {
    throw new InputError(name, 'not UTF-8 text; expected YAML or JSON', undefined, { cause })
  }
}

/** Reads stdin to the end, up to MAX_INPUT_BYTES. */
export async function readStdin(stream: AsyncIterable<Uint8Array | string>): Promise<Source> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of stream) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk)
    size += buffer.length
    if (size > MAX_INPUT_BYTES) {
      throw new InputError(STDIN_NAME, `larger than ${MAX_INPUT_BYTES / 1024 / 1024} MiB; not read`)
    }
    chunks.push(buffer)
  }
  return { name: STDIN_NAME, text: decodeText(STDIN_NAME, Buffer.concat(chunks)) }
}

/**
 * Reads the named files, and every manifest file (MANIFEST_EXTENSIONS) under the named
 * directories, recursively and in name order, skipping hidden directories and
 * node_modules. `-` is stdin, read once. Files are read with the synchronous calls: for a
 * few thousand small files, node:fs/promises costs several times as much (its thread-pool
 * round trips), and nothing else runs meanwhile in a `lameduck check`.
 */
export async function readSources(
  paths: readonly string[],
  stdin: AsyncIterable<Uint8Array | string>,
  errors?: InputError[],
): Promise<Source[]> {
  const sources: Source[] = []
  const seen = new Set<string>()
  let stdinRead = false
  // With `errors`, an input that cannot be read is recorded there and the rest still read.
  const attempt = async (read: () => Promise<void>) => {
    if (errors === undefined) return read()
    try {
      await read()
    } catch (error) {
      if (!(error instanceof InputError)) throw error
      errors.push(error)
    }
  }
  for (const path of paths) {
    if (path === '-') {
      if (!stdinRead) await attempt(async () => void sources.push(await readStdin(stdin)))
      stdinRead = true
      continue
    }
    await attempt(async () => {
      const info = fsCall(path, () => statSync(path))
      if (info.isDirectory()) {
        for (const file of listManifests(path, seen)) {
          await attempt(async () => void sources.push(readSource(file)))
        }
      } else {
        const real = realpathSync(path)
        if (seen.has(real)) return
        seen.add(real)
        sources.push(readSource(path))
      }
    })
  }
  return sources
}

function readSource(path: string): Source {
  const info: Stats = statSync(path)
  if (info.size > MAX_INPUT_BYTES) {
    throw new InputError(path, `larger than ${MAX_INPUT_BYTES / 1024 / 1024} MiB; not read`)
  }
  const bytes = fsCall(path, () => readFileSync(path))
  return { name: path, text: decodeText(path, bytes) }
}

/**
 * The manifest files below `dir` as `lameduck check DIR` reads them: sorted by name, hidden
 * folders and node_modules skipped, symbolic links followed once.
 */
export function listManifests(dir: string, seen = new Set<string>()): string[] {
  const real = realpathSync(dir)
  if (seen.has(real)) return []
  seen.add(real)
  const entries: Dirent[] = fsCall(dir, () => readdirSync(dir, { withFileTypes: true }))
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const files: string[] = []
  for (const entry of entries) {
    const path = join(dir, entry.name)
    let isDirectory = entry.isDirectory()
    let isFile = entry.isFile()
    if (entry.isSymbolicLink()) {
      let target: Stats | undefined
      try {
        target = statSync(path)
      } catch {
        target = undefined
      }
      isDirectory = target?.isDirectory() ?? false
      isFile = target?.isFile() ?? false
    }
    if (isDirectory) {
      if (entry.name.startsWith('.') || entry.name === 'node_modules') continue
      files.push(...listManifests(path, seen))
    } else if (isFile && MANIFEST_EXTENSIONS.includes(extname(entry.name).toLowerCase())) {
      const realFile = realpathSync(path)
      if (seen.has(realFile)) continue
      seen.add(realFile)
      files.push(path)
    }
  }
  return files
}

/** `call()`, with a file system error turned into an InputError naming `path`. */
function fsCall<T>(path: string, call: () => T): T {
  try {
    return call()
  } catch (cause) {
    throw new InputError(path, describeFsError(cause as NodeJS.ErrnoException), undefined, {
      cause,
    })
  }
}

function describeFsError(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case 'ENOENT':
      return 'no such file or directory'
    case 'EACCES':
    case 'EPERM':
      return 'permission denied'
    case 'EISDIR':
      return 'is a directory'
    default:
      return error.code === undefined ? error.message : `cannot read (${error.code})`
  }
}
