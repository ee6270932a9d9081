// The rlimits of a run (set by the launcher between fork and exec) and what an exit status says about
// them. Per process, not per run: a run of many processes gets cpuSeconds each (only the wall deadline is total).
import os from 'node:os'
import type {Limits} from '../config.js'
import type {ResourceLimit} from './run-plan.js'

export type RlimitName = 'cpu' | 'fsize' | 'nofile' | 'core' | 'data' | 'nproc'
/** An rlimit in the kernel's units (seconds, bytes, count). */
export interface Rlimit {
  readonly soft: number
  readonly hard: number
}
export type Rlimits = Readonly<Partial<Record<RlimitName, Rlimit>>>

/** Signals after which a process was stopped by an rlimit. */
const RLIMIT_SIGNALS: Readonly<Record<string, ResourceLimit>> = {SIGXCPU: 'cpu', SIGXFSZ: 'file-size'}
/** The same as exit codes 128 + signal, as bwrap reports its command's death by signal. */
const RLIMIT_EXIT_CODES: Readonly<Record<number, ResourceLimit>> = {
  [128 + os.constants.signals.SIGXCPU]: 'cpu',
  [128 + os.constants.signals.SIGXFSZ]: 'file-size',
}

// The rlimits of a run. RLIMIT_AS is never set: V8 reserves large virtual ranges and `node -e 1` dies under a
// 512 MiB RLIMIT_AS; RLIMIT_DATA (only without a memory cgroup) leaves node and python working.
export function runRlimits(limits: Limits, use: {memory: boolean; processes: boolean; extraProcesses: number}): Rlimits {
  const rlimits: Partial<Record<RlimitName, Rlimit>> = {
    // SIGXCPU at the soft limit, SIGKILL one second later at the hard limit.
    cpu: {soft: limits.cpuSeconds, hard: limits.cpuSeconds + 1},
    fsize: same(limits.maxFileBytes),
    nofile: same(limits.maxOpenFiles),
    core: same(0),
  }
  if (use.memory) rlimits.data = same(limits.memoryBytes)
  if (use.processes) rlimits.nproc = same(limits.maxProcesses + use.extraProcesses)
  return rlimits
}

// The rlimit behind an exit status: SIGXCPU / SIGXFSZ, or (`codesAreSignals`: bwrap) exit code 128 + those.
export function rlimitFromExit(exit: {code: number | null; signal: NodeJS.Signals | null}, codesAreSignals: boolean): ResourceLimit | null {
  if (exit.signal !== null && RLIMIT_SIGNALS[exit.signal] !== undefined) return RLIMIT_SIGNALS[exit.signal]!
  if (codesAreSignals && exit.code !== null && RLIMIT_EXIT_CODES[exit.code] !== undefined) return RLIMIT_EXIT_CODES[exit.code]!
  return null
}

function same(value: number): Rlimit {
  return {soft: value, hard: value}
}
