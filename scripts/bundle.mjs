#!/usr/bin/env node
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
// Bundles what the package exports into dist/bundle. Run after tsc (`npm run build`).
//
// The CLI (src/cli/main.ts and every command it loads) with its libraries (yaml), so the
// published package has no dependencies: the runtime needs none, and the tools carry theirs
// inside.
//
// The runtime (src/index.ts) into one file, dist/bundle/index.js, and the Fastify adapter
// into dist/bundle/integrations/fastify.js, which imports that file. On Node 20 the ESM
// loader reads every module through a FileHandle, an EventEmitter; importing the runtime's
// ~20 tsc-built modules made V8 allocate EventEmitter's constructor feedback during the
// import, the file handles' kind went into it beside the socket, request and response, and
// node's request and response constructors then ran with megamorphic property access on
// every request of the application (bench/RESULTS.md §10). One file keeps the import below
// that point, as a one-file application without lameduck is.
//
// The output mirrors src/ (dist/bundle/cli/main.js for src/cli/main.ts, chunks beside it),
// at the same depth as tsc's dist/src/cli/main.js, so URLs relative to import.meta.url
// (the package.json the CLI reads its version from) resolve the same in both builds.
// Commands stay separate chunks, loaded only when they run.
import { build } from 'esbuild'

const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..')
const outdir = join(root, 'dist', 'bundle')
rmSync(outdir, { recursive: true, force: true })

const result = await build({
  absWorkingDir: root,
  entryPoints: ['src/cli/main.ts'],
  outbase: 'src',
  outdir,
  chunkNames: 'cli/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  // yaml's Node entry is CommonJS and calls require('process'): an ESM bundle has no
  // `require` of its own, so the banner makes one.
  banner: {
    js: "import { createRequire as __lameduckCreateRequire } from 'node:module'; const require = __lameduckCreateRequire(import.meta.url);",
  },
  // Whitespace and syntax only: names stay, so stack traces still read.
  minifyWhitespace: true,
  minifySyntax: true,
  minifyIdentifiers: true,
  keepNames: true,
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
  // ws's optional native speed-ups: ws loads them in a try/catch and works without them.
  external: ['bufferutil', 'utf-8-validate'],
})

// The runtime: one file, nothing minified (its stack traces are the users'), no libraries.
const runtime = {
  absWorkingDir: root,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  legalComments: 'none',
  logLevel: 'warning',
}
await build({ ...runtime, entryPoints: ['src/index.ts'], outfile: join(outdir, 'index.js') })
// The Fastify adapter imports the runtime's file rather than a copy of it: one Lameduck
// class and one record of the process's instances, whichever entry the app imports first.
await build({
  ...runtime,
  entryPoints: ['src/integrations/fastify.ts'],
  outfile: join(outdir, 'integrations', 'fastify.js'),
  plugins: [
    {
      name: 'the-runtime-bundle',
      setup(plugin) {
        plugin.onResolve({ filter: /^\.\.\/lameduck\.js$/ }, () => ({
          path: '../index.js',
          external: true,
        }))
        plugin.onResolve({ filter: /^\.\.?\// }, (args) => {
          if (args.kind === 'entry-point') return undefined
          throw new Error(
            `src/integrations/fastify.ts may import only ../lameduck.js of the runtime (it is bundled apart), not ${args.path} from ${args.importer}`,
          )
        })
      },
    },
  ],
})

// The bundled libraries' licenses travel with them (their notices must stay with copies).
const packages = new Set()
for (const input of Object.keys(result.metafile.inputs)) {
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input)
  if (match) packages.add(match[1])
}
const notices = [...packages].sort().map((name) => {
  const dir = join(root, 'node_modules', name)
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))
  const file = readdirSync(dir).find((f) => /^(licen[cs]e|copying)/i.test(f))
  const text =
    file === undefined ? `License: ${pkg.license}` : readFileSync(join(dir, file), 'utf8')
  return `${name}@${pkg.version} (${pkg.license})\n\n${text.trim()}\n`
})
writeFileSync(
  join(outdir, 'THIRD_PARTY_LICENSES.txt'),
  `The CLI bundle in this directory includes the following packages.\n\n${notices.join('\n---\n\n')}`,
)
