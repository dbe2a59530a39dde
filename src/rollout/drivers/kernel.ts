// The kernel driver (--service iptables): the data path of a cluster node, built from the
// kernel's own parts. Facts it reproduces are those of kube-proxy's iptables mode:
//
// - Each pod runs in its own network namespace with its own address in 198.18.N.0/24, on a
//   veth pair whose host end is on a bridge of the lab (198.18.N.1). The pod's command runs
//   inside the namespace (`ip netns exec`) and listens on the containerPort; the kubelet model
//   probes the pod's address from the host, as the kubelet does.
// - The Service is a virtual IP (198.19.N.1:80) that nothing owns. A chain per Service and a
//   chain per endpoint in the nat table, `-m statistic --mode random --probability 1/n ...`
//   (the last rule unconditional), DNAT to podIP:port; written with `iptables-restore
//   --noflush`, so each rewrite is atomic. With no endpoint, a REJECT (tcp-reset) in the
//   filter table, as kube-proxy writes it.
// - DNAT happens on a connection's first packet; conntrack pins the flow to its pod, so an
//   established connection keeps its pod after the endpoint is removed, and a pod's FIN, RST
//   or refused SYN reaches the client directly.
// - A pod's namespace is removed when its processes have exited: a connection routed to its
//   address after that finds nobody (no RST; the client waits until ARP gives up).
// - The load comes from the lab's process in the host namespace; the rules hang off the nat
//   and filter OUTPUT chains (kube-proxy hooks KUBE-SERVICES into OUTPUT for this case, and
//   into PREROUTING for traffic from pods). Which pod each connection went to is read from
//   conntrack's event stream (`conntrack -E`).
//
// Every object carries the run's prefix `ldk<pid>`: namespaces `ldk<pid>-<n>`, links
// `ldk<pid>br` / `ldk<pid>p<n>`, chains `ldk<pid>-…`, and the OUTPUT jumps a comment naming
// it. A run removes its objects on close, on exit (a crash included) and, at start, those of
// any earlier run whose process is gone (killed with SIGKILL), naming them.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process'
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { onPath } from '../../serve/child.js'
import type { Clock } from '../clock.js'
import type { Recorder } from '../recorder.js'
import { type Change, Propagation } from './propagation.js'
import type { ConnectionInfo, DataPath, Endpoint, PodPlacement, ServiceAddress } from './types.js'

/** The Service's port on its virtual IP. */
export const SERVICE_PORT = 80
/** The probe port of a pod when probes have their own listener (--probe-port-env). */
const PROBE_PORT_OFFSET = 1
/** Host numbers of pod addresses in the run's /24 (.1 is the bridge). */
const FIRST_POD_HOST = 10
const LAST_POD_HOST = 250
/** How long a closed connection stays known, so a late client error can still be explained. */
const CONNECTION_MEMORY_MS = 30_000
/** Where each run notes what it made, so a later run can undo what a killed one left. */
const STATE_DIR = '/run/lameduck-rollout'
/** Matches every object name of the lab; group 1 is the run's prefix. */
const OBJECT = /^(ldk\d+)(?:-|br$|p\d+$)/
/** The tables the lab writes to. */
const TABLES = ['nat', 'filter'] as const
const COMMANDS = ['ip', 'iptables', 'iptables-save', 'iptables-restore', 'conntrack'] as const

export interface KernelDriverOptions {
  clock: Clock
  recorder: Recorder
  propagationDelayMs: number
  propagationJitterMs: number
  /** The port each pod listens on in its namespace (its containerPort). */
  podPort: number
  random?: () => number
}

interface PodSandbox {
  name: string
  index: number
  namespace: string
  veth: string
  host: string
}

interface Tracked extends ConnectionInfo {
  openedAt: number
}

/** The one sentence a run stops with when the kernel's data path cannot be built. */
export class KernelUnavailable extends Error {
  override name = 'KernelUnavailable'
}

