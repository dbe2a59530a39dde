#!/usr/bin/env node
// The CLI as bundled by scripts/bundle.mjs (its libraries inside, so the package has no
// dependencies). `npm run build` makes it.
import { exitAfterOutput, main } from '../dist/bundle/cli/main.js'

// The process exits as soon as the command is done and its output is flushed, with its code,
// rather than when its event loop has drained: Node 24's teardown of an environment that used
// node:http2 can spin forever at 100 % CPU after the last handle closed (seen about once in
// ten lab runs with h2 load). Exiting before stdout is flushed would cut the output at the
// pipe's 64 KiB when the reader is slower than the writer, so exitAfterOutput waits for it.
main(process.argv.slice(2)).then(exitAfterOutput, (error) => {
  console.error(`lameduck: ${error instanceof Error ? error.message : String(error)}`)
  return exitAfterOutput(2)
})
