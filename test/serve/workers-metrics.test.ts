// probes.metrics under `lameduck serve --workers`: a scrape reaches one worker and answers
// for the pod. Real workers, real connections held open on each of them, real signals
// (SIGTERM for the drain, SIGHUP for a reload, SIGSTOP to make a worker or the primary
// unresponsive).
import assert from 'node:assert/strict'
import http from 'node:http'
import { test } from 'node:test'
import { exited, within } from '../helpers.js'
import { parse, type Sample, sample } from '../prometheus.js'
import { app, type Pod, request, startPod } from './workers-helpers.js'

const metricsEnv = { FIXTURE_METRICS: '1' }

interface Held {
  pid: number
  /** Ends the request body; resolves with the response's status once it has ended. */
  release(): Promise<number>
}

/** A `POST /hold` on a new connection: in flight on its worker until released. */
function hold(port: number): Promise<Held> {
  return within(
    'a held request to reach a worker',
    new Promise<Held>((resolve, reject) => {
      const req = http.request({
        host: '127.0.0.1',
        port,
        path: '/hold',
        method: 'POST',
        agent: false,
      })
      req.on('error', reject)
      req.on('response', (res) => {
        res.setEncoding('utf8')
        let text = ''
        const ended = new Promise<number>((done, fail) => {
          res.on('end', () => done(res.statusCode ?? 0))
          res.on('error', fail)
        })
        const onData = (chunk: string) => {
          text += chunk
          const line = text.indexOf('\n')
          if (line === -1) return
          res.off('data', onData)
          res.resume()
          const { pid } = JSON.parse(text.slice(0, line)) as { pid: number }
          resolve({
            pid,
            release: () => {
              req.end()
              return within(`the held request on ${pid} to end`, ended)
            },
          })
        }
        res.on('data', onData)
      })
      req.flushHeaders()
    }),
  )
}

/** Held requests on new connections until every one of `pids` holds at least one. */
async function holdOnEach(port: number, pids: readonly number[]): Promise<Held[]> {
  const held: Held[] = []
  for (let i = 0; i < 20 && !pids.every((pid) => held.some((h) => h.pid === pid)); i++) {
    held.push(await hold(port))
  }
  assert.deepEqual(new Set(held.map((h) => h.pid)), new Set(pids), 'a request held on each worker')
  return held
}

/** A keep-alive connection (one socket) that the primary handed to worker `pid`. */
async function connectionTo(port: number, pid: number): Promise<http.Agent> {
  for (let i = 0; i < 20; i++) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    const answer = await request(port, '/', agent)
    if ((JSON.parse(answer.body) as { pid: number }).pid === pid) return agent
    agent.destroy()
  }
  throw new Error(`no connection reached worker ${pid} in 20 tries`)
}

interface Scrape {
  samples: Sample[]
  value(name: string, labels?: Record<string, string>): number
  state: string | undefined
  scope: string | undefined
  connection: string | undefined
}

async function scrape(port: number, agent: http.Agent | false = false): Promise<Scrape> {
  const answer = await request(port, '/metrics', agent)
  assert.equal(answer.status, 200, answer.body)
  const { samples } = parse(answer.body)
  const current = (name: string) =>
    samples.filter((s) => s.name === name && s.value === 1).map((s) => Object.values(s.labels)[0])
  assert.equal(current('lameduck_state').length, 1, 'exactly one state is current')
  assert.equal(current('lameduck_metrics_scope').length, 1, 'exactly one scope is current')
  return {
    samples,
    value: (name, labels) => sample(samples, name, labels),
    state: current('lameduck_state')[0],
    scope: current('lameduck_metrics_scope')[0],
    connection: answer.connection,
  }
}

const workerPids = async (pod: Pod) => [
  (await pod.log({ event: 'worker-ready', worker: 1 })).pid as number,
  (await pod.log({ event: 'worker-ready', worker: 2 })).pid as number,
]

