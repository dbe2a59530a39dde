// The interface between the lab and its data path: where pods run and listen, and the
// Service that routes new connections to them. The recorder, the report and the diagnosis see
// only this interface, so a run reads the same whichever driver carried it:
//   model.ts    the userland model: pods on loopback, a TCP balancer in the lab's process
//   kernel.ts   the kernel's data path: pods in network namespaces, kube-proxy-style
//               iptables DNAT rules, conntrack
// A third driver, a real cluster, is designed in docs/lab.md ("Data paths") and not built.

/** The kinds of Service the lab can put in front of the pods (--service). */
export const SERVICE_KINDS = ['model', 'iptables'] as const
export type ServiceKind = (typeof SERVICE_KINDS)[number]

/** Why a client connection was reset by the data path itself (the model only). */
export type ResetCause = 'refused' | 'no-endpoint' | 'backend-reset'

/** A pod's address as an EndpointSlice lists it. */
export interface Endpoint {
  pod: string
  host: string
  port: number
}

/** What the data path knows about one client connection, by the client's local port. */
export interface ConnectionInfo {
  /** The pod the connection was routed to. */
  pod: string | undefined
  /** Set when the data path itself reset the client connection (the model only). */
  resetCause: ResetCause | undefined
  closedAt: number | undefined
}

/** Where clients reach the Service. */
export interface ServiceAddress {
  host: string
  port: number
  /** What the driver did that the report should say (stale objects it removed). */
  notes?: string[]
}

/** Where a pod runs and listens, given by the driver before its process starts. */
export interface PodPlacement {
  /** The address the pod's listener is reached at (probes and endpoints). */
  host: string
  port: number
  /** A second port for probes on their own listener (--probe-port-env). */
  probePort: number | undefined
  /** The command line that runs `command` in the pod's sandbox. */
  wrap(command: string, args: string[]): { command: string; args: string[] }
}

export interface DataPath {
  readonly kind: ServiceKind
  /** Connections routed to each pod, for the report. */
  readonly connectionsPerPod: ReadonlyMap<string, number>
  /**
   * Builds the data path; rejects with a sentence naming what is missing when it cannot be
   * built (before any pod starts).
   */
  start(): Promise<ServiceAddress>
  /** One line for the report: what carries the traffic. */
  describe(): string
  /** Gives a new pod its sandbox and address; `probePort` asks for a second port. */
  placePod(name: string, probePort: boolean): Promise<PodPlacement>
  /** The pod's processes are gone: its sandbox goes, as the kubelet removes a pod sandbox. */
  releasePod(name: string): void
  /**
   * The endpoint controller's view changed: `serving` says whether the pod belongs in the
   * EndpointSlice (ready and not terminating). The data path applies the change after the
   * propagation delay (± jitter), in order.
   */
  publish(endpoint: Endpoint, serving: boolean): void
  /** Endpoints the data path routes new connections to now. */
  endpoints(): Endpoint[]
  /** True when every published change has reached the data path. */
  settled(): boolean
  /** Whether `pod` is in the data path. */
  routesTo(pod: string): boolean
  /** What happened to the client connection from `clientPort`, if the data path saw it. */
  connection(clientPort: number): ConnectionInfo | undefined
  /** Forgets old closed connections; called now and then. */
  prune(): void
  /** Removes everything the driver made: connections, sandboxes, rules. */
  close(): Promise<void>
}
