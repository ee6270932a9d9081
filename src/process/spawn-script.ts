// Starts one script run as a child process and ends it: the only module that spawns scripts.
// The whole run (process group, later a PID namespace) is killed by kill(); exited resolves once it is reaped.
import {spawn} from 'node:child_process'
import type {Readable, Writable} from 'node:stream'
import type {Limits} from '../config.js'

export type KillReason = 'deadline' | 'output-cap' | 'client-gone' | 'shutdown' | 'stdout-closed' | 'body-error' | 'error'

export interface SpawnSpec {
  /** Program and arguments: the interpreter (if any) and the script; never words from the query string. */
  readonly argv: readonly string[]
  readonly env: Readonly<Record<string, string>>
  readonly cwd: string
  readonly limits: Limits
}

export interface ExitStatus {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface ScriptProcess {
  readonly pid: number
  readonly stdin: Writable
  readonly stdout: Readable
  readonly stderr: Readable
  /** Resolves when the run's direct child has exited and been reaped (never rejects). */
  readonly exited: Promise<ExitStatus>
  /** The first reason the run was killed for, or null. */
  readonly killReason: KillReason | null
  /** Kills the whole run; idempotent, the first reason wins. */
  kill(reason: KillReason): void
}

// Spawns the script in its own process group with exactly the given environment.
export function spawnScript(spec: SpawnSpec): ScriptProcess {
  const [command, ...args] = spec.argv
  if (command === undefined) throw new TypeError('spawnScript needs a command')
  const child = spawn(command, args, {
    cwd: spec.cwd,
    env: spec.env,
    detached: true, // own process group: kill(-pid) reaches its descendants
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  let killReason: KillReason | null = null
  let graceTimer: NodeJS.Timeout | undefined
  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('error', () => resolve({code: 127, signal: null}))
    child.once('exit', (code, signal) => {
      // The leader is gone; anything left in its group dies now (no orphans keep running).
      signalGroup(child.pid, 'SIGKILL')
      if (graceTimer) clearTimeout(graceTimer)
      resolve({code, signal})
    })
  })
  return {
    get pid() { return child.pid ?? -1 },
    stdin: child.stdin!,
    stdout: child.stdout!,
    stderr: child.stderr!,
    exited,
    get killReason() { return killReason },
    kill(reason: KillReason) {
      if (killReason !== null) return
      killReason = reason
      signalGroup(child.pid, 'SIGTERM')
      graceTimer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), spec.limits.killGraceMs)
      graceTimer.unref()
    },
  }
}

function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return
  try {
    process.kill(-pid, signal)
  } catch {
    // ESRCH: the group is already gone.
  }
}
