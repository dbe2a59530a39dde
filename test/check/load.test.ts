import assert from 'node:assert/strict'
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { after, before, describe, test } from 'node:test'
import {
  check,
  InputError,
  MAX_ALIAS_COUNT,
  MAX_NESTING_DEPTH,
  parseSource,
  readSources,
  STDIN_NAME,
} from '../../src/check/index.js'
import { fromRoot } from '../helpers.js'

const noStdin = Readable.from([])

function inputError(fn: () => unknown): InputError {
  try {
    fn()
  } catch (error) {
    assert.ok(error instanceof InputError, `expected an InputError, got ${String(error)}`)
    return error
  }
  assert.fail('expected an InputError')
}

describe('parsing', () => {
  test('positions point at the key of a field, 1-based', () => {
    const [object] = parseSource({
      name: 'p.yaml',
      text: 'apiVersion: v1\nkind: Pod\nspec:\n  containers:\n    - name: a\n      image: x\n',
    })
    assert.deepEqual(object!.locate(['spec', 'containers', 0, 'image']), { line: 6, column: 7 })
    assert.deepEqual(object!.locate(['spec', 'containers', 0]), { line: 5, column: 7 })
    // A missing field points at the nearest enclosing one that exists.
    assert.deepEqual(object!.locate(['spec', 'containers', 0, 'lifecycle', 'preStop']), {
      line: 5,
      column: 7,
    })
    assert.deepEqual(object!.locate(['spec', 'terminationGracePeriodSeconds']), {
      line: 3,
      column: 1,
    })
  })

  test('multi-document input: every document, each with its own positions', () => {
    const objects = parseSource({
      name: 'm.yaml',
      text: '---\nkind: Service\nmetadata: {name: a}\n---\n# nothing here\n---\nkind: Service\nmetadata: {name: b}\n',
    })
    assert.deepEqual(
      objects.map((o) => [o.document, o.value['metadata'], o.locate(['metadata', 'name'])]),
      [
        [0, { name: 'a' }, { line: 3, column: 12 }],
        [2, { name: 'b' }, { line: 8, column: 12 }],
      ],
    )
  })

  test('kind: List yields its items with positions inside items[]', () => {
    const objects = parseSource({
      name: 'l.yaml',
      text: [
        'apiVersion: v1',
        'kind: List',
        'items:',
        '  - apiVersion: v1',
        '    kind: Service',
        '    metadata: {name: a}',
        '  - just a string',
        '  - apiVersion: apps/v1',
        '    kind: Deployment',
        '    metadata: {name: b}',
        '',
      ].join('\n'),
    })
    assert.deepEqual(
      objects.map((o) => [o.base, o.value['kind']]),
      [
        [['items', 0], 'Service'],
        [['items', 2], 'Deployment'],
      ],
    )
    assert.deepEqual(objects[1]!.locate(['metadata', 'name']), { line: 10, column: 16 })
  })

  test('objects whose syntax tree is not retained still locate their fields', () => {
    const text =
      'kind: ConfigMap\nmetadata: {name: a}\n---\n\n# gap\nkind: ConfigMap\ndata:\n  key: v\n'
    const retained = parseSource({ name: 'c.yaml', text })
    const dropped = parseSource({ name: 'c.yaml', text }, { retain: () => false })
    for (const objects of [retained, dropped]) {
      assert.deepEqual(objects[0]!.locate(['metadata', 'name']), { line: 2, column: 12 })
      assert.deepEqual(objects[1]!.locate(['data', 'key']), { line: 8, column: 3 })
      assert.deepEqual(objects[1]!.locate([]), { line: 6, column: 1 })
    }
  })

  test('JSON is read as YAML, with positions', () => {
    const [object] = parseSource({
      name: 'd.json',
      text: '{\n  "apiVersion": "v1",\n  "kind": "Pod",\n  "spec": {"containers": []}\n}\n',
    })
    assert.equal(object!.value['kind'], 'Pod')
    assert.deepEqual(object!.locate(['spec', 'containers']), { line: 4, column: 12 })
  })

  test('merge keys are followed, to the value and to its position', () => {
    const [object] = parseSource({
      name: 'merge.yaml',
      text: 'kind: Pod\nx: &probe {periodSeconds: 5}\nspec:\n  <<: *probe\n  own: 1\n',
    })
    assert.equal((object!.value['spec'] as Record<string, unknown>)['periodSeconds'], 5)
    assert.deepEqual(object!.locate(['spec', 'periodSeconds']), { line: 2, column: 12 })
    assert.deepEqual(object!.locate(['spec', 'own']), { line: 5, column: 3 })
  })

  test('an empty file, comments only, or a bare scalar hold no objects (no error)', () => {
    for (const text of ['', '\n\n', '# only a comment\n---\n---\n', 'hello\n']) {
      assert.deepEqual(parseSource({ name: 'e.yaml', text }), [])
    }
  })
})

