// Starts one script run as a child process inside the sandbox and ends it: the only module that spawns scripts.
// kill() ends the whole run (process group, PID namespace, cgroup); exited resolves once the direct child is reaped
// and nothing of the run is left. It does not decide when to kill (run-cgi.ts does) and never buffers output.
import {spawn} from 'node:child_process'
import os from 'node:os'
import type {Readable, Writable} from 'node:stream'
import type {Limits} from '../config.js'
import {signalGroup} from './kill-tree.js'
import type {Spawner} from './spawner.js'
import {PROCESS_GROUP_ONLY, type PreparedRun, type ResourceLimit, type Sandbox} from './sandbox.js'

export type {ResourceLimit} from './sandbox.js'
export type KillReason = 'deadline' | 'output-cap' | 'client-gone' | 'shutdown' | 'error'

export interface SpawnSpec {
  /** Program and arguments: the interpreter (if any) and the script; never words from the query string. */
  readonly argv: readonly string[]
  /** The whole environment of the script (nothing of the server's is added); never put into any argv. */
  readonly env: Readonly<Record<string, string>>
  /** Working directory; bound read-only at its host path in the bwrap level. */
  readonly cwd: string
  readonly limits: Limits
  /**
   * The sandbox created once at startup (createSandbox). Default: PROCESS_GROUP_ONLY, i.e. no sandbox at all:
   * only for code that has not been wired to createSandbox yet.
   */
  readonly sandbox?: Sandbox
  /**
   * Directories (or files) the script may read besides cwd, e.g. the document root, the transpile cache of .ts
   * pages; bound read-only at their host paths in the bwrap level. Absolute argv entries are bound automatically.
   * Default: `[]`.
   */
  readonly readOnlyPaths?: readonly string[]
  /** The spawner helper (spawner.ts) when the server runs one; default: fork this process (child_process). */
  readonly spawner?: Spawner | null
}

/** What spawnScript needs of a child: a ChildProcess, or a run of the spawner (spawner.ts). */
type Child = {
  once(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): unknown
  once(event: 'error' | 'spawn', listener: () => void): unknown
  readonly pid?: number | undefined
  readonly stdin: Writable | null
  readonly stdout: Readable | null
  readonly stderr: Readable | null
}

export interface ExitStatus {
  readonly code: number | null
  /** The signal the script died of. bwrap reports that as exit code 128 + signal, which is turned back into it. */
  readonly signal: NodeJS.Signals | null
  /** The limit the kernel enforced on the run (memory cgroup OOM kill, pids limit hit, RLIMIT_CPU/FSIZE), or null. */
  readonly resourceLimit: ResourceLimit | null
}

export interface ScriptProcess {
  readonly pid: number
  readonly stdin: Writable
  readonly stdout: Readable
  readonly stderr: Readable
  /** Resolves when the run's direct child has exited and been reaped and the rest of the run is killed (never rejects). */
  readonly exited: Promise<ExitStatus>
  /** Resolves as soon as the direct child has exited, before the rest of the run is cleaned up (never rejects). */
  readonly ended: Promise<{readonly code: number | null; readonly signal: NodeJS.Signals | null}>
  /** The first reason the run was killed for while it was running, or null. */
  readonly killReason: KillReason | null
  /** Kills the whole run; idempotent, the first reason wins. Trusted levels: SIGTERM, SIGKILL after killGraceMs. */
  kill(reason: KillReason): void
}

/** Hard kills of the live runs, for the process exit hook. */
const LIVE_RUNS = new Set<() => void>()
let exitHookInstalled = false

