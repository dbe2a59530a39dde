// The runtime goes into production images: it must import nothing but Node built-ins, and
// never the CLI tools (whose libraries, like yaml, stay out of the application's graph).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs'
import { Agent } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { exited, fromRoot, until, within } from './helpers.js'
import { get } from './http-client.js'

/** What a built module imports: the specifiers of its static imports and re-exports, and of
 * its dynamic imports of a literal. */
function importsOf(file: string): string[] {
  return [
    ...readFileSync(file, 'utf8').matchAll(
      /^\s*(?:import|export)[^'";]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm,
    ),
  ].map((match) => (match[1] ?? match[2]) as string)
}

test('the runtime imports only node: built-ins and its own modules, never the tools', () => {
  const root = fromRoot('dist/src')
  const seen = new Set<string>()
  // Every entry point the package exports: the main one and the framework adapters.
  const queue = [join(root, 'index.js'), join(root, 'integrations', 'fastify.js')]
  const external: string[] = []
  while (queue.length > 0) {
    const file = queue.pop() as string
    if (seen.has(file)) continue
    seen.add(file)
    for (const specifier of importsOf(file)) {
      if (specifier.startsWith('.')) queue.push(join(dirname(file), specifier))
      else if (!specifier.startsWith('node:'))
        external.push(`${relative(root, file)} imports ${specifier}`)
    }
  }
  assert.deepEqual(external, [])
  const tools = [...seen]
    .map((file) => relative(root, file))
    .filter((file) => /^(cli|check|rollout|serve|supervisor)\//.test(file))
  assert.deepEqual(tools, [])
  assert.ok(seen.size >= 8, `followed ${seen.size} modules`)
})

test('package.json: exports point at built files, Node >= 20.19, no runtime dependencies', () => {
  const pkg = JSON.parse(readFileSync(fromRoot('package.json'), 'utf8'))
  assert.equal(pkg.exports['.'].default, './dist/bundle/index.js')
  assert.equal(pkg.exports['./fastify'].default, './dist/bundle/integrations/fastify.js')
  assert.equal(pkg.main, pkg.exports['.'].default)
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    const files = typeof target === 'string' ? [target] : Object.values(target as object)
    for (const file of files) assert.ok(existsSync(fromRoot(file)), `${subpath} → ${file}`)
  }
  // require(esm), which CommonJS users of this ESM package rely on, is on by default from 20.19.
  assert.equal(pkg.engines.node, '>=20.19')
  assert.equal(pkg.dependencies, undefined, 'the runtime installs nothing else')
})

test('importing lameduck and calling lameduck(server) on a node:http server loads neither node:https, node:http2 nor node:cluster', async () => {
  // Loading them creates EventEmitters of kinds a plain node:http application never creates;
  // V8 then sees too many kinds of object in EventEmitter's constructor, and node's request
  // and response constructors run with generic property access on every request
  // (bench/RESULTS.md §10). node loads node:cluster itself once a server listens, so the
  // check is made before listen().
  const code = `
    import http from 'node:http'
    // Node 22 and later load node:http2 at start-up: only what lameduck adds counts.
    const has = (name) => process.moduleLoadList.includes('NativeModule ' + name)
    const already = ['https', 'http2', 'cluster'].filter(has)
    const { lameduck } = await import(${JSON.stringify(import.meta.resolve('lameduck'))})
    const server = http.createServer((req, res) => res.end('ok'))
    lameduck(server, { drainDelay: 0, logger: false })
    const loaded = ['https', 'http2', 'cluster'].filter((name) => has(name) && !already.includes(name))
    process.stdout.write(JSON.stringify(loaded) + '\\n', () => process.exit(0))
  `
  const env = { ...process.env }
  for (const name of Object.keys(env)) if (name.startsWith('LAMEDUCK_')) delete env[name]
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let out = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk
  })
  const exit = await exited(child, 'the application to exit')
  assert.equal(exit.code, 0)
  assert.deepEqual(JSON.parse(out), [])
})

