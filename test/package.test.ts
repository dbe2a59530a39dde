// The package as a registry would serve it: `npm pack`, install the tarball into a fresh
// app, and use it there the way a user would (import, require, TypeScript, the CLI).
// It packs the build `npm test` just made (--ignore-scripts: the prepack rebuild would
// rewrite dist/ under the tests running beside this one). Nothing here needs the network:
// the tarball has no dependencies, and TypeScript comes from this project's node_modules.
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { test } from 'node:test'
import { fromRoot } from './helpers.js'

/**
 * The tarball's size limit: it catches what should not ship. The runtime is small; the CLI
 * bundle carries yaml, the checker's rules and the lab's drivers and client helpers in
 * Python, Go and shell (as source text); docs/ and examples/k8s are most of the rest.
 * 304 kB packed on 2026-12-02.
 */
const MAX_TARBALL_BYTES = 350_000
const COMMAND_TIMEOUT_MS = 60_000

interface Run {
  code: number
  stdout: string
  stderr: string
}

/** Runs a command to its end; rejects naming it if it outlives COMMAND_TIMEOUT_MS. */
function run(command: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      command,
      args,
      {
        cwd,
        timeout: COMMAND_TIMEOUT_MS,
        env: { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false' },
        maxBuffer: 16 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error?.killed) {
          reject(
            new Error(`timed out after ${COMMAND_TIMEOUT_MS} ms: ${command} ${args.join(' ')}`),
          )
          return
        }
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1
        resolve({ code, stdout, stderr })
      },
    )
  })
}

async function ok(command: string, args: string[], cwd: string): Promise<string> {
  const result = await run(command, args, cwd)
  assert.equal(
    result.code,
    0,
    `${command} ${args.join(' ')} exited ${result.code}\n${result.stdout}\n${result.stderr}`,
  )
  return result.stdout
}

interface PackResult {
  filename: string
  size: number
  unpackedSize: number
  files: { path: string; size: number }[]
}

