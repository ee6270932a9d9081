// Turns one run into what is spawned: a per-run uid, a per-run cgroup, and the argv
// `sh -c '<join cgroup> && <ulimits>; exec "$@"'` → setpriv (rlimit) | [nsenter] bwrap (bwrap) → script;
// and how to kill all of it and clean up afterwards. The level was chosen by sandbox.ts.
import type {SandboxLevel} from '../config.js'
import {buildBwrapArgs, type BwrapView} from './bwrap-args.js'
import type {CgroupManager, ResourceLimit, RunCgroup} from './cgroup.js'
import {killUntilEmpty, listProcessesOfUid, signalGroup, signalProcess} from './kill-tree.js'
import type {Tools} from './probe.js'
import {rlimitFromExit, runRlimits, ulimitCommands, type Rlimits} from './rlimits.js'
import type {PreparedRun, SandboxRunSpec} from './sandbox.js'
import type {UidPool} from './uid-pool.js'

/** Extra pids a bwrap run uses for itself (the outer bwrap and the namespace's init), added to maxProcesses. */
export const BWRAP_OWN_PROCESSES = 2
/** How long the outer bwrap may take to exit after its namespace was killed before it is SIGKILLed too. */
const BWRAP_MONITOR_EXIT_MS = 200
/**
 * bwrap's own two processes (the outer monitor and the namespace's init) keep their fds 0-2 open until the run
 * ends, so a script that closes its stdout and lingers would hold the response open until the deadline. The run's
 * stdout therefore reaches bwrap as fd 3 (fd 1 is /dev/null): both bwrap processes close fds above 2, and this sh,
 * the first command inside, moves it back to fd 1.
 */
const STDOUT_FD = 3
const RESTORE_STDOUT = `exec 1>&${STDOUT_FD} ${STDOUT_FD}>&-; exec "$@"`

export type Identity =
  | {readonly kind: 'server'}
  | {readonly kind: 'pool'; readonly pool: UidPool}
  | {readonly kind: 'user'; readonly uid: number; readonly gid: number}

// Everything a sandbox level needs per run, fixed at startup.
export interface Runner {
  readonly level: SandboxLevel
  readonly tools: Tools
  readonly identity: Identity
  readonly cgroups: CgroupManager | null
  readonly bwrap: {readonly view: BwrapView; readonly sharedNetns: string | null} | null
}

// Wraps one run: joins its cgroup and sets rlimits in a tiny sh before anything of the script runs, then drops
// privileges and (bwrap) enters the namespaces. Order: sh (cgroup, ulimit) → setpriv | nsenter → bwrap → argv.
export function prepareRun(runner: Runner, spec: SandboxRunSpec): PreparedRun {
  const {level, identity, bwrap} = runner
  const {limits} = spec
  const uid = identity.kind === 'pool' ? identity.pool.acquire() : identity.kind === 'user' ? identity.uid : null
  const gid = identity.kind === 'user' ? identity.gid : uid
  const perRunUid = identity.kind === 'pool' ? uid : null
  const sharedNetns = bwrap?.sharedNetns ?? null
  // The sh that joins the cgroup runs as the script's uid, except when nsenter (root only) must follow it.
  const spawnUid = uid !== null && sharedNetns === null ? uid : undefined
  const spawnGid = spawnUid !== undefined && gid !== null ? gid : undefined
  const releaseUid = () => {
    if (perRunUid !== null && identity.kind === 'pool') identity.pool.release(perRunUid)
  }
  let cgroup: RunCgroup | null = null
  let wrapped: ReturnType<typeof wrapArgv>
  try {
    if (runner.cgroups !== null) {
      cgroup = runner.cgroups.createRun(level === 'none'
        ? {maxProcesses: null, memoryBytes: null}
        : {maxProcesses: limits.maxProcesses + (level === 'bwrap' ? BWRAP_OWN_PROCESSES : 0), memoryBytes: limits.memoryBytes},
      spawnUid ?? null)
    }
    wrapped = wrapArgv(runner, spec, {uid, gid, perRunUid, sharedNetns, cgroup})
  } catch (error) {
    void cgroup?.remove()
    releaseUid()
    throw error
  }
  let finished = false
  let monitorTimer: NodeJS.Timeout | undefined
  return {
    command: wrapped.command,
    args: wrapped.args,
    uid: spawnUid,
    gid: spawnGid,
    steps: {
      cgroupProcsFiles: cgroup?.procsFiles ?? [], rlimits: wrapped.rlimits, uid: spawnUid, gid: spawnGid, argv: wrapped.inner,
      stdoutFd: wrapped.stdoutFd,
    },
    gracefulKill: level !== 'bwrap',
    killAll(pid, atExit = false) {
      const members = cgroup !== null ? cgroup.members() : perRunUid !== null ? listProcessesOfUid(perRunUid) : []
      const namespace = members.filter((member) => member !== pid)
      if (level === 'bwrap' && cgroup !== null && !atExit && pid !== undefined && namespace.length > 0) {
        for (const member of namespace) signalProcess(member, 'SIGKILL')
        monitorTimer ??= setTimeout(() => {
          signalProcess(pid, 'SIGKILL')
          signalGroup(pid, 'SIGKILL')
        }, BWRAP_MONITOR_EXIT_MS)
        monitorTimer.unref()
        return
      }
      signalProcess(pid, 'SIGKILL')
      signalGroup(pid, 'SIGKILL')
      for (const member of members) signalProcess(member, 'SIGKILL')
    },
    async finish(exit) {
      if (finished) return null
      finished = true
      clearTimeout(monitorTimer)
      let empty = true
      let limit: ResourceLimit | null = null
      if (cgroup !== null) {
        empty = await cgroup.killAll()
        limit = cgroup.readResourceLimit()
        empty = (await cgroup.remove()) && empty
      } else if (perRunUid !== null) {
        empty = await killUntilEmpty(() => listProcessesOfUid(perRunUid))
      }
      // A uid whose processes could not all be killed stays out of the pool rather than leak into the next run.
      if (empty) releaseUid()
      return limit ?? rlimitFromExit(exit, level === 'bwrap')
    },
  }
}

