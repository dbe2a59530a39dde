// The userland driver (--service model, the default): pods listen on loopback ports of the
// lab's host, and the Service is a model of what kube-proxy does to a ClusterIP connection,
// a TCP balancer on loopback.
//
// - Each accepted client connection is pinned to one endpoint, chosen at random among the
//   endpoints the model knows, for its whole life (a conntrack entry). Established
//   connections are never re-routed or cut when their endpoint goes away: conntrack entries
//   are not flushed for TCP.
// - Endpoint changes reach the model only after the propagation delay (± jitter), and always
//   in the order they were made, as kube-proxy applies the EndpointSlice stream.
// - A backend that refuses the connection makes the model reset the client connection, as a
//   DNAT to a closed port answers the SYN with a RST. With no endpoint at all, iptables
//   rejects the connection; here too the client is reset. Both are recorded as "refused", so
//   the load generator can report what a client in a cluster would have seen.
// - A backend reset is passed on as a reset; half-closes are passed on as half-closes.
import net from 'node:net'
import type { Clock } from '../clock.js'
import type { Recorder } from '../recorder.js'
import { type Change, Propagation } from './propagation.js'
import type { ConnectionInfo, DataPath, Endpoint, PodPlacement, ServiceAddress } from './types.js'

export type { ConnectionInfo, ResetCause } from './types.js'

/** listen() backlog; Linux caps it at net.core.somaxconn (4096 since 5.4). */
const ACCEPT_BACKLOG = 4_096

/** How long a closed connection stays known, so a late client error can still be explained. */
const CLOSED_CONNECTION_MEMORY_MS = 10_000

export interface ServiceModelOptions {
  clock: Clock
  recorder: Recorder
  propagationDelayMs: number
  propagationJitterMs: number
  /** Random source in [0, 1); injectable for unit tests. */
  random?: () => number
}

export class ServiceModel {
  readonly #options: ServiceModelOptions
  readonly #random: () => number
  readonly #server: net.Server
  readonly #propagation: Propagation
  /** What the data path uses. */
  readonly #active = new Map<string, Endpoint>()
  readonly #connections = new Map<number, ConnectionInfo>()
  readonly #sockets = new Set<net.Socket>()
  /** Connections accepted per pod, for the report. */
  readonly connectionsPerPod = new Map<string, number>()

