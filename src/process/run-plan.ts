// What starting one run takes, as plain data: the sandbox level builds it (sandbox.ts), the launcher carries it out
// between fork and exec (launcher.py), run.ts supervises the result. No module here decides policy by itself.
import type {Rlimits} from './rlimits.js'


/** A limit the kernel enforced on a run, as far as cgibox can tell afterwards. */
export type ResourceLimit = 'memory' | 'processes' | 'cpu' | 'file-size'

// The exec of one run and the steps before it, in the launcher's order: session, stdio, cgroups, rlimits, identity,
// parent-death signal, no-new-privs, cwd, close every other descriptor, exec.
export interface RunPlan {
  /** Absolute program and its arguments (bwrap … script under bwrap); never words from the query string. */
  readonly argv: readonly string[]
  /** The whole environment of the run; nothing of the server's is added. Never put into any argv. */
  readonly env: Readonly<Record<string, string>>
  readonly cwd: string
  /** Identity after setgroups([]) + setgid + setuid; null keeps the launcher's (the server's). */
  readonly uid: number | null
  readonly gid: number | null
  /** cgroup.procs files the run joins (as the launcher's user, before it drops privileges). */
  readonly cgroups: readonly string[]
  readonly rlimits: Rlimits
  /** PR_SET_NO_NEW_PRIVS: setuid binaries cannot raise the run's privileges. */
  readonly noNewPrivs: boolean
  /** 3 under bwrap: stdout rides on fd 3 past bwrap's own processes (fd 1 is /dev/null); else 1. */
  readonly stdoutFd: 1 | 3
  /**
   * Run this Python script in a warm zygote of its interpreter instead of exec'ing argv (which stays the fallback);
   * null: exec. Only for `interpreter script` with nothing else that a fresh python3 would read differently.
   */
  readonly warm: WarmPython | null
}

/** A Python script and the interpreter a fresh run would start it with. */
export interface WarmPython {
  /** Absolute path of the python3 the run would exec. */
  readonly interpreter: string
  readonly script: string
  /** The argv[0] it would get (`python3` from `#!/usr/bin/env python3`): sys.orig_argv[0] of a fresh run. */
  readonly argv0: string
}

// How a run is ended and cleaned up: decided by the level, carried out by run.ts.
export interface RunControl {
  /** SIGTERM first and SIGKILL after this many ms (trusted levels); 0 = SIGKILL at once (bwrap). */
  readonly graceMs: number
  /** SIGKILLs every process of the run the sandbox can find beyond the direct child (cgroup members, a uid). */
  sweep(): void
  /**
   * After the direct child was reaped: kills what is left, reads which limit the kernel enforced, removes the
   * cgroup, the run's temp files and frees its uid. Never rejects.
   */
  cleanup(exit: {readonly code: number | null; readonly signal: NodeJS.Signals | null}): Promise<ResourceLimit | null>
}

// A planned run: what to launch and how to end it.
export interface PlannedRun {
  readonly plan: RunPlan
  readonly control: RunControl
  /** Whether exit codes above 128 mean death by signal 128 + N (bwrap reports its command's death so). */
  readonly exitCodesAreSignals: boolean
}
