// Turns one run request into a RunPlan for its level (what the launcher does between fork and exec) and the
// RunControl that ends and cleans it up: a uid from the pool, a cgroup, a private temp directory, rlimits, and under
// bwrap the namespaces and the read-only view. Which level a request gets is decided elsewhere (sandbox.ts).
import type {Limits, SandboxLevel} from '../config.js'
import {buildBwrapArgs, type BwrapView} from './bwrap-args.js'
import type {CgroupManager, RunCgroup} from './cgroup.js'
import {killUntilEmpty, listProcessesOfUid, signalProcess} from './kill-tree.js'
import {rlimitFromExit, runRlimits} from './rlimits.js'
import type {PlannedRun, ResourceLimit, RunPlan, WarmPython} from './run-plan.js'
import {removeFilesOfUid, type TempDirs} from './temp-files.js'
import type {UidPool} from './uid-pool.js'

/** Extra pids a bwrap run uses for itself (the outer bwrap and the namespace's init), added to maxProcesses. */
const BWRAP_OWN_PROCESSES = 2
/**
 * bwrap's own two processes keep their fds 0-2 open until the run ends, so a script that closes its stdout and
 * lingers would hold the response open until the deadline. The run's stdout therefore reaches bwrap as fd 3 (fd 1 is
 * /dev/null) and this sh, the first command inside, moves it back to fd 1. bwrap sets PWD; the run's environment is
 * exactly what cgibox built, so it goes.
 */
const RESTORE_STDOUT = 'unset PWD; exec 1>&3 3>&-; exec "$@"'

/** Who runs a script: the server's own uid (cgibox is not root), a uid of its own from the pool, or a fixed user. */
export type Identity =
  | {readonly kind: 'server'}
  | {readonly kind: 'pool'; readonly pool: UidPool}
  | {readonly kind: 'user'; readonly name: string; readonly uid: number; readonly gid: number}

// Everything one level needs per run, fixed at startup.
export interface LevelRunner {
  readonly level: SandboxLevel
  readonly sh: string
  readonly bwrap: {readonly path: string; readonly view: BwrapView} | null
  readonly cgroups: CgroupManager | null
  /** Private temp directories of runs outside bwrap; null where runs get none (the probe). */
  readonly temp: TempDirs | null
}

// One run as the caller asks for it.
interface RunRequest {
  readonly argv: readonly string[]
  readonly env: Readonly<Record<string, string>>
  readonly cwd: string
  readonly limits: Limits
  readonly identity: Identity
  /** Directories and files the run may read besides cwd (bwrap: bound read-only at their host paths). */
  readonly readPaths: readonly string[]
  /** Directories the run may write (bwrap: bound read-write at their host paths; elsewhere plain access). */
  readonly writePaths: readonly string[]
  /** A Python script that may run in a warm zygote (outside bwrap, when the environment allows it); null: exec. */
  readonly warm?: WarmPython | null
}

/**
 * The locale a zygote starts with (ZYGOTE_ENV in launcher.py: keep them equal); a run whose environment picks another
 * (or sets PYTHON*) is exec'd.
 */
const ZYGOTE_LOCALE = 'C.UTF-8'

// Whether a fresh python3 in this environment would start exactly as the zygote did: no PYTHON* variable (PYTHONPATH,
// PYTHONUNBUFFERED, PYTHONHASHSEED…), and the zygote's locale (it picks the encodings of the standard streams).
function isWarmEnvironment(env: Readonly<Record<string, string>>): boolean {
  if (env.LANG !== ZYGOTE_LOCALE || env.LC_ALL !== undefined || env.LC_CTYPE !== undefined) return false
  return !Object.keys(env).some((name) => name.startsWith('PYTHON'))
}