export class KernelDriver implements DataPath {
  readonly kind = 'iptables'
  readonly connectionsPerPod = new Map<string, number>()
  readonly prefix = `ldk${process.pid}`
  readonly #options: KernelDriverOptions
  readonly #propagation: Propagation
  readonly #sandboxes = new Map<string, PodSandbox>()
  readonly #byAddress = new Map<string, string>()
  #nextIndex = FIRST_POD_HOST
  /** Endpoints in the rules now, and those the next rewrite puts there. */
  #applied = new Map<string, Endpoint>()
  readonly #wanted = new Map<string, Endpoint>()
  #pendingEvents: Change[] = []
  #syncing = false
  #chains = new Set<string>()
  readonly #connections = new Map<number, Tracked>()
  #conntrack: ChildProcess | undefined
  #subnet = -1
  #built = false
  #closed = false
  readonly #onExit = () => this.#teardown()

  constructor(options: KernelDriverOptions) {
    this.#options = options
    this.#propagation = new Propagation({ ...options, apply: (changes) => this.#apply(changes) })
  }

  get bridge(): string {
    return `${this.prefix}br`
  }

  get vip(): string {
    return `198.19.${this.#subnet}.1`
  }

  get #gateway(): string {
    return `198.18.${this.#subnet}.1`
  }

  get #comment(): string {
    return `lameduck rollout ${this.prefix}`
  }

  async start(): Promise<ServiceAddress & { notes: string[] }> {
    checkPrerequisites()
    const notes: string[] = []
    const stale = removeStaleRuns()
    if (stale !== undefined) notes.push(stale)
    this.#subnet = freeSubnet()
    process.on('exit', this.#onExit)
    this.#built = true
    const tablesBefore = tablesBeforeAnyRun(nftTables())
    writeState(this.prefix, { tablesBefore })
    try {
      run(
        'ip',
        ['-batch', '-'],
        [
          `link add ${this.bridge} type bridge`,
          `link set ${this.bridge} alias "${this.#comment}"`,
          `addr add ${this.#gateway}/24 dev ${this.bridge}`,
          `link set ${this.bridge} up`,
          // The virtual IP is owned by nobody: routed to the bridge so that a packet the rules
          // did not rewrite goes nowhere, as a ClusterIP without rules does.
          `route add ${this.vip}/32 dev ${this.bridge} src ${this.#gateway}`,
        ],
      )
      const chains = this.#baseRules()
      run('iptables-restore', ['-w', '--noflush'], chains)
      this.#chains.add(`${this.prefix}-SVC`)
    } catch (error) {
      throw new KernelUnavailable(
        `--service iptables: cannot build the data path (${(error as Error).message.trim()}); network namespaces, bridges and iptables rules must be allowed here (root, CAP_NET_ADMIN, not inside a restricted container)`,
      )
    }
    this.#conntrack = this.#followConntrack()
    return { host: this.vip, port: SERVICE_PORT, notes }
  }

  describe(): string {
    return `iptables: pods in network namespaces on 198.18.${this.#subnet}.0/24, the Service ${this.vip}:${SERVICE_PORT} DNATed by kube-proxy-style rules (chains ${this.prefix}-*), conntrack`
  }

  async placePod(name: string, probePort: boolean): Promise<PodPlacement> {
    if (this.#closed) throw new Error(`pod ${name} not placed: the lab is stopping`)
    const index = this.#allocate()
    const sandbox: PodSandbox = {
      name,
      index,
      namespace: `${this.prefix}-${index}`,
      veth: `${this.prefix}p${index}`,
      host: `198.18.${this.#subnet}.${index}`,
    }
    this.#sandboxes.set(name, sandbox)
    this.#byAddress.set(sandbox.host, name)
    await runAsync(
      'ip',
      ['-batch', '-'],
      [
        `netns add ${sandbox.namespace}`,
        `link add ${sandbox.veth} type veth peer name eth0 netns ${sandbox.namespace}`,
        `link set ${sandbox.veth} master ${this.bridge} up`,
      ],
    )
    await runAsync(
      'ip',
      ['-n', sandbox.namespace, '-batch', '-'],
      [
        `addr add ${sandbox.host}/24 dev eth0`,
        'link set lo up',
        'link set eth0 up',
        `route add default via ${this.#gateway}`,
      ],
    )
    const port = this.#options.podPort
    return {
      host: sandbox.host,
      port,
      probePort: probePort ? port + PROBE_PORT_OFFSET : undefined,
      wrap: (command, args) => ({
        command: 'ip',
        args: ['netns', 'exec', sandbox.namespace, command, ...args],
      }),
    }
  }

  releasePod(name: string): void {
    const sandbox = this.#sandboxes.get(name)
    if (sandbox === undefined) return
    this.#sandboxes.delete(name)
    // The address stays known for attribution; the index is not handed out again soon.
    execFile('ip', ['netns', 'del', sandbox.namespace], () => {})
  }

  publish(endpoint: Endpoint, serving: boolean): void {
    this.#propagation.publish(endpoint, serving)
  }

  endpoints(): Endpoint[] {
    return [...this.#applied.values()]
  }

  settled(): boolean {
    return this.#propagation.idle() && !this.#syncing && this.#pendingEvents.length === 0
  }

  routesTo(pod: string): boolean {
    return this.#applied.has(pod)
  }

  connection(clientPort: number): ConnectionInfo | undefined {
    return this.#connections.get(clientPort)
  }

  prune(): void {
    const horizon = this.#options.clock.now() - CONNECTION_MEMORY_MS
    for (const [port, info] of this.#connections) {
      if (info.openedAt < horizon) this.#connections.delete(port)
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#propagation.stop()
    this.#teardown()
  }

  /** Removes everything this run made. Synchronous: it also runs in an 'exit' handler. */
  #teardown(): void {
    if (!this.#built) return
    this.#built = false
    process.off('exit', this.#onExit)
    this.#conntrack?.kill('SIGKILL')
    removeRun(this.prefix)
  }

  #allocate(): number {
    // In turn, so an address is reused as late as possible (conntrack may still know it).
    const live = new Set([...this.#sandboxes.values()].map((sandbox) => sandbox.index))
    for (let tries = 0; tries <= LAST_POD_HOST - FIRST_POD_HOST; tries++) {
      const index = this.#nextIndex
      this.#nextIndex = index >= LAST_POD_HOST ? FIRST_POD_HOST : index + 1
      if (!live.has(index)) return index
    }
    throw new Error('no pod address left in the run')
  }

  #baseRules(): string[] {
    const p = this.prefix
    const jump = `-I OUTPUT 1 -m comment --comment "${this.#comment}" -j ${p}-SERVICES`
    return [
      '*nat',
      `:${p}-SERVICES - [0:0]`,
      `:${p}-SVC - [0:0]`,
      jump,
      `-A ${p}-SERVICES -d ${this.vip}/32 -p tcp -m tcp --dport ${SERVICE_PORT} -m comment --comment "${p}/app cluster IP" -j ${p}-SVC`,
      'COMMIT',
      '*filter',
      `:${p}-SERVICES - [0:0]`,
      jump,
      ...this.#rejectRule(0),
      'COMMIT',
    ]
  }

  #rejectRule(endpoints: number): string[] {
    if (endpoints > 0) return []
    return [
      `-A ${this.prefix}-SERVICES -d ${this.vip}/32 -p tcp -m tcp --dport ${SERVICE_PORT} -m comment --comment "${this.prefix}/app has no endpoints" -j REJECT --reject-with tcp-reset`,
    ]
  }

  #apply(changes: Change[]): void {
    for (const change of changes) {
      if (change.op === 'add') this.#wanted.set(change.endpoint.pod, change.endpoint)
      else this.#wanted.delete(change.endpoint.pod)
    }
    this.#pendingEvents.push(...changes)
    void this.#sync()
  }

  /** Rewrites the Service's rules to the wanted endpoints; one rewrite at a time. */
  async #sync(): Promise<void> {
    if (this.#syncing || this.#closed) return
    this.#syncing = true
    try {
      while (this.#pendingEvents.length > 0 && !this.#closed) {
        const events = this.#pendingEvents
        this.#pendingEvents = []
        const wanted = new Map(this.#wanted)
        await runAsync('iptables-restore', ['-w', '--noflush'], this.#serviceRules(wanted))
        this.#applied = wanted
        for (const change of events) {
          this.#options.recorder.event(
            change.op === 'add' ? 'endpoint-added' : 'endpoint-removed',
            change.endpoint.pod,
          )
        }
      }
    } catch (error) {
      if (!this.#closed) {
        this.#options.recorder.event(
          'warning',
          undefined,
          `iptables-restore failed: ${(error as Error).message.trim()}`,
        )
      }
    } finally {
      this.#syncing = false
    }
  }

  /** kube-proxy's shape: the Service chain picks an endpoint chain at random, each DNATs. */
  #serviceRules(endpoints: Map<string, Endpoint>): string[] {
    const p = this.prefix
    const list = [...endpoints.values()]
    const sep = (endpoint: Endpoint) => `${p}-SEP-${this.#sandboxIndex(endpoint)}`
    const chains = new Set(list.map(sep))
    const gone = [...this.#chains].filter((c) => c !== `${p}-SVC` && !chains.has(c))
    const lines = ['*nat', `:${p}-SVC - [0:0]`]
    for (const chain of [...chains, ...gone]) lines.push(`:${chain} - [0:0]`)
    list.forEach((endpoint, i) => {
      const left = list.length - i
      const pick =
        left > 1 ? `-m statistic --mode random --probability ${(1 / left).toFixed(11)} ` : ''
      lines.push(
        `-A ${p}-SVC -m comment --comment "${endpoint.pod}" ${pick}-j ${sep(endpoint)}`,
        `-A ${sep(endpoint)} -p tcp -m comment --comment "${endpoint.pod}" -m tcp -j DNAT --to-destination ${endpoint.host}:${endpoint.port}`,
      )
    })
    for (const chain of gone) lines.push(`-X ${chain}`)
    lines.push('COMMIT', '*filter', `:${p}-SERVICES - [0:0]`, ...this.#rejectRule(list.length))
    lines.push('COMMIT')
    this.#chains = new Set([`${p}-SVC`, ...chains])
    return lines
  }

  #sandboxIndex(endpoint: Endpoint): number {
    return Number(endpoint.host.split('.')[3])
  }

  /** Follows conntrack's new flows to the virtual IP: client port → pod. */
  #followConntrack(): ChildProcess {
    const args = ['-E', '-e', 'NEW', '-p', 'tcp', '--orig-dst', this.vip]
    // conntrack writes through stdio: line-buffered only when stdbuf says so.
    const child = onPath('stdbuf')
      ? spawn('stdbuf', ['-oL', 'conntrack', ...args], { stdio: ['ignore', 'pipe', 'ignore'] })
      : spawn('conntrack', args, { stdio: ['ignore', 'pipe', 'ignore'] })
    child.on('error', () => {})
    let partial = ''
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n')
      partial = lines.pop() ?? ''
      for (const line of lines) this.#onFlow(line)
    })
    child.unref()
    ;(child.stdout as unknown as { unref?: () => void } | null)?.unref?.()
    return child
  }

  #onFlow(line: string): void {
    const sport = /\bsport=(\d+)/.exec(line)?.[1]
    const replySource =
      /\[UNREPLIED\] src=([\d.]+)/.exec(line)?.[1] ?? /.*\bsrc=([\d.]+)/.exec(line)?.[1]
    if (sport === undefined || replySource === undefined) return
    const pod = this.#byAddress.get(replySource)
    const info: Tracked = {
      pod,
      resetCause: undefined,
      closedAt: undefined,
      openedAt: this.#options.clock.now(),
    }
    this.#connections.set(Number(sport), info)
    if (pod !== undefined)
      this.connectionsPerPod.set(pod, (this.connectionsPerPod.get(pod) ?? 0) + 1)
  }
}