// The argv of a run: `sh -c '<join cgroups> && <ulimits>; exec "$@"'` in front of setpriv (rlimit), nsenter + bwrap
// or bwrap alone, in front of the script's argv; no sh at all when there is nothing to set up. bwrap: the outer sh
// hands bwrap the stdout pipe as fd 3 and an sh inside moves it back to fd 1 (STDOUT_FD).
function wrapArgv(runner: Runner, spec: SandboxRunSpec, run: {
  uid: number | null; gid: number | null; perRunUid: number | null; sharedNetns: string | null; cgroup: RunCgroup | null
}): {command: string; args: string[]; inner: string[]; rlimits: Rlimits; stdoutFd: 1 | 3} {
  const {level, tools, bwrap} = runner
  const controllers = runner.cgroups?.controllers ?? []
  const rlimits = level === 'none' ? {} : runRlimits(spec.limits, {
    memory: !controllers.includes('memory'),
    // RLIMIT_NPROC counts the whole uid: only meaningful with a per-run uid and no pids cgroup.
    processes: !controllers.includes('pids') && run.perRunUid !== null,
    extraProcesses: level === 'bwrap' ? BWRAP_OWN_PROCESSES : 0,
  })
  let inner: string[]
  if (level === 'bwrap' && bwrap !== null && tools.bwrap !== null) {
    const bwrapArgv = [tools.bwrap, ...buildBwrapArgs(bwrap.view, {
      uid: run.uid ?? process.getuid?.() ?? 0,
      gid: run.gid ?? process.getgid?.() ?? 0,
      cwd: spec.cwd,
      tmpBytes: spec.limits.tmpBytes,
      readOnlyPaths: spec.readOnlyPaths,
      unshareNet: run.sharedNetns === null,
      argv: [tools.sh, '-c', RESTORE_STDOUT, 'cgibox-stdout', ...spec.argv],
    })]
    inner = run.sharedNetns !== null && tools.nsenter !== null && run.uid !== null
      ? [tools.nsenter, `--net=${run.sharedNetns}`, '-S', String(run.uid), '-G', String(run.gid), '--', ...bwrapArgv]
      : bwrapArgv
  } else if (level === 'rlimit' && tools.setpriv !== null) {
    // no-new-privs: setuid binaries (su, mount, newgrp, …) cannot raise privileges; pdeathsig: dies with the server.
    inner = [tools.setpriv, '--no-new-privs', '--pdeathsig', 'KILL', '--', ...spec.argv]
  } else {
    inner = [...spec.argv]
  }
  const stdoutFd = level === 'bwrap' ? STDOUT_FD : 1
  const setup = [...(run.cgroup?.procsFiles ?? []).map((file) => `echo $$ > ${shellQuote(file)}`), ...ulimitCommands(rlimits)]
  if (setup.length === 0 && stdoutFd === 1) return {command: inner[0]!, args: inner.slice(1), inner, rlimits, stdoutFd}
  const moveStdout = stdoutFd === 1 ? '' : ` ${stdoutFd}>&1 1>/dev/null`
  // unset PWD: sh exports it, and a script's environment is exactly what cgibox built.
  const script = `{ ${setup.join(' && ') || ':'}; } || { echo 'cgibox: could not apply the sandbox limits' >&2; exit 125; }; unset PWD; exec "$@"${moveStdout}`
  return {command: tools.sh, args: ['-c', script, 'cgibox-run', ...inner], inner, rlimits, stdoutFd}
}

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`
}
