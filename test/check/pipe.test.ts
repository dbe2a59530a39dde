import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { closeSync, openSync } from 'node:fs'
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { exited, fromRoot } from '../helpers.js'

// `lameduck check dir | jq`: the output must arrive whole however slowly the reader reads.
// A pipe holds 64 KiB on Linux; what does not fit waits in the writer until the reader takes
// it, so a CLI that exits as soon as the command is done cuts its output there.
const bin = fromRoot('bin/lameduck.js')
const RUN_MS = 60_000

// The slow reader: a blocking read of the first byte (it waits for the writer), then nothing
// for 300 ms, then everything to its stdout. Nothing is read ahead into a buffer, so the
// pipe is full while it waits. The pause is the scenario (a reader slower than the writer),
// not a wait for an event: a writer that exits before its output drained does so at once.
const SLOW_READER = `
const { readSync } = require('node:fs')
const first = Buffer.alloc(1)
readSync(0, first, 0, 1, null)
setTimeout(() => {
  process.stdout.write(first)
  const chunk = Buffer.alloc(1 << 16)
  for (let n; (n = readSync(0, chunk, 0, chunk.length, null)) > 0; ) {
    process.stdout.write(Buffer.from(chunk.subarray(0, n)))
  }
}, 300)`

let dir: string
let corpus: string

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lameduck-pipe-'))
  corpus = join(dir, 'manifests')
  // Two copies of the real-world fixtures: every format's output is over 64 KiB.
  for (const copy of ['a', 'b']) {
    await cp(fromRoot('test/fixtures/real'), join(corpus, copy), { recursive: true })
  }
})

after(async () => {
  await rm(dir, { recursive: true, force: true })
})

/** The output written to a regular file: writes to files are synchronous, never cut. */
async function toFile(args: string[], file: string): Promise<Buffer> {
  const fd = openSync(file, 'w')
  try {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', fd, 'ignore'] })
    await exited(child, `lameduck ${args.join(' ')} > file`, RUN_MS)
  } finally {
    closeSync(fd)
  }
  return readFile(file)
}

/**
 * `lameduck args | slow reader` in a shell: a real pipe (node's own stdio 'pipe' is a socket
 * pair, whose buffer is larger). What came out of the reader, and the CLI's exit code.
 */
async function throughSlowReader(
  args: string[],
  reader = SLOW_READER,
): Promise<{ out: Buffer; code: number | undefined; stderr: string }> {
  const script = '{ "$0" "$@"; echo "exit status $?" >&2; } | "$0" -e "$READER"'
  const child = spawn('sh', ['-c', script, process.execPath, bin, ...args], {
    env: { ...process.env, READER: reader },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const chunks: Buffer[] = []
  child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk))
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk
  })
  try {
    await exited(child, `lameduck ${args.join(' ')} | slow reader`, RUN_MS)
    const status = /exit status (\d+)/.exec(stderr)
    return { out: Buffer.concat(chunks), code: status ? Number(status[1]) : undefined, stderr }
  } finally {
    child.kill('SIGKILL')
  }
}

describe('lameduck check through a pipe', () => {
  for (const format of ['text', 'json', 'sarif']) {
    test(`--format ${format}: a slow reader gets every byte`, async () => {
      const args = ['check', '--format', format, corpus]
      const whole = await toFile(args, join(dir, `out.${format}`))
      assert.ok(whole.length > 64 * 1024, `the output (${whole.length} bytes) exceeds a pipe`)
      const piped = await throughSlowReader(args)
      assert.equal(
        piped.out.length,
        whole.length,
        `${piped.out.length} bytes through the pipe, ${whole.length} to a file`,
      )
      assert.ok(piped.out.equals(whole), 'the same bytes')
      assert.equal(piped.code, 1, 'the exit code of a check with errors')
      if (format !== 'text') JSON.parse(piped.out.toString('utf8'))
    })
  }

  test('a reader that leaves early (| head) ends the CLI quietly', async () => {
    const head = 'process.stdin.once("data", () => process.exit(0))'
    const piped = await throughSlowReader(['check', '--format', 'json', corpus], head)
    assert.equal(piped.code, 1, `the exit code of the check; stderr: ${piped.stderr}`)
    assert.doesNotMatch(piped.stderr, /EPIPE|^\s+at /m, 'no stack trace')
  })
})
