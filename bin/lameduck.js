#!/usr/bin/env node
// The CLI as bundled by scripts/bundle.mjs (its libraries inside, so the package has no
// dependencies). `npm run build` makes it.
import { main } from '../dist/bundle/cli/main.js'

// The process exits as soon as the command is done, with its code, rather than when its
// event loop has drained: Node 24's teardown of an environment that used node:http2 can spin
// forever at 100 % CPU after the last handle closed (seen about once in ten lab runs with h2
// load). Output written to stdout and stderr is flushed first: on Linux, writes to pipes,
// files and terminals are synchronous.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(`lameduck: ${error instanceof Error ? error.message : String(error)}`)
    process.exit(2)
  },
)