test('npm pack: the tarball installs alone and works for import, require, TypeScript and the CLI', async (t) => {
  const root = fromRoot('.')
  const dir = mkdtempSync(join(tmpdir(), 'lameduck-pack-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))

  // 1. The tarball.
  const packed = JSON.parse(
    await ok('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], root),
  ) as PackResult[]
  const pack = packed[0] as PackResult
  const paths = pack.files.map((f) => f.path).sort()
  t.diagnostic(
    `tarball ${pack.filename}: ${(pack.size / 1000).toFixed(1)} kB packed, ${(pack.unpackedSize / 1000).toFixed(1)} kB unpacked, ${paths.length} files`,
  )
  console.log(
    `tarball size: ${(pack.size / 1000).toFixed(1)} kB (limit ${MAX_TARBALL_BYTES / 1000} kB)`,
  )
  assert.ok(pack.size < MAX_TARBALL_BYTES, `tarball is ${pack.size} bytes`)
  for (const required of [
    'LICENSE',
    'README.md',
    'package.json',
    'bin/lameduck.js',
    'dist/bundle/index.js',
    'dist/bundle/integrations/fastify.js',
    'dist/src/index.d.ts',
    'dist/src/metrics.d.ts',
    'dist/src/integrations/fastify.d.ts',
    'dist/bundle/cli/main.js',
    'dist/bundle/THIRD_PARTY_LICENSES.txt',
    'docs/options.md',
    'docs/frameworks.md',
    'examples/k8s/deployment.yaml',
    'examples/k8s/service.yaml',
  ]) {
    assert.ok(paths.includes(required), `the tarball contains ${required}`)
  }
  const unwanted = paths.filter((p) =>
    /^(src|test|examples(?!\/k8s\/[^/]+\.yaml$)|bench|scripts)\/|^dist\/(test|examples|bench)\/|^dist\/src\/(cli|check|rollout|serve)\/|^dist\/src\/.*\.js$|\.ts$(?<!\.d\.ts$)/.test(
      p,
    ),
  )
  assert.deepEqual(unwanted, [], 'no sources, tests, unbundled tools or unbundled runtime')
  // No source maps: the runtime's bundle is the TypeScript minus its types, readable as it
  // is, and the CLI's bundle is minified. A map without its sources would only point at
  // missing files.
  assert.deepEqual(
    paths.filter((p) => p.endsWith('.map')),
    [],
    'no source maps',
  )
  for (const file of paths.filter((p) => p.endsWith('.js'))) {
    assert.doesNotMatch(
      readFileSync(join(root, file), 'utf8'),
      /sourceMappingURL/,
      `${file} points at no map`,
    )
  }

  // 2. A fresh app (CommonJS by default, as `npm init` makes it) with the tarball installed.
  const app = join(dir, 'app')
  mkdirSync(app)
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'app', version: '1.0.0', private: true }, null, 2),
  )
  await ok(
    'npm',
    ['install', '--prefer-offline', '--no-audit', '--no-fund', join(dir, pack.filename)],
    app,
  )
  const tree = JSON.parse(await ok('npm', ['ls', '--all', '--json'], app)) as {
    dependencies?: Record<string, { dependencies?: Record<string, unknown> }>
  }
  assert.deepEqual(Object.keys(tree.dependencies ?? {}), ['lameduck'])
  assert.deepEqual(
    Object.keys(tree.dependencies?.lameduck?.dependencies ?? {}),
    [],
    'lameduck installs no dependency',
  )

  // Every relative import in a shipped declaration file points at a shipped one.
  for (const declaration of paths.filter((p) => p.endsWith('.d.ts'))) {
    const text = readFileSync(join(root, declaration), 'utf8')
    for (const [, specifier] of text.matchAll(/from '(\.[^']+)\.js'/g)) {
      const target = join(dirname(declaration), `${specifier}.d.ts`)
      assert.ok(
        paths.includes(target),
        `${declaration} imports ${specifier}.js, shipped as ${target}`,
      )
    }
  }

  // 3. import and require (require(esm), Node >= 20.19).
  writeFileSync(
    join(app, 'esm.mjs'),
    `import { lameduck, LameduckError } from 'lameduck'
import { lameduckFastify } from 'lameduck/fastify'
console.log(typeof lameduck, typeof LameduckError, typeof lameduckFastify)
`,
  )
  writeFileSync(
    join(app, 'cjs.cjs'),
    `const { lameduck, LameduckError } = require('lameduck')
const { lameduckFastify } = require('lameduck/fastify')
console.log(typeof lameduck, typeof LameduckError, typeof lameduckFastify)
`,
  )
  // 4. TypeScript, module nodenext: a CommonJS .ts user and an ESM .mts user.
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        strict: true,
        noEmit: true,
        // @types/node's own checking takes seconds; the user files below prove that
        // lameduck's declarations resolve (no \`any\` sneaks in) and are precise.
        skipLibCheck: true,
        esModuleInterop: true,
        types: ['node'],
        typeRoots: [fromRoot('node_modules/@types')],
      },
      files: ['user.ts', 'user.mts'],
    }),
  )
  const user = `import http from 'node:http'
import { lameduck, LameduckError, type LameduckOptions, type ShutdownOutcome } from 'lameduck'
import { lameduckFastify, type FastifyLike } from 'lameduck/fastify'

const options: LameduckOptions = { drainDelay: 5_000, probes: { metrics: '/metrics' } }
const server = http.createServer((_req, res) => res.end('ok'))
const ld = lameduck(server, options)
ld.onShutdown('db', async () => {})
export const outcome: Promise<ShutdownOutcome> = ld.shutdown('test')
export const isError = (e: unknown): boolean => e instanceof LameduckError && e.code === 'LAMEDUCK_ERR_INVALID_OPTION'
type IsAny<T> = 0 extends 1 & T ? true : false
export const notAny: [IsAny<typeof ld>, IsAny<ShutdownOutcome>, IsAny<typeof ld.state>] = [false, false, false]
// @ts-expect-error drainDelay is a number of milliseconds
lameduck(server, { drainDelay: '10s' })
`
  writeFileSync(join(app, 'user.ts'), user)
  // 4b. The other module resolutions a user may have: node10 (TypeScript 5's `node`, which
  // ignores `exports`: `lameduck/fastify` resolves through `typesVersions`), node16 (ESM
  // files) and bundler.
  const variants: Record<string, Record<string, unknown>> = {
    node10: { module: 'commonjs', moduleResolution: 'node10', files: ['user.ts'] },
    node16: { module: 'node16', moduleResolution: 'node16', files: ['user.mts'] },
    bundler: { module: 'preserve', moduleResolution: 'bundler', files: ['user.ts', 'user.mts'] },
  }
  for (const [name, { files, ...options }] of Object.entries(variants)) {
    writeFileSync(
      join(app, `tsconfig.${name}.json`),
      JSON.stringify({ extends: './tsconfig.json', compilerOptions: options, files }),
    )
  }
  writeFileSync(
    join(app, 'user.mts'),
    `${user}export const adapt = (app: FastifyLike) => lameduckFastify(app, { exit: false })
export const adaptedNotAny: IsAny<ReturnType<typeof adapt>> = false
`,
  )

  // 5. The CLI through npx, as a user runs it.
  const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version
  writeFileSync(
    join(app, 'deployment.yaml'),
    readFileSync(join(root, 'examples/k8s/deployment.yaml'), 'utf8'),
  )
  writeFileSync(
    join(app, 'short.yaml'),
    readFileSync(join(app, 'deployment.yaml'), 'utf8').replace(
      /terminationGracePeriodSeconds: \d+/,
      'terminationGracePeriodSeconds: 10',
    ),
  )

  // Independent commands, run side by side to keep the test short.
  const npx = (...args: string[]) => run('npx', ['--no', '--', 'lameduck', ...args], app)
  const tscOn = (project: string) =>
    run(process.execPath, [fromRoot('node_modules/typescript/bin/tsc'), '-p', project], app)
  const [esm, cjs, versionRun, clean, short, help, shipped, ...helpTexts] = await Promise.all([
    ok(process.execPath, ['esm.mjs'], app),
    ok(process.execPath, ['cjs.cjs'], app),
    npx('--version'),
    npx('check', 'deployment.yaml'),
    npx('check', 'short.yaml'),
    npx('rollout', '--help'),
    npx('check', 'node_modules/lameduck/examples/k8s'),
    npx('--help'),
    npx('check', '--help'),
    npx('serve', '--help'),
    npx('serve', '--workers', '2', '--help'),
  ])
  // One compiler at a time: each loads @types/node, and several at once on a busy machine
  // outlive the command timeout.
  const tsc = await tscOn('.')
  for (const name of Object.keys(variants)) {
    const result = await tscOn(`tsconfig.${name}.json`)
    assert.equal(result.code, 0, `tsc (${name}):\n${result.stdout}${result.stderr}`)
  }
  assert.equal(shipped.code, 0, `lameduck check on the shipped manifests: ${shipped.stdout}`)

  // 6. Every file or directory of the package a help text or the README names ships in it.
  const helps = [help, ...helpTexts]
  for (const h of helps) assert.equal(h.code, 0, h.stderr)
  const ships = (named: string) =>
    paths.some((p) => p === named || p.startsWith(named.endsWith('/') ? named : `${named}/`))
  const named = (text: string) =>
    [...text.matchAll(/(?<![\w./-])(?:dist|docs|examples)\/[\w./-]*[\w/]/g)].map(([m]) => m)
  // The user's own build output, in the examples of `lameduck serve --workers`.
  const usersApp = 'dist/server.js'
  for (const h of helps) {
    for (const path of named(h.stdout)) {
      assert.ok(ships(path) || path === usersApp, `a help text names ${path}`)
    }
  }
  // The README also names files of the repository, each introduced as such (links resolve to
  // the repository on the registry's page), and the user's own build output.
  const repositoryOnly = new Set([
    'dist/examples/', // "in a clone of this repository"
    'dist/examples/server.js',
    'examples/frameworks/', // a link
    'examples/frameworks',
    'examples/Dockerfile', // a link
    'examples/naive.ts', // what `npm run demo` runs
    'examples/server.ts',
    'examples/h2',
    'examples/ws',
    'examples/python/',
    usersApp,
  ])
  for (const path of named(readFileSync(join(root, 'README.md'), 'utf8'))) {
    assert.ok(ships(path) || repositoryOnly.has(path), `the README names ${path}`)
  }
  assert.equal(esm.trim(), 'function function function', 'import')
  assert.equal(cjs.trim(), 'function function function', 'require')
  assert.equal(tsc.code, 0, `tsc (nodenext) on user.ts and user.mts:\n${tsc.stdout}${tsc.stderr}`)
  assert.equal(versionRun.stdout.trim(), version, 'npx lameduck --version')
  assert.equal(clean.code, 0, `lameduck check on the recommended Deployment: ${clean.stdout}`)
  assert.equal(short.code, 1, 'lameduck check on a grace period too short')
  assert.match(short.stdout, /grace-period-too-short/)
  assert.equal(help.code, 0, 'lameduck rollout --help')
  assert.match(help.stdout, /lameduck rollout/)
})
