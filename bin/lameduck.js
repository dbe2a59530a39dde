#!/usr/bin/env node
// The CLI as bundled by scripts/bundle.mjs (its libraries inside, so the package has no
// dependencies). `npm run build` makes it.
import { main } from '../dist/bundle/cli/main.js'

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (error) => {
    console.error(`lameduck: ${error instanceof Error ? error.message : String(error)}`)
    process.exitCode = 2
  },
)
