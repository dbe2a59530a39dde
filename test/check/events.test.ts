import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { describe, test } from 'node:test'
import { readPlain, resolvePlain } from '../../src/check/events.js'
import {
  listManifests,
  type ManifestObject,
  type Path,
  parseSource,
  readWithYaml,
  withoutSchemas,
} from '../../src/check/load.js'
import { REPORTED_KINDS } from '../../src/check/model.js'
import { fromRoot } from '../helpers.js'

// The fast reader (js-yaml's events) must give exactly what the `yaml` library gives: the same
// objects, the same values, the same position for every field. These tests hold the two to
// that on every manifest in the repository, and send what is not plain to the `yaml` library.

/**
 * Every path in a value down to `depth` levels (each key and item), and one missing key or
 * item under each collection.
 */
function* paths(value: unknown, depth: number, path: Path = []): Generator<Path> {
  yield path
  if (path.length >= depth) return
  if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) yield* paths(item, depth, [...path, i])
    yield [...path, value.length]
  } else if (typeof value === 'object' && value !== null) {
    for (const [key, item] of Object.entries(value)) yield* paths(item, depth, [...path, key])
    yield [...path, 'no-such-field']
  }
}

/** Whether parseSource reads `text` on its fast path (after cutting CRD schemas). */
function plainFile(text: string): boolean {
  return readPlain(withoutSchemas(text).text) !== undefined
}

/** Asserts that both readers give the same objects and positions; the number of fields compared. */
function assertSameReading(name: string, text: string): number {
  const fast = parseSource({ name, text })
  const slow = readWithYaml({ name, text }, {})
  const shape = (objects: ManifestObject[], read: (value: Record<string, unknown>) => unknown) =>
    objects.map((o) => ({ file: o.file, document: o.document, base: o.base, value: read(o.value) }))
  // A CustomResourceDefinition's spec and status (its schemas) are not read by the fast path
  // (load.ts, withoutSchemas): their keys stay, with no value.
  const schemaless = (value: Record<string, unknown>) =>
    value['kind'] !== 'CustomResourceDefinition'
      ? value
      : Object.fromEntries(
          Object.entries(value).map(([k, v]) => [k, k === 'spec' || k === 'status' ? null : v]),
        )
  assert.deepEqual(
    shape(fast, (v) => v),
    shape(slow, plainFile(text) ? schemaless : (v) => v),
    `${name}: objects`,
  )
  let compared = 0
  for (const [i, object] of fast.entries()) {
    // Every field of the kinds findings point into; the top of the others (CRD schemas are
    // large, and read by the same code).
    const depth = REPORTED_KINDS.has(String(object.value['kind'])) ? Number.POSITIVE_INFINITY : 3
    for (const path of paths(object.value, depth)) {
      assert.deepEqual(
        object.locate(path),
        slow[i]!.locate(path),
        `${name}: position of ${JSON.stringify([...object.base, ...path])}`,
      )
      compared++
    }
  }
  return compared
}

