// The data path drivers, by --service name.
import type { Clock } from '../clock.js'
import type { LabOptions } from '../options.js'
import type { Recorder } from '../recorder.js'
import { HaproxyIngress } from './haproxy.js'
import { KernelDriver } from './kernel.js'
import { ModelDriver } from './model.js'
import { NginxIngress } from './nginx.js'
import type { DataPath } from './types.js'

export function createDataPath(options: LabOptions, clock: Clock, recorder: Recorder): DataPath {
  const propagation = {
    clock,
    recorder,
    propagationDelayMs: options.propagationDelayMs,
    propagationJitterMs: options.propagationJitterMs,
  }
  const service =
    options.service === 'iptables'
      ? new KernelDriver({ ...propagation, podPort: KERNEL_POD_PORT })
      : new ModelDriver(propagation)
  if (options.ingress === 'nginx') return new NginxIngress(service, propagation)
  if (options.ingress === 'haproxy') return new HaproxyIngress(service, propagation)
  return service
}

/** The port every pod listens on in its own namespace, as a containerPort. */
export const KERNEL_POD_PORT = 8080