/** Stops the run, before anything is made, when the kernel's data path cannot be built here. */
function checkPrerequisites(): void {
  if (process.platform !== 'linux') {
    throw new KernelUnavailable(
      `--service iptables needs Linux (network namespaces and iptables); this is ${process.platform}: use --service model`,
    )
  }
  if (process.getuid?.() !== 0) {
    throw new KernelUnavailable(
      '--service iptables needs root: it creates network namespaces, a bridge and iptables rules; run the lab as root (or in CI as root), or use --service model',
    )
  }
  const missing = COMMANDS.filter((command) => !onPath(command))
  if (missing.length > 0) {
    throw new KernelUnavailable(
      `--service iptables needs the commands ${missing.join(', ')}, not found in PATH (Debian: apt-get install iproute2 iptables conntrack); or use --service model`,
    )
  }
}

/** Runs a command with `lines` on stdin; throws with its stderr when it fails. */
function run(command: string, args: string[], lines: string[] = []): string {
  return execFileSync(command, args, {
    input: lines.length > 0 ? `${lines.join('\n')}\n` : '',
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  })
}

function runAsync(command: string, args: string[], lines: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { encoding: 'utf8' }, (error, stdout, stderr) => {
      if (error === null) resolve(stdout)
      else reject(new Error(`${command} ${args.join(' ')}: ${stderr.trim() || error.message}`))
    })
    child.stdin?.end(`${lines.join('\n')}\n`)
  })
}

