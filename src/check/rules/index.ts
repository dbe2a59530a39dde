// Every rule, in the order docs/rules.md lists them.
import { drainDelayShort, noDrainDelay, noPrestopDelay } from './drain.js'
import { invalidField } from './fields.js'
import {
  appTimeoutExceedsGrace,
  gracePeriodTooShort,
  gracePeriodZero,
  prestopExceedsGrace,
} from './grace.js'
import { prestopExecNoShell, prestopExecSleep, prestopUnknownDuration } from './prestop.js'
import {
  livenessSameAsReadiness,
  noReadinessProbe,
  probePortMismatch,
  probePortUndefined,
  readinessPath,
  readinessSlowerThanDrain,
} from './probes.js'
import {
  maxUnavailableAll,
  noSpread,
  pdbBlocksEviction,
  pdbNotRolloutGuard,
  progressDeadlineTooShort,
  quorumNoPdb,
  recreateStrategy,
  singleReplica,
} from './rollout.js'
import { envValueUnknown, lameduckEnvInvalid } from './settings.js'
import { npmStart, pm2KillTimeout, shellCommand, stopSignalUnhandled } from './signals.js'
import type { Rule } from './types.js'

export const RULES: readonly Rule[] = [
  // the termination timeline
  gracePeriodTooShort,
  prestopExceedsGrace,
  gracePeriodZero,
  appTimeoutExceedsGrace,
  noDrainDelay,
  noPrestopDelay,
  drainDelayShort,
  prestopExecNoShell,
  prestopExecSleep,
  prestopUnknownDuration,
  // the stop signal
  npmStart,
  shellCommand,
  pm2KillTimeout,
  stopSignalUnhandled,
  // rollouts
  recreateStrategy,
  maxUnavailableAll,
  progressDeadlineTooShort,
  singleReplica,
  pdbBlocksEviction,
  pdbNotRolloutGuard,
  quorumNoPdb,
  noSpread,
  // probes
  noReadinessProbe,
  livenessSameAsReadiness,
  readinessPath,
  readinessSlowerThanDrain,
  probePortUndefined,
  probePortMismatch,
  // lameduck settings
  lameduckEnvInvalid,
  envValueUnknown,
  // the manifest itself
  invalidField,
]

export const RULE_IDS: ReadonlySet<string> = new Set(RULES.map((rule) => rule.id))

export type { Finding, Report, Rule, RuleContext, Scope, Severity } from './types.js'
export { SCOPE_TEXT, SEVERITIES, severityRank } from './types.js'