// Spawns the script in its own process group, wrapped by the sandbox, with exactly the given environment.
export function spawnScript(spec: SpawnSpec): ScriptProcess {
  if (spec.argv[0] === undefined) throw new TypeError('spawnScript needs a command')
  const sandbox = spec.sandbox ?? PROCESS_GROUP_ONLY
  const prepared = sandbox.prepareRun({
    argv: spec.argv, cwd: spec.cwd, limits: spec.limits, readOnlyPaths: spec.readOnlyPaths ?? [],
  })
  let child: Child
  try {
    const {steps} = prepared
    // The spawner forks a small helper instead of this process and does the steps itself (no sh in between).
    child = spec.spawner?.alive
      ? spec.spawner.spawn({
        argv: steps.argv, env: spec.env, cwd: spec.cwd, uid: steps.uid, gid: steps.gid,
        cgroups: steps.cgroupProcsFiles, rlimits: steps.rlimits, stdoutFd: steps.stdoutFd,
      })
      : spawn(prepared.command, prepared.args, {
        cwd: spec.cwd,
        env: spec.env,
        detached: true, // own process group (and session): kill(-pid) reaches the wrappers and trusted descendants
        stdio: ['pipe', 'pipe', 'pipe'],
        uid: prepared.uid,
        gid: prepared.gid,
      })
  } catch (error) {
    void prepared.finish({code: null, signal: null})
    throw error
  }
  installExitHook()
  let killReason: KillReason | null = null
  let running = true
  let graceTimer: NodeJS.Timeout | undefined
  const killHard = () => prepared.killAll(child.pid)
  const killAtExit = () => prepared.killAll(child.pid, true)
  LIVE_RUNS.add(killAtExit)
  let resolveEnded: (exit: {code: number | null; signal: NodeJS.Signals | null}) => void = () => {}
  const ended = new Promise<{code: number | null; signal: NodeJS.Signals | null}>((resolve) => {
    resolveEnded = resolve
  })
  const exited = new Promise<ExitStatus>((resolve) => {
    const onEnd = (code: number | null, signal: NodeJS.Signals | null) => {
      if (!running) return
      running = false
      if (graceTimer) clearTimeout(graceTimer)
      // The leader is gone; whatever is left of the run dies now (no orphans keep running).
      signalGroup(child.pid, 'SIGKILL')
      const exit = sandbox.level === 'bwrap' ? signalFromBwrapExit(code, signal) : {code, signal}
      resolveEnded(exit)
      void finishRun(prepared, exit.code, exit.signal).then((status) => {
        LIVE_RUNS.delete(killAtExit)
        resolve(status)
      })
    }
    child.once('error', () => onEnd(127, null))
    child.once('exit', onEnd)
  })
  // Through the spawner the pid arrives a moment after spawnScript returned: a kill asked for before it is done now.
  child.once('spawn', () => {
    if (killReason !== null && running) {
      if (prepared.gracefulKill) signalGroup(child.pid, 'SIGTERM')
      else killHard()
    }
  })
  return {
    get pid() { return child.pid ?? -1 },
    stdin: child.stdin!,
    stdout: child.stdout!,
    stderr: child.stderr!,
    exited,
    ended,
    get killReason() { return killReason },
    kill(reason: KillReason) {
      // A run whose direct child has exited was not killed: its record must not name a reason (run-cgi cuts off a
      // response after the run died, e.g. of the memory limit, and its close handler then calls kill).
      if (killReason !== null || !running) return
      killReason = reason // recorded before the kill, so whoever sees the exit sees the reason (execa ??=)
      if (!prepared.gracefulKill) {
        killHard()
        return
      }
      signalGroup(child.pid, 'SIGTERM')
      graceTimer = setTimeout(killHard, spec.limits.killGraceMs)
      graceTimer.unref()
    },
  }
}

async function finishRun(prepared: PreparedRun, code: number | null, signal: NodeJS.Signals | null): Promise<ExitStatus> {
  let resourceLimit: ResourceLimit | null = null
  try {
    resourceLimit = await prepared.finish({code, signal})
  } catch {
    // Cleanup is best effort; leftovers are removed at the next startup.
  }
  return {code, signal, resourceLimit}
}

// bwrap exits with 128 + N when its command died of signal N (as shells report it): a crash or an OOM kill of the
// script must read as a death by signal at every level, so that a response it had started is cut off.
function signalFromBwrapExit(code: number | null, signal: NodeJS.Signals | null): {code: number | null; signal: NodeJS.Signals | null} {
  if (signal !== null || code === null || code <= 128) return {code, signal}
  const name = Object.entries(os.constants.signals).find(([, number]) => number === code - 128)?.[0]
  return name === undefined ? {code, signal} : {code: null, signal: name as NodeJS.Signals}
}

// On process exit (normal end, uncaught exception) every live run is SIGKILLed; bwrap runs also die with their
// parent (--die-with-parent) when the server is SIGKILLed, and the rest is swept at the next startup.
function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    for (const killAtExit of LIVE_RUNS) killAtExit()
  })
}
