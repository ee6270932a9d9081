// The sandbox of script runs, set up once at startup: probes what works on this machine (bubblewrap, writable
// cgroups, root), picks the level, and hands spawnScript a prepared run (argv, identity, kill, cleanup) per run.
// Levels (DESIGN.md): none (process group + cgroup kill), rlimit (+ rlimits, pool uid, pids/memory cgroup,
// no-new-privs), bwrap (+ namespaces, no network, read-only view). It never decides when to kill a run.
import fs from 'node:fs'
import type {Config, Limits, Mount, SandboxLevel} from '../config.js'
import {createBwrapView, type BwrapUsers} from './bwrap-args.js'
import {createCgroupManager, type CgroupManager, type ResourceLimit} from './cgroup.js'
import {signalGroup, signalProcess} from './kill-tree.js'
import {prepareRun, type Identity, type Runner} from './prepare-run.js'
import {createFilesDir, ensureSharedNetns, findTools, probeRun, type Tools} from './probe.js'
import type {Rlimits} from './rlimits.js'
import {createUidPool, lookupUser, validateUidPoolIsUnused} from './uid-pool.js'

export type {ResourceLimit} from './cgroup.js'
export type {Rlimit, RlimitName, Rlimits} from './rlimits.js'
export {SHARED_NETNS_FILE} from './probe.js'

/** Strength order of the levels: a mount requiring `rlimit` is satisfied by `bwrap`. */
export const SANDBOX_STRENGTH: Readonly<Record<SandboxLevel, number>> = {none: 0, rlimit: 1, bwrap: 2}
/** Working directory of the probe run: visible in every level without a bind. */
const PROBE_CWD = '/usr'

export interface SandboxOptions {
  /** Use cgroups when they are writable. Default: `true`. */
  readonly cgroups?: boolean
  /**
   * Network isolation of bwrap runs: `per-run` lets bwrap create an empty network namespace per run; `shared`
   * enters one pre-created, empty namespace with `lo` down (root only) through nsenter. Measured here both cost
   * the same (~7 ms per bwrap run, ~220 runs/s with 4 at a time, sustained over 3000 runs), and a shared namespace
   * lets concurrent runs talk over abstract unix sockets, so per-run is the default. Default: `per-run`.
   */
  readonly network?: 'shared' | 'per-run'
  /** The bubblewrap executable. Default: `bwrap` from /usr/bin, /bin, /usr/sbin or /sbin. */
  readonly bwrapPath?: string
}

// What a run asks of the sandbox; spawnScript fills it from its SpawnSpec.
export interface SandboxRunSpec {
  readonly argv: readonly string[]
  readonly cwd: string
  readonly limits: Limits
  /** Directories and files the run may read, bound at their host paths (bwrap); cwd is always included. */
  readonly readOnlyPaths: readonly string[]
}

// One run, wrapped: what to spawn and as whom, and how to end it.
export interface PreparedRun {
  readonly command: string
  readonly args: readonly string[]
  /** Identity the spawned process starts with (libuv setgroups(0) + setgid + setuid); undefined = the server's. */
  readonly uid: number | undefined
  readonly gid: number | undefined
  /** SIGTERM first and SIGKILL after the grace (trusted levels); false = SIGKILL at once (bwrap). */
  readonly gracefulKill: boolean
  /**
   * The same run as steps for a spawner that forks itself (no sh): join `cgroupProcsFiles`, set `rlimits`,
   * setgroups(0) + setgid + setuid when set, then exec `argv` (setpriv | nsenter | bwrap … script) with the run's
   * stdout on `stdoutFd` (3: fd 1 is then /dev/null). command/args above are exactly these steps done by `sh -c`.
   */
  readonly steps: {
    readonly cgroupProcsFiles: readonly string[]
    readonly rlimits: Rlimits
    readonly uid: number | undefined
    readonly gid: number | undefined
    readonly argv: readonly string[]
    /** 3 for bwrap, whose own processes would keep fd 1 open after the script closed its stdout; else 1. */
    readonly stdoutFd: 1 | 3
  }
  /**
   * SIGKILLs the whole run now: the direct child `pid`, its process group, and every member of the run's cgroup
   * (or processes of its pool uid). bwrap with a cgroup: the namespace is killed first and the outer bwrap, which
   * then reaps the namespace's init and exits, only if it has not after BWRAP_MONITOR_EXIT_MS, so no orphan is
   * left for PID 1 to reap (Node as PID 1 of a container never would). `atExit`: everything at once, no timers.
   */
  killAll(pid: number | undefined, atExit?: boolean): void
  /** After the direct child was reaped: kills what is left, reads which limit was hit, removes the cgroup, frees the uid. */
  finish(exit: {code: number | null; signal: NodeJS.Signals | null}): Promise<ResourceLimit | null>
}