function tryRun(command: string, args: string[], lines: string[] = []): string | undefined {
  try {
    return run(command, args, lines)
  } catch {
    return undefined
  }
}

/** A /24 in 198.18.0.0/15 that no address or route of the host uses, starting from the pid. */
function freeSubnet(): number {
  const used = new Set<number>()
  const text = `${tryRun('ip', ['-4', '-o', 'addr']) ?? ''}\n${tryRun('ip', ['-4', 'route']) ?? ''}`
  for (const match of text.matchAll(/\b198\.1[89]\.(\d+)\./g)) used.add(Number(match[1]))
  const start = (process.pid % 250) + 1
  for (let i = 0; i < 250; i++) {
    const n = ((start + i - 1) % 250) + 1
    if (!used.has(n)) return n
  }
  throw new KernelUnavailable(
    '--service iptables: every /24 of 198.18.0.0/16 is in use on this host; remove some or use --service model',
  )
}

interface RunState {
  /** The nftables tables that existed before the run (those it may have created go after). */
  tablesBefore: string[] | undefined
}

function statePath(prefix: string): string {
  return join(STATE_DIR, `${prefix}.json`)
}

function writeState(prefix: string, state: RunState): void {
  try {
    mkdirSync(STATE_DIR, { recursive: true })
    writeFileSync(statePath(prefix), JSON.stringify(state))
  } catch {
    // Without the note, a later run still removes the objects, not a table left empty.
  }
}

