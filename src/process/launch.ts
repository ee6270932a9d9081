// The one function the CGI layer starts runs with: plan at the request's level (sandbox.ts), start and supervise
// (run.ts), and keep the live runs for shutdown.
import type {Readable} from 'node:stream'
import type {Limits, Location} from '../config.js'
import type {Launcher} from './launcher.js'
import type {WarmPython} from './run-plan.js'
import {startRun, type KillReason, type Run} from './run.js'
import type {Sandbox} from './sandbox.js'

export interface LaunchRequest {
  readonly argv: readonly string[]
  readonly env: Readonly<Record<string, string>>
  readonly cwd: string
  readonly limits: Limits
  /** The request's location (its level, user and paths), or null. */
  readonly location: Location | null
  /** Paths the run may read besides its cwd (bound read-only under bwrap). */
  readonly readPaths: readonly string[]
  /** The request body for stdin, or null. */
  readonly body: Readable | null
  /** A Python script that may start in a warm zygote; null: exec. */
  readonly warm?: WarmPython | null
  readonly clientGone?: AbortSignal
}

/** Plans and starts one run; throws when it cannot be planned (no uid free, a cgroup that cannot be made). */
export type Launch = (request: LaunchRequest) => Run

export interface Runs {
  readonly size: number
  /** Ends every live run for a reason. */
  killAll(reason: KillReason): void
  /** Resolves once no run is live (or after timeoutMs); true when none is. */
  whenIdle(timeoutMs: number): Promise<boolean>
}

// The launch function over one launcher and sandbox, with the registry of what it started.
export function createLaunch(launcher: Launcher, sandbox: Sandbox): {launch: Launch; runs: Runs} {
  const live = new Set<Run>()
  let idleWaiters: (() => void)[] = []
  const launch: Launch = (request) => {
    const planned = sandbox.plan(request)
    const run = startRun(launcher, planned, {limits: request.limits, body: request.body, clientGone: request.clientGone})
    live.add(run)
    void run.finished.then(() => {
      live.delete(run)
      if (live.size === 0) {
        for (const wake of idleWaiters) wake()
        idleWaiters = []
      }
    })
    return run
  }
  return {
    launch,
    runs: {
      get size() { return live.size },
      killAll(reason) {
        for (const run of live) run.kill(reason)
      },
      whenIdle(timeoutMs) {
        if (live.size === 0) return Promise.resolve(true)
        return new Promise((resolve) => {
          const timer = setTimeout(() => resolve(live.size === 0), timeoutMs)
          idleWaiters.push(() => {
            clearTimeout(timer)
            resolve(true)
          })
        })
      },
    },
  }
}
