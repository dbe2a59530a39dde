// A real headless browser for layout tests: Debian's `chromium`, driven over the Chrome
// DevTools protocol (a WebSocket per page). Tests skip when no chromium is installed.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WebSocket } from 'ws'
import { within } from './helpers.js'

const CANDIDATES = ['chromium', 'chromium-browser', 'google-chrome']

/** The chromium binary on PATH, or undefined (then the caller skips, saying so). */
export function findChromium(): string | undefined {
  for (const name of CANDIDATES) {
    const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' })
    if (found.status === 0 && found.stdout.trim() !== '') return found.stdout.trim()
  }
  return undefined
}

export const NO_CHROMIUM =
  'no chromium on PATH: the layout of the HTML report is not checked (apt-get install chromium)'

interface Pending {
  resolve: (value: Record<string, unknown>) => void
  reject: (error: Error) => void
}

/** One page of a headless chromium. */
export class Page {
  readonly #socket: WebSocket
  readonly #pending = new Map<number, Pending>()
  readonly #listeners = new Map<string, (() => void)[]>()
  #nextId = 1

  constructor(socket: WebSocket) {
    this.#socket = socket
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as {
        id?: number
        method?: string
        result?: Record<string, unknown>
        error?: { message: string }
      }
      if (message.id !== undefined) {
        const pending = this.#pending.get(message.id)
        this.#pending.delete(message.id)
        if (message.error !== undefined) pending?.reject(new Error(message.error.message))
        else pending?.resolve(message.result ?? {})
      } else if (message.method !== undefined) {
        for (const listener of this.#listeners.get(message.method) ?? []) listener()
        this.#listeners.delete(message.method)
      }
    })
  }

  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> {
    const id = this.#nextId++
    return within(
      `chromium ${method}`,
      new Promise((resolve, reject) => {
        this.#pending.set(id, { resolve, reject })
        this.#socket.send(JSON.stringify({ id, method, params }))
      }),
      20_000,
    )
  }

  #once(method: string): Promise<void> {
    return within(
      `chromium event ${method}`,
      new Promise((resolve) => {
        const list = this.#listeners.get(method) ?? []
        list.push(resolve)
        this.#listeners.set(method, list)
      }),
      20_000,
    )
  }

  /** Loads `url` in a window `width` × `height` CSS pixels wide. */
  async open(url: string, width: number, height: number): Promise<void> {
    await this.send('Emulation.setDeviceMetricsOverride', {
      width,
      height,
      deviceScaleFactor: 1,
      mobile: false,
    })
    const loaded = this.#once('Page.loadEventFired')
    await this.send('Page.navigate', { url })
    await loaded
  }

  /** Evaluates an expression in the page; returns its JSON value. */
  async evaluate<T>(expression: string): Promise<T> {
    const reply = (await this.send('Runtime.evaluate', {
      expression,
      returnByValue: true,
    })) as { result: { value: T }; exceptionDetails?: { text: string } }
    if (reply.exceptionDetails !== undefined) {
      throw new Error(`in the page: ${reply.exceptionDetails.text}`)
    }
    return reply.result.value
  }

  /** A PNG of the whole page. */
  async screenshot(): Promise<Buffer> {
    const reply = (await this.send('Page.captureScreenshot', {
      format: 'png',
      captureBeyondViewport: true,
    })) as { data: string }
    return Buffer.from(reply.data, 'base64')
  }
}

/** A headless chromium with one page; `close()` ends it and removes its profile. */
export class Browser {
  readonly #child: ChildProcess
  readonly #profile: string
  readonly #socket: WebSocket
  readonly page: Page

  private constructor(child: ChildProcess, profile: string, socket: WebSocket) {
    this.#child = child
    this.#profile = profile
    this.#socket = socket
    this.page = new Page(socket)
  }

  static async launch(binary: string): Promise<Browser> {
    const profile = mkdtempSync(join(tmpdir(), 'lameduck-chromium-'))
    const child = spawn(
      binary,
      [
        '--headless',
        '--disable-gpu',
        '--no-sandbox',
        '--no-first-run',
        '--hide-scrollbars=false',
        '--remote-debugging-address=127.0.0.1',
        '--remote-debugging-port=0',
        `--user-data-dir=${profile}`,
        'about:blank',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    )
    try {
      const port = await within(
        'chromium to print its DevTools port',
        new Promise<number>((resolve, reject) => {
          let stderr = ''
          child.stderr!.on('data', (chunk: Buffer) => {
            stderr += String(chunk)
            const match = /DevTools listening on ws:\/\/[^:]+:(\d+)\//.exec(stderr)
            if (match !== null) resolve(Number(match[1]))
          })
          child.once('exit', (code) => reject(new Error(`chromium exited ${code}: ${stderr}`)))
        }),
        30_000,
      )
      const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
        type: string
        webSocketDebuggerUrl: string
      }[]
      const target = targets.find((t) => t.type === 'page')
      if (target === undefined) throw new Error('chromium opened no page')
      const socket = new WebSocket(target.webSocketDebuggerUrl)
      await within(
        'the DevTools WebSocket to open',
        new Promise((resolve, reject) => {
          socket.once('open', resolve)
          socket.once('error', reject)
        }),
      )
      const browser = new Browser(child, profile, socket)
      await browser.page.send('Page.enable')
      return browser
    } catch (error) {
      child.kill('SIGKILL')
      rmSync(profile, { recursive: true, force: true })
      throw error
    }
  }

  async close(): Promise<void> {
    this.#socket.close()
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      const gone = new Promise((resolve) => this.#child.once('exit', resolve))
      this.#child.kill('SIGKILL')
      await within('chromium to exit', gone)
    }
    // Chromium's helper processes (crashpad, zygote) can still write to the profile for a
    // moment after the browser process exits: retry on ENOTEMPTY rather than fail the test.
    rmSync(this.#profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 })
  }
}