export interface Sandbox {
  readonly level: SandboxLevel
  /** Why bwrap is not used (null when it is, or when it was not considered because the level is `none`/`rlimit`). */
  readonly bwrapUnavailableReason: string | null
  /** One line for the startup message: the level and what it enforces here. */
  describe(): string
  prepareRun(spec: SandboxRunSpec): PreparedRun
  /** Removes this instance's cgroups and files; runs must have finished. */
  close(): Promise<void>
}

// Probes this machine and returns the sandbox for config.sandbox; throws when a requested level cannot work.
export async function createSandbox(config: Config, options: SandboxOptions = {}): Promise<Sandbox> {
  const root = process.getuid?.() === 0
  const tools = findTools(options.bwrapPath)
  // Root never runs scripts as root: a pool uid per run (rlimit, bwrap) or config.user (none, trusted scripts).
  const identity: Identity = !root ? {kind: 'server'} : config.sandbox === 'none' ? createUserIdentity(config) : createIdentity(config)
  const cgroups = options.cgroups === false ? null : await createCgroupManager()
  const usableCgroups = cgroups !== null && cgroups.controllers.length > 0 ? cgroups : null
  const closers: (() => Promise<void> | void)[] = [async () => { await cgroups?.close() }]
  try {
    let bwrapUnavailableReason: string | null = null
    if (config.sandbox === 'bwrap' || config.sandbox === 'auto') {
      const attempt = await tryBwrap(config, options, {tools, identity, cgroups: usableCgroups, root})
      if (attempt.runner !== null) {
        closers.push(attempt.close)
        return finishSandbox(attempt.runner, null, closers)
      }
      bwrapUnavailableReason = attempt.reason
      if (config.sandbox === 'bwrap') throw new Error(`sandbox: bwrap was requested but cannot run here: ${attempt.reason}`)
    }
    const level: SandboxLevel = config.sandbox === 'none' ? 'none' : 'rlimit'
    const runner: Runner = {level, tools, identity, cgroups: usableCgroups, bwrap: null}
    const failure = await probeRun((argv, cwd) => prepareRun(runner, {argv, cwd, limits: config.limits, readOnlyPaths: []}), PROBE_CWD)
    if (failure !== null) throw new Error(`sandbox: the ${level} level cannot run /bin/true here: ${failure}`)
    return finishSandbox(runner, bwrapUnavailableReason, closers)
  } catch (error) {
    for (const close of closers) await close()
    throw error
  }
}

// The behaviour without a sandbox object: own process group, the server's identity, no cgroup, no limits.
// Used by spawnScript when SpawnSpec.sandbox is omitted; createSandbox(config) with `none` is the real level.
export const PROCESS_GROUP_ONLY: Sandbox = {
  level: 'none',
  bwrapUnavailableReason: null,
  describe: () => 'sandbox: none (process group only; no cgroup, no limits)',
  prepareRun: (spec) => ({
    command: spec.argv[0]!,
    args: spec.argv.slice(1),
    uid: undefined,
    gid: undefined,
    gracefulKill: true,
    steps: {cgroupProcsFiles: [], rlimits: {}, uid: undefined, gid: undefined, argv: spec.argv, stdoutFd: 1},
    killAll(pid) {
      signalProcess(pid, 'SIGKILL')
      signalGroup(pid, 'SIGKILL')
    },
    finish: async () => null,
  }),
  async close() {},
}

// Throws when a mount requires a stronger level than the active one, so cgibox refuses to start (DESIGN.md).
export function validateSandboxRequirements(sandbox: Sandbox, mounts: readonly Mount[]): void {
  for (const mount of mounts) {
    if (mount.requireSandbox === null || SANDBOX_STRENGTH[sandbox.level] >= SANDBOX_STRENGTH[mount.requireSandbox]) continue
    const why = sandbox.bwrapUnavailableReason === null ? '' : ` (bwrap is unavailable: ${sandbox.bwrapUnavailableReason})`
    throw new Error(`sandbox: mount ${mount.prefix} requires sandbox level ${mount.requireSandbox}, ` +
      `but the active level is ${sandbox.level}${why}`)
  }
}

function finishSandbox(runner: Runner, bwrapUnavailableReason: string | null, closers: (() => Promise<void> | void)[]): Sandbox {
  return {
    level: runner.level,
    bwrapUnavailableReason,
    describe: () => describeRunner(runner, bwrapUnavailableReason),
    prepareRun: (spec) => prepareRun(runner, spec),
    async close() {
      for (const close of closers.reverse()) await close()
      closers.length = 0
    },
  }
}