test('a scrape answers for the pod: requests in flight on both workers are summed, whichever worker is scraped', async () => {
  const pod = await startPod(['--workers', '2', app], { env: metricsEnv })
  const agents: http.Agent[] = []
  try {
    const pids = await workerPids(pod)
    const held = await holdOnEach(pod.port, pids)
    for (const pid of pids) {
      const agent = await connectionTo(pod.port, pid)
      agents.push(agent)
      const pod1 = await scrape(pod.port, agent)
      assert.equal(pod1.scope, 'pod')
      assert.equal(pod1.state, 'ready')
      assert.equal(pod1.value('lameduck_in_flight_requests'), held.length, `scraped on ${pid}`)
      // The held connections, this scrape's, and the other worker's keep-alive one if open.
      assert.ok(pod1.value('lameduck_open_connections') >= held.length + 1)
      assert.equal(pod1.value('lameduck_workers', { state: 'ready' }), 2)
      assert.equal(pod1.value('lameduck_metrics_unanswered_workers'), 0)
      assert.equal(pod1.value('lameduck_shutdown_closed_connections_total'), 0)
      assert.equal(pod1.value('lameduck_shutdown_phase_seconds', { phase: 'drain' }), 0)
    }
    for (const h of held) assert.equal(await h.release(), 200)
    assert.equal((await scrape(pod.port)).value('lameduck_in_flight_requests'), 0)
    for (const agent of agents) agent.destroy()
    pod.child.kill('SIGTERM')
    assert.equal((await exited(pod.child, 'the pod to exit', 10_000)).code, 0, pod.stderr())
  } finally {
    for (const agent of agents) agent.destroy()
    pod.child.kill('SIGKILL')
  }
})

test('during a SIGTERM drain a scrape shows the pod draining, with what is still in flight on every worker', async () => {
  const pod = await startPod(['--workers', '2', '--drain-delay', '1500ms', app], {
    env: metricsEnv,
  })
  try {
    const pids = await workerPids(pod)
    const held = await holdOnEach(pod.port, pids)
    const from = pod.mark()
    pod.child.kill('SIGTERM')
    await pod.log({ event: 'state', state: 'draining', worker: 1 }, { from })
    await pod.log({ event: 'state', state: 'draining', worker: 2 }, { from })
    // Twice on new connections: each worker's listener still accepts during the drain.
    for (let i = 0; i < 2; i++) {
      const drain = await scrape(pod.port)
      assert.equal(drain.scope, 'pod')
      assert.equal(drain.state, 'draining')
      assert.equal(drain.connection, 'close')
      assert.equal(drain.value('lameduck_in_flight_requests'), held.length)
      assert.equal(drain.value('lameduck_workers', { state: 'draining' }), 2)
      assert.ok(drain.value('lameduck_shutdown_phase_seconds', { phase: 'drain' }) > 0)
      assert.equal(drain.value('lameduck_shutdown_phase_seconds', { phase: 'close' }), 0)
    }
    for (const h of held) assert.equal(await h.release(), 200)
    assert.equal((await exited(pod.child, 'the pod to exit', 10_000)).code, 0, pod.stderr())
  } finally {
    pod.child.kill('SIGKILL')
  }
})