function readState(prefix: string): RunState | undefined {
  try {
    return JSON.parse(readFileSync(statePath(prefix), 'utf8')) as RunState
  } catch {
    return undefined
  }
}

/**
 * The tables as they were before any lab run now alive began: a table another live run
 * created is not the host's, so whichever run ends last removes it once empty.
 */
function tablesBeforeAnyRun(current: string[] | undefined): string[] | undefined {
  if (current === undefined) return undefined
  let tables = current
  let files: string[] = []
  try {
    files = readdirSync(STATE_DIR)
  } catch {
    return tables
  }
  for (const file of files) {
    const prefix = file.replace(/\.json$/, '')
    if (!OBJECT.test(`${prefix}-`) || !runAlive(prefix)) continue
    const before = readState(prefix)?.tablesBefore
    if (before !== undefined) tables = tables.filter((table) => before.includes(table))
  }
  return tables
}

/** `ip nat`, `ip filter`, … when nft is there to say. */
function nftTables(): string[] | undefined {
  if (!onPath('nft')) return undefined
  const text = tryRun('nft', ['list', 'tables'])
  if (text === undefined) return undefined
  return text
    .split('\n')
    .map((line) => line.replace(/^table\s+/, '').trim())
    .filter((line) => line !== '')
}

/** Every object of the lab's runs found on the host, by prefix. */
export function labObjects(): Map<string, string[]> {
  const found = new Map<string, string[]>()
  const add = (name: string, what: string) => {
    const prefix = OBJECT.exec(name)?.[1]
    if (prefix === undefined) return
    found.set(prefix, [...(found.get(prefix) ?? []), what])
  }
  for (const line of (tryRun('ip', ['netns', 'list']) ?? '').split('\n')) {
    const name = line.split(' ')[0] ?? ''
    if (name !== '') add(name, `netns ${name}`)
  }
  for (const match of (tryRun('ip', ['-o', 'link']) ?? '').matchAll(/^\d+: ([^:@\s]+)/gm)) {
    add(match[1]!, `link ${match[1]}`)
  }
  for (const table of TABLES) {
    for (const match of (tryRun('iptables-save', ['-t', table]) ?? '').matchAll(/^:(\S+)/gm)) {
      add(match[1]!, `chain ${table}/${match[1]}`)
    }
  }
  return found
}