// Builds the bwrap runner (view, optional shared netns) and proves it with a real run of /bin/true.
async function tryBwrap(config: Config, options: SandboxOptions,
  base: {tools: Tools; identity: Identity; cgroups: CgroupManager | null; root: boolean},
): Promise<{runner: Runner; close: () => void; reason: null} | {runner: null; close: null; reason: string}> {
  if (base.tools.bwrap === null) {
    return {runner: null, close: null, reason: `bwrap is not installed${options.bwrapPath ? ` at ${options.bwrapPath}` : ''} (Debian: apt install bubblewrap)`}
  }
  const filesDir = createFilesDir(base.root)
  const close = () => fs.rmSync(filesDir, {recursive: true, force: true})
  try {
    const view = createBwrapView(filesDir, bwrapUsers(base.identity))
    const wantShared = options.network === 'shared'
    let sharedNetns: string | null = null
    if (wantShared && base.root && base.tools.nsenter !== null && base.tools.unshare !== null && base.identity.kind !== 'server') {
      sharedNetns = await ensureSharedNetns(base.tools)
    }
    const runner: Runner = {level: 'bwrap', tools: base.tools, identity: base.identity, cgroups: base.cgroups, bwrap: {view, sharedNetns}}
    const failure = await probeRun((argv, cwd) => prepareRun(runner, {argv, cwd, limits: config.limits, readOnlyPaths: []}), PROBE_CWD)
    if (failure === null) return {runner, close, reason: null}
    close()
    return {runner: null, close: null, reason: failure}
  } catch (error) {
    close()
    return {runner: null, close: null, reason: (error as Error).message}
  }
}

// The uids a bwrap run can have, for the fake /etc/passwd.
function bwrapUsers(identity: Identity): BwrapUsers {
  if (identity.kind === 'pool') return {firstUid: identity.pool.start, count: identity.pool.size, gidOf: (uid) => uid}
  const uid = identity.kind === 'user' ? identity.uid : process.getuid?.() ?? 0
  const gid = identity.kind === 'user' ? identity.gid : process.getgid?.() ?? 0
  return {firstUid: uid, count: 1, gidOf: () => gid}
}

// Root runs scripts as a pool uid (one per live run), or as config.user when the pool is switched off (size 0).
function createIdentity(config: Config): Identity {
  if (config.uidPoolSize > 0) {
    validateUidPoolIsUnused(config.uidPoolStart, config.uidPoolSize)
    return {kind: 'pool', pool: createUidPool(config.uidPoolStart, config.uidPoolSize)}
  }
  return createUserIdentity(config)
}

// config.user, which must exist and must not be root.
function createUserIdentity(config: Config): Identity {
  const user = lookupUser(config.user)
  if (user === null) throw new Error(`sandbox: user "${config.user}" (option \`user\`) does not exist`)
  if (user.uid === 0) throw new Error('sandbox: scripts must not run as root; set the `user` option to an unprivileged user')
  return {kind: 'user', uid: user.uid, gid: user.gid}
}

// "sandbox: <level> (<what is enforced>; …)": the startup line.
function describeRunner(runner: Runner, bwrapUnavailableReason: string | null): string {
  const {level, identity, cgroups, bwrap} = runner
  const parts: string[] = []
  if (level === 'bwrap') {
    parts.push(bwrap?.sharedNetns ? 'no network (shared empty netns)' : 'no network (netns per run)',
      'PID/IPC/UTS/mount namespaces', 'read-only system view, private /tmp')
  }
  if (identity.kind === 'pool') parts.push(`uid per run from ${identity.pool.start}-${identity.pool.start + identity.pool.size - 1}`)
  else if (identity.kind === 'user') parts.push(`uid ${identity.uid} shared by all runs`)
  else parts.push(process.getuid?.() === 0 ? 'runs as root' : `runs as the server's uid ${process.getuid?.() ?? '?'}`)
  if (cgroups !== null) parts.push(`cgroup v1 ${cgroups.controllers.join('+')}${level === 'none' ? ' (whole-run kill only)' : ''}`)
  else if (level === 'bwrap') parts.push('no cgroups (whole-run kill by the PID namespace)')
  else if (identity.kind === 'pool') parts.push('no cgroups (whole-run kill by a sweep of the run\'s uid)')
  else parts.push('no cgroups (double-forked daemons escape the process-group kill)')
  if (level === 'none') parts.push('no resource limits: trusted scripts only')
  else {
    const rlimits = ['cpu', 'fsize', 'nofile', 'core']
    if (!cgroups?.controllers.includes('memory')) rlimits.push('data')
    if (!cgroups?.controllers.includes('pids') && identity.kind === 'pool') rlimits.push('nproc')
    parts.push(`rlimits ${rlimits.join('/')}`)
  }
  if (level === 'rlimit' && runner.tools.setpriv !== null) parts.push('no-new-privs')
  if (level !== 'bwrap' && bwrapUnavailableReason !== null) parts.push(`bwrap unavailable: ${bwrapUnavailableReason}`)
  return `sandbox: ${level} (${parts.join('; ')})`
}