test('the pod’s counters keep what retired workers counted: connections closed in a reload', async () => {
  const pod = await startPod(['--workers', '2', '--reload-drain', '100ms', app], {
    env: metricsEnv,
  })
  try {
    const pids = await workerPids(pod)
    // In flight on each worker when the reload retires it: each completes and its connection
    // closes on its own, in the retiring worker's count.
    const held = await holdOnEach(pod.port, pids)
    const before = await scrape(pod.port)
    assert.equal(before.value('lameduck_shutdown_closed_connections_total'), 0)
    let from = pod.mark()
    pod.child.kill('SIGHUP')
    for (let i = 0; i < 2; i++) {
      const retire = await pod.log({ event: 'worker-retire' }, { from, ms: 15_000 })
      // The primary logs the retire before it sends it: the held requests are released once
      // the worker drains, or one may end on a keep-alive connection its client then closes
      // before the drain began counting closes (1 of 2 counted, once in CI on Node 20).
      await pod.log(
        { event: 'state', state: 'draining', worker: retire.worker },
        { from, ms: 15_000 },
      )
      from = pod.mark()
      const pid = pids[(retire.worker as number) - 1]
      for (const h of held.filter((h) => h.pid === pid)) assert.equal(await h.release(), 200)
    }
    await pod.log({ event: 'reload', phase: 'done', replaced: 2 }, { from, ms: 15_000 })
    for (let i = 0; i < 2; i++) {
      const after = await scrape(pod.port)
      assert.equal(after.scope, 'pod')
      assert.equal(after.state, 'ready')
      assert.equal(after.value('lameduck_workers', { state: 'ready' }), 2)
      assert.equal(after.value('lameduck_in_flight_requests'), 0)
      // Both old workers have exited; what they closed is still the pod's.
      assert.ok(
        after.value('lameduck_shutdown_closed_connections_total') >= held.length,
        `closed ${after.value('lameduck_shutdown_closed_connections_total')} of ${held.length}`,
      )
      assert.equal(after.value('lameduck_shutdown_forced_connections_total'), 0)
      // A reload is not the pod's shutdown.
      assert.equal(after.value('lameduck_shutdown_phase_seconds', { phase: 'drain' }), 0)
    }
    pod.child.kill('SIGTERM')
    assert.equal((await exited(pod.child, 'the pod to exit', 10_000)).code, 0, pod.stderr())
  } finally {
    pod.child.kill('SIGKILL')
  }
})

test('a scrape never hangs: a stopped worker is left out and counted, a stopped primary makes the worker answer alone', async () => {
  const pod = await startPod(['--workers', '2', app], { env: metricsEnv })
  const [a, b] = (await workerPids(pod)) as [number, number]
  const agent = await connectionTo(pod.port, a)
  try {
    const held = await holdOnEach(pod.port, [a, b])
    const onA = held.filter((h) => h.pid === a).length

    process.kill(b, 'SIGSTOP')
    try {
      const partial = await within('a scrape with a stopped worker', scrape(pod.port, agent), 5_000)
      assert.equal(partial.scope, 'pod')
      assert.equal(partial.value('lameduck_metrics_unanswered_workers'), 1)
      assert.equal(partial.value('lameduck_in_flight_requests'), onA, 'only what worker a holds')
      assert.equal(partial.value('lameduck_workers', { state: 'ready' }), 2)
    } finally {
      process.kill(b, 'SIGCONT')
    }

    process.kill(pod.child.pid as number, 'SIGSTOP')
    try {
      const alone = await within('a scrape with a stopped primary', scrape(pod.port, agent), 5_000)
      assert.equal(alone.scope, 'worker')
      assert.equal(alone.state, 'ready')
      assert.equal(alone.value('lameduck_in_flight_requests'), onA)
      assert.ok(
        !alone.samples.some((s) => s.name === 'lameduck_workers'),
        'no pod-wide figures in a worker’s own answer',
      )
    } finally {
      process.kill(pod.child.pid as number, 'SIGCONT')
    }

    const back = await scrape(pod.port, agent)
    assert.equal(back.scope, 'pod')
    assert.equal(back.value('lameduck_in_flight_requests'), held.length)
    assert.equal(back.value('lameduck_metrics_unanswered_workers'), 0)
    for (const h of held) assert.equal(await h.release(), 200)
    agent.destroy()
    pod.child.kill('SIGTERM')
    assert.equal((await exited(pod.child, 'the pod to exit', 10_000)).code, 0, pod.stderr())
  } finally {
    agent.destroy()
    pod.child.kill('SIGKILL')
  }
})
