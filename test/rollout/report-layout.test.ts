// The HTML report as a reader sees it: a real report from a real lab run, rendered by a real
// headless chromium at 1280 and 800 px wide, its layout measured. Skips without chromium.
// LAMEDUCK_SCREENSHOTS=DIR also writes DIR/report-<width>.png, to look at.
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { Browser, findChromium, NO_CHROMIUM } from '../browser.js'
import { FAST, fixture, runLab, scratch } from './lab-helpers.js'

const chromium = findChromium()

interface Overflow {
  what: string
  text: string
  scrollWidth: number
  clientWidth: number
}

interface Layout {
  innerWidth: number
  scrollWidth: number
  /** Boxes whose content is wider than the box: scrolled sideways or cut. */
  overflowing: Overflow[]
  /** Height in CSS pixels of the chart's endpoints panel. */
  endpointsHeight: number
  /** Text of the failed requests table's error column. */
  errors: string[]
}

// Runs in the page. Every text-bearing box and every box that could scroll sideways is
// checked: its content must fit its width.
const MEASURE = `(() => {
  const overflowing = []
  const boxes = document.querySelectorAll('main, main *:not(svg *):not(svg)')
  for (const el of boxes) {
    if (el.clientWidth === 0) continue
    if (el.scrollWidth > el.clientWidth + 1) {
      overflowing.push({
        what: el.tagName.toLowerCase() + (el.className ? '.' + el.className : ''),
        text: (el.textContent || '').trim().slice(0, 80),
        scrollWidth: el.scrollWidth,
        clientWidth: el.clientWidth,
      })
    }
  }
  const endpoints = document.querySelector('svg .endpoints')
  const errors = [...document.querySelectorAll('table.failures tbody tr')].map(
    (row) => row.lastElementChild.textContent,
  )
  return {
    innerWidth: window.innerWidth,
    scrollWidth: document.documentElement.scrollWidth,
    overflowing,
    endpointsHeight: endpoints ? endpoints.getBoundingClientRect().height : 0,
    errors,
  }
})()`

test('the HTML report of a real run fits 1280 and 800 px wide windows, nothing cut', {
  skip: chromium === undefined ? NO_CHROMIUM : false,
}, async () => {
  const out = scratch()
  let browser: Browser | undefined
  try {
    const html = join(out.dir, 'report.html')
    // Every HTTP/1.1 client kind, against a service that is SIGKILLed while still serving its
    // kept-alive connections and refuses new ones: pods SIGKILLed, refused connections, hang
    // ups, long error messages.
    const run = await runLab(
      [
        ...FAST,
        '--replicas',
        '3',
        '--rate',
        '100',
        '--path',
        '/?delay=50',
        '--connections',
        '4',
        '--pools',
        '1',
        '--termination-grace-period',
        '3s',
        '--max-failures',
        '100000',
        '--html',
        html,
      ],
      [process.execPath, fixture('close-on-sigterm.mjs')],
      60_000,
    )
    // 0, or 3 (inconclusive) when the machine was too busy to deliver some requests: any
    // report will do.
    assert.ok(run.exit.code === 0 || run.exit.code === 3, `exit ${run.exit.code}: ${run.stderr}`)
    assert.ok(run.result!.failed > 0, 'the run has failed requests to list')
    browser = await Browser.launch(chromium!)
    const url = pathToFileURL(html).href
    for (const width of [1280, 800]) {
      await browser.page.open(url, width, 900)
      const layout: Layout = await browser.page.evaluate<Layout>(MEASURE)
      if (process.env.LAMEDUCK_SCREENSHOTS) {
        const png = join(process.env.LAMEDUCK_SCREENSHOTS, `report-${width}.png`)
        writeFileSync(png, await browser.page.screenshot())
      }
      assert.equal(layout.innerWidth, width)
      assert.ok(
        layout.scrollWidth <= layout.innerWidth,
        `${width} px: the page is ${layout.scrollWidth} px wide`,
      )
      assert.deepEqual(layout.overflowing, [], `${width} px: boxes wider than their content`)
      assert.ok(
        layout.endpointsHeight >= 90,
        `${width} px: the endpoints panel is ${layout.endpointsHeight} px tall`,
      )
      // The error column shows each message whole, and a refusal says it was refused.
      const failures = run.result!.failures.slice(0, layout.errors.length)
      assert.equal(layout.errors.length, Math.min(100, run.result!.failures.length))
      for (const [i, f] of failures.entries()) assert.equal(layout.errors[i], f.message ?? '')
    }
    // The chart marks the end of the load where the log says it stopped, and says what the
    // bars after it are.
    const result = run.result!
    const stopped = result.events.find((event) => event.type === 'load-stopped')!
    assert.ok(
      Math.abs(stopped.t - result.load!.stoppedAt) < 50,
      `logged at ${stopped.t} ms, charted at ${result.load!.stoppedAt} ms`,
    )
    const page = readFileSync(html, 'utf8')
    assert.match(page, />load stopped</)
    assert.match(page, /the bars after “load stopped” are requests sent before it/)
    // A failure labelled "connection refused" says it was refused, not how the model reset it.
    const refused = result.failures.filter((f) => f.outcome === 'refused')
    for (const f of refused) assert.match(f.message!, /^connect ECONNREFUSED: /)
  } finally {
    await browser?.close()
    out.dispose()
  }
})
