// The runtime goes into production images: it must import nothing but Node built-ins, and
// never the CLI tools (whose libraries, like yaml, stay out of the application's graph).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { exited, fromRoot } from './helpers.js'

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
    const source = readFileSync(file, 'utf8')
    for (const match of source.matchAll(
      /(?:import|export)[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g,
    )) {
      const specifier = (match[1] ?? match[2]) as string
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
  assert.equal(pkg.exports['.'].default, './dist/src/index.js')
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
    const { lameduck } = await import(${JSON.stringify(pathToFileURL(fromRoot('dist/src/index.js')).href)})
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