  constructor(options: ServiceModelOptions) {
    this.#options = options
    this.#random = options.random ?? Math.random
    this.#propagation = new Propagation({ ...options, apply: (changes) => this.#apply(changes) })
    this.#server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) =>
      this.#accept(socket),
    )
  }

  /** Listens on 127.0.0.1 (port 0 picks a free one); resolves to the port. */
  listen(port = 0): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject)
      // A deep accept queue: on a busy machine the lab's event loop may accept late.
      this.#server.listen({ host: '127.0.0.1', port, backlog: ACCEPT_BACKLOG }, () => {
        this.#server.off('error', reject)
        resolve((this.#server.address() as net.AddressInfo).port)
      })
    })
  }

  /**
   * The endpoint controller's view changed: `serving` says whether the pod belongs in the
   * EndpointSlice (ready and not terminating). Only a change of membership is published.
   */
  publish(pod: string, port: number, serving: boolean): void {
    this.#propagation.publish({ pod, host: '127.0.0.1', port }, serving)
  }

  /** Endpoints the data path routes new connections to now. */
  endpoints(): Endpoint[] {
    return [...this.#active.values()]
  }

  /** True when every published change has reached the data path. */
  settled(): boolean {
    return this.#propagation.idle()
  }

  /** Whether `pod` is in the data path. */
  routesTo(pod: string): boolean {
    return this.#active.has(pod)
  }

  /** What happened to the client connection from `clientPort`, if the model saw it. */
  connection(clientPort: number): ConnectionInfo | undefined {
    return this.#connections.get(clientPort)
  }

  /** Forgets closed connections older than the memory window; call it now and then. */
  prune(): void {
    const horizon = this.#options.clock.now() - CLOSED_CONNECTION_MEMORY_MS
    for (const [port, info] of this.#connections) {
      if (info.closedAt !== undefined && info.closedAt < horizon) this.#connections.delete(port)
    }
  }

  /** Stops accepting, destroys every proxied connection and drops pending changes. */
  close(): Promise<void> {
    this.#propagation.stop()
    for (const socket of this.#sockets) socket.destroy()
    return new Promise((resolve) => this.#server.close(() => resolve()))
  }

  #apply(changes: Change[]): void {
    for (const change of changes) {
      if (change.op === 'add') {
        this.#active.set(change.endpoint.pod, change.endpoint)
        this.#options.recorder.event('endpoint-added', change.endpoint.pod)
      } else {
        this.#active.delete(change.endpoint.pod)
        this.#options.recorder.event('endpoint-removed', change.endpoint.pod)
      }
    }
  }

  #accept(client: net.Socket): void {
    const clientPort = client.remotePort
    const info: ConnectionInfo = { pod: undefined, resetCause: undefined, closedAt: undefined }
    if (clientPort !== undefined) this.#connections.set(clientPort, info)
    this.#sockets.add(client)
    client.once('close', () => {
      this.#sockets.delete(client)
      info.closedAt = this.#options.clock.now()
    })
    const candidates = [...this.#active.values()]
    if (candidates.length === 0) {
      info.resetCause = 'no-endpoint'
      client.resetAndDestroy()
      return
    }
    const endpoint = candidates[Math.floor(this.#random() * candidates.length)]!
    info.pod = endpoint.pod
    this.connectionsPerPod.set(endpoint.pod, (this.connectionsPerPod.get(endpoint.pod) ?? 0) + 1)

    const backend = net.connect({
      host: '127.0.0.1',
      port: endpoint.port,
      allowHalfOpen: true,
      noDelay: true,
    })
    this.#sockets.add(backend)
    let connected = false
    backend.once('connect', () => {
      connected = true
    })
    backend.once('close', () => this.#sockets.delete(backend))
    backend.on('error', (error: NodeJS.ErrnoException) => {
      info.resetCause ??= !connected && error.code === 'ECONNREFUSED' ? 'refused' : 'backend-reset'
      if (!client.destroyed) client.resetAndDestroy()
    })
    client.on('error', () => {
      // The client reset its connection (or it broke): the RST goes on to the backend.
      if (backend.destroyed) return
      if (connected) backend.resetAndDestroy()
      else backend.destroy()
    })
    client.once('close', () => {
      if (!backend.destroyed) backend.destroy()
    })
    // Writes made while the backend connects are buffered by the socket, in order.
    client.pipe(backend)
    backend.pipe(client)
  }
}

/**
 * The userland driver: pods run as processes of the lab's host and listen on free loopback
 * ports; the Service is the model above.
 */
export class ModelDriver implements DataPath {
  readonly kind = 'model'
  readonly #model: ServiceModel
  readonly #usedPorts = new Set<number>()
  #servicePort: number | undefined

  constructor(options: ServiceModelOptions) {
    this.#model = new ServiceModel(options)
  }

  get connectionsPerPod(): ReadonlyMap<string, number> {
    return this.#model.connectionsPerPod
  }

  async start(): Promise<ServiceAddress> {
    this.#servicePort = await this.#model.listen()
    return { host: '127.0.0.1', port: this.#servicePort }
  }

  describe(): string {
    return `model: pods on loopback, a userland TCP balancer on 127.0.0.1:${this.#servicePort ?? '-'} imitating kube-proxy`
  }

  async placePod(_name: string, probePort: boolean): Promise<PodPlacement> {
    const port = await this.#freePort()
    return {
      host: '127.0.0.1',
      port,
      probePort: probePort ? await this.#freePort() : undefined,
      wrap: (command, args) => ({ command, args }),
    }
  }

  releasePod(): void {}

  publish(endpoint: Endpoint, serving: boolean): void {
    this.#model.publish(endpoint.pod, endpoint.port, serving)
  }

  endpoints(): Endpoint[] {
    return this.#model.endpoints()
  }

  settled(): boolean {
    return this.#model.settled()
  }

  routesTo(pod: string): boolean {
    return this.#model.routesTo(pod)
  }

  connection(clientPort: number): ConnectionInfo | undefined {
    return this.#model.connection(clientPort)
  }

  prune(): void {
    this.#model.prune()
  }

  close(): Promise<void> {
    return this.#model.close()
  }

  /** A port nothing listens on now and that no other pod of this lab was given. */
  async #freePort(): Promise<number> {
    for (;;) {
      const port = await new Promise<number>((resolve, reject) => {
        const server = net.createServer()
        server.once('error', reject)
        server.listen({ host: '127.0.0.1', port: 0 }, () => {
          const { port } = server.address() as net.AddressInfo
          server.close(() => resolve(port))
        })
      })
      if (!this.#usedPorts.has(port) && port !== this.#servicePort) {
        this.#usedPorts.add(port)
        return port
      }
    }
  }
}