test("the package's entry is one file, and the Fastify adapter imports that file, not a copy", () => {
  // One file: on Node 20 every module the ESM loader reads costs the application per request
  // (the next test). One copy: a Lameduck made through either entry is the same class, and
  // the process's instances are counted in one place (it exits when the last one stops).
  const entry = fileURLToPath(import.meta.resolve('lameduck'))
  assert.equal(entry, fromRoot('dist/bundle/index.js'))
  const own = importsOf(entry).filter((specifier) => !specifier.startsWith('node:'))
  assert.deepEqual(own, [], 'the runtime bundle imports nothing but node: built-ins')
  assert.ok(importsOf(entry).length >= 5, `read ${importsOf(entry).length} imports`)
  const fastify = fileURLToPath(import.meta.resolve('lameduck/fastify'))
  assert.deepEqual(
    importsOf(fastify).filter((specifier) => !specifier.startsWith('node:')),
    ['../index.js'],
  )
  assert.equal(join(dirname(fastify), '../index.js'), entry)
})

test("importing lameduck and calling lameduck(server) leaves node's EventEmitter constructor no more megamorphic than a server without it", async (t) => {
  // V8 compiles a property access from the kinds of object it has seen there; more than four
  // and the access goes megamorphic: generic, slower, on every request (bench/RESULTS.md §10).
  // EventEmitter's constructor runs inside node's request and response constructors. Its
  // feedback is allocated after a few calls; on Node 20, importing ~20 modules (a FileHandle
  // each) got there before the first request, with the file handles in it. V8's %DebugPrint
  // shows the feedback; the server with lameduck must show no more megamorphic slots than
  // the same server without it (Node 22 and later read modules without FileHandles: both 0).
  const dir = mkdtempSync(join(tmpdir(), 'lameduck-feedback-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const server = join(dir, 'server.mjs')
  writeFileSync(
    server,
    `
    import http from 'node:http'
    import { EventEmitter } from 'node:events'
    const server = http.createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end('hello world')
    })
    if (process.argv[2] === 'lameduck') {
      const { lameduck } = await import(${JSON.stringify(import.meta.resolve('lameduck'))})
      lameduck(server, { drainDelay: 0, logger: false })
    } else {
      process.on('SIGTERM', () => server.close())
    }
    process.on('exit', () => { %DebugPrint(EventEmitter.init) })
    server.listen(0, '127.0.0.1', () => process.stdout.write('listening ' + server.address().port + '\\n'))
    `,
  )
  const env = { ...process.env }
  for (const name of Object.keys(env)) if (name.startsWith('LAMEDUCK_')) delete env[name]
  async function megamorphicSlots(
    mode: 'bare' | 'lameduck',
  ): Promise<{ count: number; slots: number }> {
    // Output to a file: V8 prints through C's stdio, whose buffer reaches a pipe only in
    // part when the process ends.
    const output = join(dir, `${mode}.out`)
    const fd = openSync(output, 'w')
    const child = spawn(process.execPath, ['--allow-natives-syntax', server, mode], {
      env,
      stdio: ['ignore', fd, 'inherit'],
    })
    closeSync(fd)
    const out = () => readFileSync(output, 'utf8')
    await until(`the ${mode} server to listen`, () => /listening \d+/.test(out()))
    const port = Number(/listening (\d+)/.exec(out())?.[1])
    // 2 000 requests one after another on one keep-alive connection, from this process:
    // the server's feedback sees only its own objects.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    for (let i = 0; i < 2_000; i++) {
      await within(`request ${i} to the ${mode} server`, get(port, '/', { agent }))
    }
    agent.destroy()
    child.kill('SIGTERM')
    const exit = await exited(child, `the ${mode} server to exit`)
    assert.equal(exit.code, 0, out().slice(-2_000))
    const slots = [...out().matchAll(/^\s*- slot #\d+ \S+ (\S+)/gm)].map((m) => m[1])
    return { count: slots.filter((kind) => kind === 'MEGAMORPHIC').length, slots: slots.length }
  }
  const bare = await megamorphicSlots('bare')
  if (bare.slots === 0) {
    t.skip(`this V8 (${process.versions.v8}) prints no feedback slots`)
    return
  }
  const withLameduck = await megamorphicSlots('lameduck')
  t.diagnostic(
    `megamorphic slots: bare ${bare.count}, with lameduck ${withLameduck.count} (of ${bare.slots})`,
  )
  assert.ok(withLameduck.slots > 0, 'the lameduck server printed its feedback')
  assert.ok(
    withLameduck.count <= bare.count,
    `EventEmitter's constructor: ${withLameduck.count} megamorphic slots with lameduck, ${bare.count} without`,
  )
})