/**
 * Whether the run that used `prefix` is still alive (a live lab's objects are its own). Called
 * before this run builds anything: objects with its own prefix were left by an earlier
 * process that had the same pid.
 */
function runAlive(prefix: string): boolean {
  const pid = Number(prefix.slice(3))
  if (pid === process.pid) return false
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
    return /rollout|lameduck/.test(cmdline)
  } catch {
    return false
  }
}

/** Removes what killed runs left; returns one line naming it, when there was anything. */
function removeStaleRuns(): string | undefined {
  const removed: string[] = []
  for (const [prefix, objects] of labObjects()) {
    if (runAlive(prefix)) continue
    removeRun(prefix)
    removed.push(...objects)
  }
  if (removed.length === 0) return undefined
  return `removed what an earlier run of the lab left behind (killed before it could clean up): ${removed.join(', ')}`
}

/** Removes every object with `prefix`: OUTPUT jumps, chains, namespaces, links; then the tables the run created, if empty. */
function removeRun(prefix: string): void {
  const rules: string[] = []
  for (const table of TABLES) {
    const saved = (tryRun('iptables-save', ['-t', table]) ?? '').split('\n')
    const chains = saved
      .flatMap((line) => /^:(\S+)/.exec(line)?.[1] ?? [])
      .filter((c) => c.startsWith(`${prefix}-`))
    const jumps = saved.filter(
      (line) =>
        line.startsWith('-A ') &&
        !line.startsWith(`-A ${prefix}-`) &&
        line.includes(`-j ${prefix}-`),
    )
    if (chains.length === 0 && jumps.length === 0) continue
    rules.push(`*${table}`, ...chains.map((c) => `:${c} - [0:0]`))
    rules.push(...jumps.map((line) => `-D ${line.slice(3)}`))
    rules.push(...chains.map((c) => `-X ${c}`), 'COMMIT')
  }
  if (rules.length > 0) tryRun('iptables-restore', ['-w', '--noflush'], rules)
  const links: string[] = []
  for (const line of (tryRun('ip', ['netns', 'list']) ?? '').split('\n')) {
    const name = line.split(' ')[0] ?? ''
    if (!name.startsWith(`${prefix}-`)) continue
    // Processes a killed run left in the namespace (its pods) go with it.
    for (const pid of (tryRun('ip', ['netns', 'pids', name]) ?? '').split(/\s+/)) {
      if (/^\d+$/.test(pid) && Number(pid) !== process.pid) killQuietly(Number(pid))
    }
    links.push(`netns del ${name}`)
  }
  for (const match of (tryRun('ip', ['-o', 'link']) ?? '').matchAll(/^\d+: ([^:@\s]+)/gm)) {
    if (match[1] === `${prefix}br` || new RegExp(`^${prefix}p\\d+$`).test(match[1]!)) {
      links.push(`link del ${match[1]}`)
    }
  }
  if (links.length > 0) tryRun('ip', ['-force', '-batch', '-'], links)
  removeEmptyTables(readState(prefix))
  rmSync(statePath(prefix), { force: true })
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL')
  } catch {
    // gone already
  }
}

/**
 * iptables-nft creates a table the first time a rule goes into it and never deletes it: a
 * table that did not exist before the run and holds nothing now goes, so the host's
 * nftables state is left as found.
 */
function removeEmptyTables(state: RunState | undefined): void {
  if (state?.tablesBefore === undefined) return
  const now = nftTables()
  if (now === undefined) return
  for (const table of TABLES) {
    const name = `ip ${table}`
    if (state.tablesBefore.includes(name) || !now.includes(name)) continue
    const saved = tryRun('iptables-save', ['-t', table]) ?? ''
    const empty =
      !/^-A /m.test(saved) &&
      [...saved.matchAll(/^:(\S+) (\S+)/gm)].every(
        ([, chain, policy]) => /^[A-Z]+$/.test(chain!) && policy === 'ACCEPT',
      )
    if (empty) tryRun('nft', ['delete', 'table', 'ip', table])
  }
}
