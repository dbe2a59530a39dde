// The demo's settings, shared by `npm run demo` (scripts/demo.mjs) and the tests that check
// the demo's claims, so both run the same experiments: the HTTP/1.1 comparison (DEMO_ARGS),
// and one for HTTP/2 and one for WebSockets (DEMO_COMPARISONS).

/**
 * Lab options of the demo: 3 replicas, 3 rolling updates, 300 req/s of short GETs with 5 %
 * slow GETs, 5 % streamed responses and 5 % POSTs, from every client kind (the default).
 */
export const DEMO_ARGS: readonly string[] = [
  '--replicas',
  '3',
  '--rollouts',
  '3',
  '--rate',
  '300',
  '--connections',
  '64',
  '--path',
  '85:/',
  '--path',
  '5:/?delay=2000',
  '--path',
  '5:/stream?chunks=5&interval=200',
  '--post',
  '5:/echo',
  '--readiness-path',
  '/readyz',
  // A request slower than this is reported as failed. 10 s rather than the default 5 s: on a
  // machine shared with other work, a starved pod answers a 2 s request late, which is slow,
  // not lost (the diagnosis reports such timeouts as overload).
  '--timeout',
  '10s',
  // lameduck's drain delay is 10 s in a pod by default; 3 s exceeds the lab's propagation
  // delay (1 s ± 250 ms) with a margin and keeps the demo short. naive ignores it.
  '--env',
  'LAMEDUCK_DRAIN_DELAY_MS=3000',
]

export interface DemoService {
  name: string
  source: string
  /** Compiled entry point, relative to the project root. */
  file: string
}

export const DEMO_SERVICES: readonly DemoService[] = [
  { name: 'naive', source: 'examples/naive.ts', file: 'dist/examples/naive.js' },
  { name: 'lameduck', source: 'examples/server.ts', file: 'dist/examples/server.js' },
]

/** One side-by-side run of the demo: the same lab settings for a naive and a lameduck service. */
export interface DemoComparison {
  /** Selects it: `npm run demo -- h2`. */
  id: string
  title: string
  args: readonly string[]
  /** The naive service first, then the lameduck one. */
  services: readonly [DemoService, DemoService]
}

/** Settings every protocol comparison shares: short and slow GETs, POSTs, 3 rolling updates. */
const PROTOCOL_COMMON: readonly string[] = [
  '--replicas',
  '3',
  '--rollouts',
  '3',
  '--rate',
  '200',
  '--path',
  '90:/',
  '--path',
  '5:/?delay=500',
  '--post',
  '5:/echo',
  '--readiness-path',
  '/readyz',
  '--timeout',
  '10s',
  // Above the propagation delay (1 s ± 250 ms) with a margin; naive ignores it.
  '--env',
  'LAMEDUCK_DRAIN_DELAY_MS=1500',
]

export const DEMO_COMPARISONS: readonly DemoComparison[] = [
  {
    id: 'http1',
    title: 'HTTP/1.1, every client kind',
    args: DEMO_ARGS,
    services: [DEMO_SERVICES[0]!, DEMO_SERVICES[1]!],
  },
  {
    id: 'h2',
    title: 'HTTP/2 (h2c)',
    args: [
      ...PROTOCOL_COMMON,
      '--client',
      'h2',
      // One session per pool, as many upstream clients with a session each: 64 of them
      // spread over every pod each time GOAWAYs move them.
      '--pools',
      '64',
      // An HTTP/2 client moves to another pod only when its session gets a GOAWAY. Without
      // minReadySeconds the last new pod of a rolling update is routed for a moment before
      // the next update deletes it, no session reaches it, and its shutdown proves nothing.
      // 2 s (above the propagation delay) lets the GOAWAYs of the old pods bring it sessions.
      '--min-ready',
      '2s',
      // kubelet probes with HTTP/1.1, which an h2c server does not speak.
      '--probe-port-env',
      'LAMEDUCK_PROBE_PORT',
    ],
    services: [
      { name: 'h2-naive', source: 'examples/h2-naive.ts', file: 'dist/examples/h2-naive.js' },
      { name: 'h2-lameduck', source: 'examples/h2-server.ts', file: 'dist/examples/h2-server.js' },
    ],
  },
  {
    id: 'ws',
    title: 'WebSockets, with HTTP/1.1 requests',
    args: [
      ...PROTOCOL_COMMON,
      '--client',
      '2:ws',
      '--client',
      '1:new-connection',
      '--ws-path',
      '/ws',
      '--connections',
      '4',
    ],
    services: [
      { name: 'ws-naive', source: 'examples/ws-naive.ts', file: 'dist/examples/ws-naive.js' },
      { name: 'ws-lameduck', source: 'examples/ws-server.ts', file: 'dist/examples/ws-server.js' },
    ],
  },
]