// Plans one run at the runner's level; throws (nothing held) when a uid or cgroup cannot be had.
export function planRun(runner: LevelRunner, request: RunRequest): PlannedRun {
  const {level} = runner
  const {limits, identity} = request
  const uid = identity.kind === 'pool' ? identity.pool.acquire() : identity.kind === 'user' ? identity.uid : null
  const gid = identity.kind === 'user' ? identity.gid : uid
  const poolUid = identity.kind === 'pool' ? uid : null
  let cgroup: RunCgroup | null = null
  let tempDir: string | null = null
  const release = () => {
    if (poolUid !== null && identity.kind === 'pool') identity.pool.release(poolUid)
  }
  let plan: RunPlan
  try {
    if (runner.cgroups !== null) {
      cgroup = runner.cgroups.createRun(level === 'none'
        ? {maxProcesses: null, memoryBytes: null}
        : {maxProcesses: limits.maxProcesses + (level === 'bwrap' ? BWRAP_OWN_PROCESSES : 0), memoryBytes: limits.memoryBytes})
    }
    if (level !== 'bwrap' && runner.temp !== null) tempDir = runner.temp.create(uid, gid)
    const controllers = runner.cgroups?.controllers ?? []
    const rlimits = level === 'none' ? {} : runRlimits(limits, {
      memory: !controllers.includes('memory'),
      // RLIMIT_NPROC counts the whole uid: only meaningful with a uid of the run's own and no pids cgroup.
      processes: !controllers.includes('pids') && poolUid !== null,
      extraProcesses: level === 'bwrap' ? BWRAP_OWN_PROCESSES : 0,
    })
    plan = {
      argv: runner.bwrap !== null ? bwrapArgv(runner.bwrap, runner.sh, request, uid, gid) : request.argv, // set at bwrap only
      env: tempDir === null ? request.env : {...request.env, TMPDIR: tempDir},
      cwd: request.cwd,
      uid,
      gid,
      cgroups: cgroup?.procsFiles ?? [],
      rlimits,
      noNewPrivs: level !== 'none',
      stdoutFd: level === 'bwrap' ? 3 : 1,
      // bwrap keeps exec: a zygote's forks would share its namespaces, and every bwrap run gets its own.
      warm: level !== 'bwrap' && request.warm && isWarmEnvironment(request.env) ? request.warm : null,
    }
  } catch (error) {
    cgroup?.discard()
    if (tempDir !== null) void runner.temp?.remove(tempDir).catch(() => {}) // else left for the next startup's sweep
    release()
    throw error
  }
  const startedTempState = poolUid !== null && level === 'rlimit' ? runner.temp?.snapshot() ?? null : null
  let cleaned: Promise<ResourceLimit | null> | null = null
  const members = () => cgroup !== null ? cgroup.members() : poolUid !== null ? listProcessesOfUid(poolUid) : []
  return {
    plan,
    exitCodesAreSignals: level === 'bwrap',
    control: {
      graceMs: level === 'bwrap' ? 0 : limits.killGraceMs,
      sweep() {
        for (const member of members()) signalProcess(member, 'SIGKILL')
      },
      cleanup(exit) {
        cleaned ??= (async () => {
          let empty = true
          let limit: ResourceLimit | null = null
          try {
            if (cgroup !== null) {
              empty = await cgroup.killAll()
              limit = cgroup.readResourceLimit()
              empty = (await cgroup.remove()) && empty
            } else if (poolUid !== null) {
              empty = await killUntilEmpty(() => listProcessesOfUid(poolUid))
            }
            if (tempDir !== null) await runner.temp?.remove(tempDir)
            // What a run of its own uid left in the shared temp directories goes with it (rlimit sees the host's).
            if (poolUid !== null && empty && startedTempState !== null) await removeFilesOfUid(poolUid, startedTempState)
          } catch {
            // Best effort; leftovers are removed at the next startup.
          }
          // A uid whose processes could not all be killed stays out of the pool rather than leak into the next run.
          if (empty) release()
          return limit ?? rlimitFromExit(exit, level === 'bwrap')
        })()
        return cleaned
      },
    },
  }
}

// bwrap … sh -c RESTORE_STDOUT argv: the run's own paths bound at their host paths, the rest of the view shared.
function bwrapArgv(bwrap: NonNullable<LevelRunner['bwrap']>, sh: string, request: RunRequest, uid: number | null,
  gid: number | null): string[] {
  return [bwrap.path, ...buildBwrapArgs(bwrap.view, {
    uid: uid ?? process.getuid?.() ?? 0,
    gid: gid ?? process.getgid?.() ?? 0,
    cwd: request.cwd,
    tmpBytes: request.limits.tmpBytes,
    readOnlyPaths: request.readPaths,
    writablePaths: request.writePaths,
    argv: [sh, '-c', RESTORE_STDOUT, 'cgibox-run', ...request.argv],
  })]
}