describe('the event reader', () => {
  test('reads every manifest in the repository as the yaml library does: objects, values, every position', () => {
    const files = [
      ...listManifests(fromRoot('test/fixtures/real')),
      ...listManifests(fromRoot('test/fixtures/check')),
    ]
    let plain = 0
    let fields = 0
    for (const file of files) {
      const text = readFileSync(file, 'utf8')
      if (readPlain(text) !== undefined) plain++
      try {
        fields += assertSameReading(file, text)
      } catch (error) {
        // Files the yaml library rejects are rejected by parseSource too, through it.
        if (!(error instanceof Error && error.name === 'InputError')) throw error
        assert.equal(readPlain(text), undefined, `${file}: rejected by yaml but read as plain`)
      }
    }
    // The fast path is the common one: nearly all of the real manifests take it.
    assert.ok(plain / files.length > 0.95, `${plain} of ${files.length} files read as plain`)
    assert.ok(fields > 50_000, `${fields} positions compared`)
  })

  test('resolves plain scalars with the yaml core schema, quoted ones stay strings', () => {
    const text = [
      'kind: ConfigMap',
      'data:',
      '  octal: 0o17',
      '  leadingZero: 012',
      '  hex: 0x1F',
      '  exp: 1e3',
      '  float: 2.50',
      '  inf: -.inf',
      '  nan: .NaN',
      '  yes: yes',
      '  on: off',
      '  underscore: 1_000',
      '  binary: 0b101',
      '  sign: +5',
      '  tilde: ~',
      '  nullValue: Null',
      '  TRUE: TRUE',
      '  huge: 1e400',
      '  quoted: "1"',
      "  single: 'true'",
      '  ~: null key',
      '  80: port',
      '  0x51: hex key',
      '  "esc\\tkey": "tab\\there"',
      '  folded: >-',
      '    a',
      '    b',
      '  list:',
      '    - |',
      '      block item',
      '    - >-  # a comment | with bars',
      '      folded item',
      '    -',
      '    - - |',
      '        nested',
    ].join('\n')
    assert.notEqual(readPlain(text), undefined)
    assertSameReading('scalars.yaml', text)
    const [object] = parseSource({ name: 'scalars.yaml', text })
    const data = object!.value['data'] as Record<string, unknown>
    assert.equal(data['octal'], 15)
    assert.equal(data['leadingZero'], 12)
    assert.equal(data['yes'], 'yes')
    assert.equal(data['underscore'], '1_000')
    assert.equal(data['huge'], Number.POSITIVE_INFINITY)
    assert.equal(data[''], 'null key')
    assert.equal(data['81'], 'hex key')
    assert.equal(resolvePlain('0x1F'), 31)
    assert.deepEqual(object!.locate(['data', 'list', 1]), { line: 31, column: 7 })
  })

  test('JSON, CRLF line ends, comments and empty documents read alike', () => {
    assertSameReading(
      'd.json',
      '{\n  "apiVersion": "v1",\n  "kind": "Pod",\n  "metadata": {"name": "a\\u00e9\\/b"},\n  "spec": {"containers": [{"name": "x", "args": ["--a", "b"]}]}\n}\n',
    )
    assertSameReading(
      'crlf.yaml',
      '# head\r\n---\r\nkind: Service\r\nmetadata:\r\n  name: a # trailing\r\n---\r\n---\r\nkind: Pod\r\nspec:\r\n  containers:\r\n  - name: x\r\n',
    )
    // Line breaks inside block, plain and quoted scalars become \n, as in the yaml library.
    assertSameReading(
      'crlf-scalars.yaml',
      'kind: ConfigMap\r\ndata:\r\n  a: |\r\n    line1\r\n    line2\r\n  b: >\r\n    f1\r\n    f2\r\n\r\n    f3\r\n  c: plain\r\n    more\r\n  d: "dq\r\n    x"\r\n',
    )
  })

  test('unusual syntax reads alike, or fails with the same message', () => {
    const cases = {
      tabIndent: 'kind: Pod\nspec:\n\tfoo: 1\n',
      flowUnderIndented: 'kind: Pod\nspec:\n  args: [a,\n b]\n',
      longKey: `kind: Pod\n${'k'.repeat(1100)}: 1\n`,
      longFlowKey: `kind: Pod\nspec: {${'k'.repeat(1100)}: 1}\n`,
      multilineKey: 'kind: Pod\n"a\n b": 1\n',
      badEscape: 'kind: Pod\nspec: "\\q"\n',
      badIndent: 'kind: Pod\nspec:\n    a: 1\n  b: 2\n',
      reservedIndicator: 'kind: Pod\nspec: @a\n',
      undeclaredTagHandle: 'kind: Pod\nspec: !e!foo a\n',
      controlCharacter: 'kind: Pod\nspec: a\u0007b\n',
      colonWithoutSpace: 'kind: Pod\nspec:{a: 1}\n',
      hashWithoutSpace: 'kind: Pod\nspec: a#b\n',
      emptyKey: 'kind: Pod\n: x\n',
      explicitKey: 'kind: Pod\n? a\n: b\n',
      documentEnd: 'kind: Pod\n...\nkind: Service\n',
      plainMultiline: 'kind: Pod\nspec: a\n  b\n  c\n',
      tabInPlain: 'kind: Pod\nspec: a\tb\n',
      flowTrailingComma: 'kind: Pod\nspec: [a, b, ]\n',
      flowKeyWithoutValue: 'kind: Pod\nspec: {a, b: 1}\n',
      doubleQuotedFolding: 'kind: Pod\nspec: "a\n\n b"\n',
      nextLine: 'kind: Pod\nspec: "a\u0085b"\n',
      blockIndentIndicator: 'kind: Pod\nspec: |2\n   a\n',
      sequenceAtMapIndent: 'kind: Pod\nspec:\n- a\n- b\n',
    }
    const outcome = (read: () => ManifestObject[]) => {
      try {
        return read().map((o) => o.value)
      } catch (error) {
        return (error as Error).message
      }
    }
    for (const [what, text] of Object.entries(cases)) {
      const name = `${what}.yaml`
      const fast = outcome(() => parseSource({ name, text }))
      assert.deepEqual(
        fast,
        outcome(() => readWithYaml({ name, text }, {})),
        what,
      )
      if (typeof fast !== 'string') assertSameReading(name, text)
    }
  })

  test('what is not plain goes to the yaml library', () => {
    const notPlain = {
      anchor: 'kind: Pod\nmetadata: &m {name: a}\n',
      alias: 'kind: Pod\na: &a 1\nb: *a\n',
      merge: 'kind: Pod\nspec:\n  <<: {a: 1}\n',
      tag: 'kind: Pod\nspec: !!map {a: 1}\n',
      customTag: 'kind: Pod\nspec: !Ref x\n',
      directive: '%YAML 1.1\n---\nkind: Pod\non: yes\n',
      template: 'kind: Pod\nspec:\n  replicas: {{ .Values.replicas }}\n',
      loneCarriageReturn: 'kind: Pod\rspec: {}\n',
      duplicate: 'kind: Pod\nkind: Service\n',
      syntax: 'kind: Pod\nspec: {a: 1\n',
      deep: `kind: Pod\nspec: ${'['.repeat(150)}${']'.repeat(150)}\n`,
      longKey: `kind: Pod\n${'k'.repeat(1100)}: 1\n`,
    }
    for (const [what, text] of Object.entries(notPlain)) {
      assert.equal(readPlain(text), undefined, what)
    }
    // ...and so is read exactly as before, merge keys and all.
    const [object] = parseSource({ name: 'm.yaml', text: notPlain.merge })
    assert.deepEqual(object!.value['spec'], { a: 1 })
  })

  test("a CustomResourceDefinition's schemas are cut before parsing, and positions after them stay right", () => {
    const crd = [
      'apiVersion: apiextensions.k8s.io/v1',
      'kind: CustomResourceDefinition',
      'metadata:',
      '  name: widgets.example.com',
      'spec:',
      '  group: example.com',
      '# a comment in column 0 inside the block',
      '  versions:',
      '    - name: v1',
      '      schema: {openAPIV3Schema: {type: object}}',
      'status:',
      '  acceptedNames: {kind: Widget}',
      '',
    ].join('\n')
    const deployment =
      'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n'
    const text = `${crd}---\n${deployment}`
    const cut = withoutSchemas(text)
    assert.ok(!cut.text.includes('openAPIV3Schema') && !cut.text.includes('acceptedNames'))
    const objects = parseSource({ name: 'crd.yaml', text })
    assert.deepEqual(objects[0]!.value, {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'widgets.example.com' },
      spec: null,
      status: null,
    })
    // Line 19 of the whole file: the cut lines are counted.
    assert.deepEqual(objects[1]!.locate(['spec', 'replicas']), { line: 19, column: 3 })
    assert.deepEqual(
      objects[1]!.locate(['spec', 'replicas']),
      readWithYaml({ name: 'crd.yaml', text }, {})[1]!.locate(['spec', 'replicas']),
    )
    // A schema holding `{{` is kept, so an unrendered template is still reported as one.
    const template = crd.replace('group: example.com', 'group: {{ .Values.group }}')
    assert.ok(withoutSchemas(template).text.includes('  group: {{ .Values.group }}\n'))
    assert.throws(() => parseSource({ name: 't.yaml', text: template }), /unrendered template/)
  })
})