describe('bad input', () => {
  test('a YAML syntax error names the file, line and column', () => {
    const error = inputError(() =>
      parseSource({
        name: 'bad.yaml',
        text: 'apiVersion: v1\nkind: Service\nmetadata:\n  name: x\n bad: indent\n',
      }),
    )
    assert.match(error.message, /^bad\.yaml:5:\d+: YAML syntax error: /)
    assert.equal(error.location?.line, 5)
    assert.doesNotMatch(error.message, /\n/)
  })

  test('an unrendered Helm template gets a hint', () => {
    const error = inputError(() =>
      parseSource({
        name: 'deployment.yaml',
        text: 'kind: Pod\nspec:\n  {{- toYaml .Values.spec | nindent 2 }}\n',
      }),
    )
    assert.match(
      error.message,
      /^deployment\.yaml:\d+:\d+: YAML syntax error: .*\(an unrendered template\? pipe `helm template` output in\)$/,
    )
  })

  test('an unclosed flow mapping is a syntax error too', () => {
    assert.match(
      inputError(() => parseSource({ name: 'u.yaml', text: 'kind: Pod\nspec: {a: 1\n' })).message,
      /^u\.yaml:\d+:\d+: YAML syntax error/,
    )
  })

  test('a duplicate key names itself, its mapping and its first line', () => {
    assert.equal(
      inputError(() => parseSource({ name: 'k.yaml', text: 'kind: Pod\nkind: Service\n' })).message,
      `k.yaml:2:1: duplicate key "kind" in the top level (first at line 1): kubectl's strict field validation (its default) rejects the object; it is not checked`,
    )
  })

  test('with `problems`, a document that cannot be read is recorded and the others are read', () => {
    const text = [
      'kind: ConfigMap',
      'data:',
      '  a: "1"',
      '  b: "2"',
      '  a: "3"',
      '  b: "4"',
      '---',
      'kind: Service',
      '---',
      'kind: Pod',
      'spec: {a: 1',
      '---',
      'kind: Deployment',
      'spec:',
      '  containers:',
      '    - env:',
      '        - {name: A, value: "1"}',
      '      env: []',
    ].join('\n')
    const problems: InputError[] = []
    const objects = parseSource({ name: 'm.yaml', text }, { problems })
    assert.deepEqual(
      objects.map((o) => o.value['kind']),
      ['Service'],
    )
    assert.deepEqual(
      problems.map((p) => [p.location?.line, p.message.split(':').slice(3, 4)[0]?.trim()]),
      [
        [5, 'duplicate key "a" in data (first at line 3)'],
        [6, 'duplicate key "b" in data (first at line 4)'],
        // Where the flow mapping should have closed.
        [12, 'YAML syntax error'],
        [18, 'duplicate key "env" in spec.containers[0] (first at line 16)'],
      ],
    )
  })

  test('an unrendered Helm template that parses as YAML is named, not read as fields', () => {
    const text = [
      'kind: Deployment',
      'spec:',
      '  replicas: {{ .Values.replicas }}',
      '  template:',
      '    spec:',
      '      terminationGracePeriodSeconds: {{ .Values.grace | default 30 }}',
      '---',
      'kind: Service',
    ].join('\n')
    const problems: InputError[] = []
    const objects = parseSource({ name: 't.yaml', text }, { problems })
    assert.deepEqual(
      objects.map((o) => o.value['kind']),
      ['Service'],
    )
    assert.deepEqual(
      problems.map((p) => p.message),
      [
        "t.yaml:3:13: unrendered template {{ .Values.replicas }}: this is a chart's source, not a manifest; pipe `helm template` output in",
      ],
    )
  })

  test('{{ }} inside strings is data (alert templates), not an unrendered template', () => {
    const text = [
      'kind: ConfigMap',
      'data:',
      "  rule: 'summary: {{ $labels.instance }} is down'",
      '  other: "{{ .Values.x }}"',
    ].join('\n')
    assert.equal(parseSource({ name: 's.yaml', text }).length, 1)
  })

  test('an alias bomb is refused before it expands', () => {
    const lines = [
      'kind: ConfigMap',
      'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    ]
    for (const level of 'bcdefghij') {
      const previous = String.fromCharCode(level.charCodeAt(0) - 1)
      lines.push(`${level}: &${level} [${Array(9).fill(`*${previous}`).join(',')}]`)
    }
    const error = inputError(() => parseSource({ name: 'bomb.yaml', text: lines.join('\n') }))
    assert.match(
      error.message,
      new RegExp(`^bomb\\.yaml:1:1: YAML aliases expand more than ${MAX_ALIAS_COUNT} times`),
    )
  })

  test('a few anchors used normally are fine', () => {
    const text = [
      'apiVersion: v1',
      'kind: Pod',
      'metadata: {name: p, labels: &labels {app: p}}',
      'spec:',
      '  containers:',
      '    - name: a',
      '      image: x',
      '      env: &env [{name: A, value: "1"}]',
      '    - name: b',
      '      image: x',
      '      env: *env',
      'x: *labels',
    ].join('\n')
    assert.equal(parseSource({ name: 'ok.yaml', text }).length, 1)
  })

  test('nesting deeper than the limit is refused, flow or block, without a stack overflow', () => {
    const deep = 100_000
    const flow = `kind: Pod\nspec: ${'['.repeat(deep)}${']'.repeat(deep)}\n`
    assert.match(
      inputError(() => parseSource({ name: 'deep.yaml', text: flow })).message,
      new RegExp(`^deep\\.yaml:2:\\d+: YAML nested more than ${MAX_NESTING_DEPTH} levels deep`),
    )
    const block = `kind: Pod\nspec:\n${'- '.repeat(deep)}x\n`
    assert.match(
      inputError(() => parseSource({ name: 'deep2.yaml', text: block })).message,
      /^deep2\.yaml:3:\d+: YAML nested more than/,
    )
    const fine = `kind: Pod\nspec: ${'['.repeat(MAX_NESTING_DEPTH - 2)}${']'.repeat(MAX_NESTING_DEPTH - 2)}\n`
    assert.equal(parseSource({ name: 'fine.yaml', text: fine }).length, 1)
  })
})

describe('reading files, directories and stdin', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'lameduck-check-'))
    const service = 'apiVersion: v1\nkind: Service\nmetadata: {name: NAME}\n'
    await mkdir(join(dir, 'tree', 'nested', 'deeper'), { recursive: true })
    await mkdir(join(dir, 'tree', '.git'), { recursive: true })
    await mkdir(join(dir, 'tree', 'node_modules', 'x'), { recursive: true })
    await writeFile(join(dir, 'tree', 'b.yaml'), service.replace('NAME', 'b'))
    await writeFile(join(dir, 'tree', 'a.yml'), service.replace('NAME', 'a'))
    await writeFile(join(dir, 'tree', 'nested', 'c.json'), JSON.stringify({ kind: 'Service' }))
    await writeFile(join(dir, 'tree', 'nested', 'deeper', 'd.YAML'), service)
    await writeFile(join(dir, 'tree', 'nested', 'notes.md'), '# not a manifest: [')
    await writeFile(join(dir, 'tree', '.git', 'e.yaml'), service)
    await writeFile(join(dir, 'tree', 'node_modules', 'x', 'f.yaml'), service)
    await symlink(join(dir, 'tree'), join(dir, 'tree', 'nested', 'loop'))
    await writeFile(join(dir, 'binary.yaml'), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 1, 2, 3]))
    await writeFile(join(dir, 'latin1.yaml'), Buffer.from('kind: Pod # caf\xe9\n', 'latin1'))
    await writeFile(join(dir, 'empty.yaml'), '')
  })
  after(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  test('directories: .yaml, .yml, .json recursively, in name order; hidden dirs, node_modules and symlink loops skipped', async () => {
    const sources = await readSources([join(dir, 'tree')], noStdin)
    assert.deepEqual(
      sources.map((s) => s.name.slice(dir.length + 1)),
      ['tree/a.yml', 'tree/b.yaml', 'tree/nested/c.json', 'tree/nested/deeper/d.YAML'],
    )
  })

  test('a file named twice (or inside a named directory) is read once', async () => {
    const file = join(dir, 'tree', 'a.yml')
    const sources = await readSources([file, join(dir, 'tree'), file], noStdin)
    assert.equal(sources.filter((s) => s.name.endsWith('a.yml')).length, 1)
  })

  test('a missing path is an InputError naming it', async () => {
    const missing = join(dir, 'nope.yaml')
    await assert.rejects(readSources([missing], noStdin), (error: unknown) => {
      assert.ok(error instanceof InputError)
      assert.equal(error.message, `${missing}: no such file or directory`)
      return true
    })
  })

  test('a binary file and a non-UTF-8 file are refused with the reason', async () => {
    await assert.rejects(
      readSources([join(dir, 'binary.yaml')], noStdin),
      /binary\.yaml: binary file \(NUL byte at offset 4\); expected YAML or JSON/,
    )
    await assert.rejects(
      readSources([join(dir, 'latin1.yaml')], noStdin),
      /latin1\.yaml: not UTF-8 text/,
    )
  })

  test('an empty file is read and holds nothing', async () => {
    const sources = await readSources([join(dir, 'empty.yaml')], noStdin)
    assert.equal(check(sources).objects, 0)
  })

  test("'-' reads stdin once, multi-document", async () => {
    const stdin = Readable.from([Buffer.from('kind: Service\n---\nkind: '), Buffer.from('Pod\n')])
    const sources = await readSources(['-', '-'], stdin)
    assert.equal(sources.length, 1)
    assert.equal(sources[0]!.name, STDIN_NAME)
    assert.equal(parseSource(sources[0]!).length, 2)
  })

  test('a 10 MB manifest is checked completely', async () => {
    const file = join(dir, 'big.yaml')
    const template = await import('node:fs/promises').then((fs) =>
      fs.readFile(fromRoot('test/fixtures/check/rules/grace-period-too-short/bad.yaml'), 'utf8'),
    )
    const chunks: string[] = []
    let size = 0
    let count = 0
    while (size < 10 * 1024 * 1024) {
      const chunk = `${template.replaceAll('web', `web-${count}`)}\n---\n`
      chunks.push(chunk)
      size += chunk.length
      count++
    }
    await writeFile(file, chunks.join(''))
    const result = check(await readSources([file], noStdin), { ignore: ['no-spread'] })
    // Each copy is a Deployment and a Service; each Deployment misses its grace period.
    assert.equal(result.objects, 2 * count)
    assert.equal(result.findings.length, count)
    assert.ok(result.findings.every((f) => f.rule === 'grace-period-too-short'))
    const last = result.findings.at(-1)!
    assert.equal(last.object, `Deployment/web-${count - 1}`)
    assert.ok(last.line > 200_000, `line ${last.line}`)
  })
})
