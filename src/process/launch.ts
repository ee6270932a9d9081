// The one function the CGI layer starts runs with: plan at the request's level (sandbox.ts), start and supervise
// (run.ts), and keep every live run in a table (for the status page, metrics and shutdown). The table outlives a
// reload of the config: runs of the old config stay in it until they end.
import type {Readable} from 'node:stream'
import type {Launcher} from './launcher.js'
import {startRun, type KillReason, type Run} from './run.js'
import type {Sandbox, SandboxRequest} from './sandbox.js'

// What the sandbox plans (argv, environment, cwd, limits, location, paths, warm), plus what the run itself needs.
export interface LaunchRequest extends SandboxRequest {
  /** The request body for stdin, or null. */
  readonly body: Readable | null
  readonly clientGone?: AbortSignal
  /** What the status page shows of the run. */
  readonly label: {readonly requestId: string; readonly script: string; readonly client: string}
}

/** Plans and starts one run; throws when it cannot be planned (no uid free, a cgroup that cannot be made). */
export type Launch = (request: LaunchRequest) => Run

// A live run as the status page shows it.
export interface LiveRun {
  readonly requestId: string
  readonly script: string
  readonly client: string
  readonly level: string
  readonly uid: number | null
  readonly startedAt: number
  readonly run: Run
}

export interface RunTable {
  readonly size: number
  list(): readonly LiveRun[]
  /** Ends every live run for a reason. */
  killAll(reason: KillReason): void
  /** Resolves once no run is live (or after timeoutMs); true when none is. */
  whenIdle(timeoutMs: number): Promise<boolean>
  add(entry: LiveRun): void
  remove(entry: LiveRun): void
}

// An empty table of live runs.
export function createRunTable(): RunTable {
  const live = new Set<LiveRun>()
  let idleWaiters: (() => void)[] = []
  return {
    get size() { return live.size },
    list: () => [...live],
    killAll(reason) {
      for (const entry of live) entry.run.kill(reason)
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
    add(entry) {
      live.add(entry)
    },
    remove(entry) {
      live.delete(entry)
      if (live.size > 0) return
      for (const wake of idleWaiters) wake()
      idleWaiters = []
    },
  }
}

// The launch function over one launcher and sandbox; what it starts goes into `table` until it is over.
export function createLaunch(launcher: Launcher, sandbox: Sandbox, table: RunTable, onStart: (run: Run) => void = () => {}): Launch {
  return (request) => {
    const planned = sandbox.plan(request)
    const run = startRun(launcher, planned, {limits: request.limits, body: request.body, clientGone: request.clientGone})
    const entry: LiveRun = {
      ...request.label, level: sandbox.levelOf(request.location), uid: planned.plan.uid, startedAt: Date.now(), run,
    }
    table.add(entry)
    onStart(run)
    void run.released.then(() => table.remove(entry))
    return run
  }
}
