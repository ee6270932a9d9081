// The sandbox of script runs, set up once at startup: finds what works on this machine (bubblewrap, writable cgroups,
// root), proves every level the config uses with a real run of /bin/true through the launcher, and plans each run at
// its location's level and identity (plan-run.ts). Levels (README "Security model"): none (process group + tracking
// cgroup), rlimit (+ rlimits, a uid per run, pids/memory cgroup, no-new-privs, private TMPDIR), bwrap (+ namespaces,
// no network, read-only view). It never decides when to kill a run (run.ts does).
import fs from 'node:fs'
import path from 'node:path'
import type {Config, Limits, Location, SandboxLevel} from '../config.js'
import {createBwrapView, type BwrapUsers} from './bwrap-args.js'
import {createCgroupManager, type CgroupManager} from './cgroup.js'
import type {Launcher} from './launcher.js'
import {planRun, type Identity, type LevelRunner} from './plan-run.js'
import type {PlannedRun, WarmPython} from './run-plan.js'
import {startRun} from './run.js'
import type {RuntimeDir} from './runtime-dir.js'
import {createTempDirs} from './temp-files.js'
import {createUidPool, lookupUser, validateUidPoolIsUnused} from './uid-pool.js'
import {isExecutableFileSync} from '../executable.js'

/** Strength order of the levels: a location requiring `rlimit` is satisfied by `bwrap`. */
const SANDBOX_STRENGTH: Readonly<Record<SandboxLevel, number>> = {none: 0, rlimit: 1, bwrap: 2}
/** Working directory of the probe runs: visible in every level without a bind. */
const PROBE_CWD = '/usr'
const PROBE_TIMEOUT_MS = 10_000
/** Where the tools are looked up; never the PATH cgibox was started with. */
const TOOL_DIRS = ['/usr/bin', '/bin', '/usr/sbin', '/sbin']

export interface SandboxOptions {
  /** Use cgroups when they are writable. Default: `true`. */
  readonly cgroups?: boolean
  /** The bubblewrap executable. Default: `bwrap` from /usr/bin, /bin, /usr/sbin or /sbin. */
  readonly bwrapPath?: string
}

// What a run asks of the sandbox.
export interface SandboxRequest {
  readonly argv: readonly string[]
  readonly env: Readonly<Record<string, string>>
  readonly cwd: string
  readonly limits: Limits
  /** The location the request falls under, or null for the server's defaults. */
  readonly location: Location | null
  /** Paths every run may read besides its cwd (the document root). */
  readonly readPaths: readonly string[]
  /** A Python script that may run warm (the location and the level permitting); null: exec. */
  readonly warm?: WarmPython | null
}

export interface Sandbox {
  /** The level of runs outside any location with a level of its own (`auto` resolved). */
  readonly level: SandboxLevel
  /** Why bwrap is not used by default (null when it is, or when it was not considered). */
  readonly bwrapUnavailableReason: string | null
  /** The level a location's runs get. */
  levelOf(location: Location | null): SandboxLevel
  /** One line for the startup message: a level and what it enforces here. */
  describe(level?: SandboxLevel): string
  /** Plans one run: its argv wrapped for its level, its identity, cgroup and temp directory. */
  plan(request: SandboxRequest): PlannedRun
  /** Removes this instance's cgroups and files; runs must have ended. */
  close(): Promise<void>
}

interface Dependencies {
  readonly launcher: Launcher
  readonly runtime: RuntimeDir
}

// Probes this machine and returns the sandbox for the config; throws when a level the config needs cannot work here.
export async function createSandbox(config: Config, deps: Dependencies, options: SandboxOptions = {}): Promise<Sandbox> {
  const root = process.getuid?.() === 0
  const sh = findTool('sh')
  if (sh === null) throw new Error('sandbox: /bin/sh not found')
  const bwrapPath = options.bwrapPath === undefined ? findTool('bwrap') : isExecutableFileSync(options.bwrapPath) ? options.bwrapPath : null
  const identities = createIdentities(config, root)
  const cgroups = options.cgroups === false ? null : await createCgroupManager()
  const usableCgroups = cgroups !== null && cgroups.controllers.length > 0 ? cgroups : null
  const temp = createTempDirs(deps.runtime.tempRoot)
  try {
    const wanted = new Set<SandboxLevel>(config.locations.flatMap((location) => location.sandbox === null ? [] : [location.sandbox]))
    if (config.sandbox !== 'auto') wanted.add(config.sandbox)
    const runners = new Map<SandboxLevel, LevelRunner>()
    let bwrapUnavailableReason: string | null = null
    if (config.sandbox === 'auto' || wanted.has('bwrap')) {
      const attempt = await tryBwrap(bwrapPath, {sh, cgroups: usableCgroups, temp, deps, identities, config, bwrapOption: options.bwrapPath})
      if (attempt.runner !== null) runners.set('bwrap', attempt.runner)
      else {
        bwrapUnavailableReason = attempt.reason
        if (wanted.has('bwrap')) {
          const who = config.sandbox === 'bwrap' ? 'bwrap was requested' : `location ${locationNeeding(config, 'bwrap')} asks for bwrap`
          throw new Error(`sandbox: ${who} but it cannot run here: ${attempt.reason}`)
        }
      }
    }
    const level: SandboxLevel = config.sandbox === 'auto' ? (runners.has('bwrap') ? 'bwrap' : 'rlimit') : config.sandbox
    wanted.add(level)
    for (const candidate of ['none', 'rlimit'] as const) {
      if (!wanted.has(candidate)) continue
      const runner: LevelRunner = {level: candidate, sh, bwrap: null, cgroups: usableCgroups, temp}
      const failure = await probeRun(deps.launcher, runner, identities.forLevel(candidate, null))
      if (failure !== null) throw new Error(`sandbox: the ${candidate} level cannot run /bin/true here: ${failure}`)
      runners.set(candidate, runner)
    }
    const levelOf = (location: Location | null): SandboxLevel => location?.sandbox ?? level
    const {warmPython} = config
    validateRequirements(config, levelOf, bwrapUnavailableReason, root)
    validateWritePaths(config, (location) => identities.forLevel(levelOf(location), location.user))
    let closed = false
    return {
      level,
      bwrapUnavailableReason,
      levelOf,
      describe: (which = level) => describeLevel(runners.get(which)!, identities.forLevel(which, null), root, which === level ? bwrapUnavailableReason : null),
      plan(request) {
        const runLevel = levelOf(request.location)
        const runner = runners.get(runLevel)!
        return planRun(runner, {
          argv: request.argv, env: request.env, cwd: request.cwd, limits: request.limits,
          identity: identities.forLevel(runLevel, request.location?.user ?? null),
          readPaths: [...request.readPaths, ...request.location?.readPaths ?? []],
          writePaths: request.location?.writePaths ?? [],
          warm: (request.location?.warmPython ?? warmPython) ? request.warm ?? null : null,
        })
      },
      async close() {
        if (closed) return
        closed = true
        const bwrapFiles = runners.get('bwrap')?.bwrap?.view.filesDir
        if (bwrapFiles !== undefined) fs.rmSync(bwrapFiles, {recursive: true, force: true})
        await cgroups?.close()
      },
    }
  } catch (error) {
    await cgroups?.close()
    throw error
  }
}

// Who runs a script at each level: root never runs scripts as root. A location's `user` wins; else a uid of the
// run's own from the pool (rlimit, bwrap) or config.user (none, trusted scripts). Not root: the server's own uid.
function createIdentities(config: Config, root: boolean) {
  const users = new Map<string, Identity>()
  const userIdentity = (name: string, where: string): Identity => {
    const known = users.get(name)
    if (known) return known
    const user = lookupUser(name)
    if (user === null) throw new Error(`sandbox: user "${name}" (option \`${where}\`) does not exist`)
    if (user.uid === 0) throw new Error(`sandbox: scripts must not run as root; set the \`${where}\` option to an unprivileged user`)
    const identity: Identity = {kind: 'user', name, uid: user.uid, gid: user.gid}
    users.set(name, identity)
    return identity
  }
  for (const location of config.locations) {
    if (location.user === null) continue
    if (!root) throw new Error(`sandbox: \`${location.option}.user\` needs cgibox to run as root (scripts run as its own uid otherwise)`)
    userIdentity(location.user, `${location.option}.user`)
  }
  let pool: Extract<Identity, {kind: 'pool'}> | null = null
  if (root && config.uidPoolSize > 0) {
    validateUidPoolIsUnused(config.uidPoolStart, config.uidPoolSize)
    pool = {kind: 'pool', pool: createUidPool(config.uidPoolStart, config.uidPoolSize)}
  }
  const server: Identity = {kind: 'server'}
  return {
    pool,
    fixedUsers: () => [...users.values()],
    forLevel(level: SandboxLevel, user: string | null): Identity {
      if (!root) return server
      if (user !== null) return userIdentity(user, 'user')
      if (level !== 'none' && pool !== null) return pool
      return userIdentity(config.user, 'user')
    },
  }
}

type Identities = ReturnType<typeof createIdentities>

// Throws when a location requires a stronger level than it gets, so cgibox refuses to start (README).
function validateRequirements(config: Config, levelOf: (location: Location | null) => SandboxLevel,
  bwrapUnavailableReason: string | null, root: boolean): void {
  for (const location of config.locations) {
    const level = levelOf(location)
    if (location.requireSandbox === null) continue
    if (SANDBOX_STRENGTH[level] < SANDBOX_STRENGTH[location.requireSandbox]) {
      const why = bwrapUnavailableReason === null ? '' : ` (bwrap is unavailable: ${bwrapUnavailableReason})`
      throw new Error(`sandbox: location ${location.prefix} requires sandbox level ${location.requireSandbox}, ` +
        `but its level is ${level}${why}`)
    }
    // Without root every run shares cgibox's uid: rlimit isolates nothing from cgibox itself.
    if (!root && location.requireSandbox === 'rlimit' && level === 'rlimit') {
      throw new Error(`sandbox: location ${location.prefix} requires isolation (requireSandbox rlimit), but cgibox ` +
        `is not root, so its scripts would run as cgibox's own uid; run cgibox as root or use bwrap`)
    }
  }
}

// Paths runs write to need one owner across runs: with a uid of the pool per run, the file one run creates could not
// be written by the next (the hit counter that works once). Such a location needs `user`.
function validateWritePaths(config: Config, identityOf: (location: Location) => Identity): void {
  for (const location of config.locations) {
    if (location.writePaths.length === 0 || identityOf(location).kind !== 'pool') continue
    throw new Error(`sandbox: \`${location.option}.writePaths\` needs \`${location.option}.user\`: every run from the uid ` +
      'pool has a uid of its own, so what one run writes there the next could not write; set `user` to the owner of ' +
      `${location.writePaths.join(', ')}`)
  }
}

function locationNeeding(config: Config, level: SandboxLevel): string {
  return config.locations.find((location) => location.sandbox === level)?.prefix ?? '?'
}

// Builds the bwrap runner and proves it with a real run of /bin/true.
async function tryBwrap(bwrapPath: string | null, base: {
  sh: string; cgroups: CgroupManager | null; temp: ReturnType<typeof createTempDirs>; deps: Dependencies
  identities: Identities; config: Config; bwrapOption: string | undefined
}): Promise<{runner: LevelRunner; reason: null} | {runner: null; reason: string}> {
  if (bwrapPath === null) {
    return {runner: null, reason: `bwrap is not installed${base.bwrapOption ? ` at ${base.bwrapOption}` : ''} (Debian: apt install bubblewrap)`}
  }
  // Its own directory for the private /etc and the per-uid passwd files: a sandbox made by a reload must not touch
  // the files the runs of the sandbox it replaces still bind.
  let filesDir: string | null = null
  try {
    filesDir = fs.mkdtempSync(path.join(base.deps.runtime.path, 'bwrap-'))
    fs.chmodSync(filesDir, 0o755) // the run uids read the files bwrap binds
    const view = createBwrapView(filesDir, bwrapUsers(base.identities))
    const runner: LevelRunner = {level: 'bwrap', sh: base.sh, bwrap: {path: bwrapPath, view}, cgroups: base.cgroups, temp: base.temp}
    const failure = await probeRun(base.deps.launcher, runner, base.identities.forLevel('bwrap', null))
    if (failure === null) return {runner, reason: null}
    fs.rmSync(filesDir, {recursive: true, force: true})
    return {runner: null, reason: failure}
  } catch (error) {
    if (filesDir !== null) fs.rmSync(filesDir, {recursive: true, force: true})
    return {runner: null, reason: (error as Error).message}
  }
}

// The uids a bwrap run can have, for the fake /etc/passwd.
function bwrapUsers(identities: Identities): BwrapUsers {
  const extra = identities.fixedUsers().flatMap((identity) => identity.kind === 'user'
    ? [{name: identity.name, uid: identity.uid, gid: identity.gid}]
    : [])
  const pool = identities.pool
  if (pool !== null) return {firstUid: pool.pool.start, count: pool.pool.size, gidOf: (uid) => uid, extra}
  const fallback = identities.forLevel('bwrap', null)
  const uid = fallback.kind === 'user' ? fallback.uid : process.getuid?.() ?? 0
  const gid = fallback.kind === 'user' ? fallback.gid : process.getgid?.() ?? 0
  return {firstUid: uid, count: 1, gidOf: () => gid, extra}
}

const PROBE_LIMITS: Limits = {timeoutMs: PROBE_TIMEOUT_MS, killGraceMs: 0, maxOutputBytes: 1024, maxBodyBytes: 0,
  maxHeaderBytes: 256, cpuSeconds: 5, memoryBytes: 256 * 1024 * 1024, maxProcesses: 16, maxFileBytes: 1024 * 1024,
  maxOpenFiles: 64, tmpBytes: 1024 * 1024, maxStderrBytes: 4096}

// Runs /bin/true through the launcher at a level; null when it exited 0, else the first line of what went wrong.
async function probeRun(launcher: Launcher, runner: LevelRunner, identity: Identity): Promise<string | null> {
  let planned: PlannedRun
  try {
    planned = planRun({...runner, temp: null}, {
      argv: ['/bin/true'], env: {PATH: '/usr/bin:/bin'}, cwd: PROBE_CWD, identity, limits: PROBE_LIMITS,
      readPaths: [], writePaths: [], warm: null,
    })
  } catch (error) {
    return (error as Error).message
  }
  // A run like any other (deadline, kill, cleanup), its output read and dropped.
  const run = startRun(launcher, planned, {limits: PROBE_LIMITS, body: null})
  run.stdout.resume()
  const outcome = await run.finished
  if (outcome.failure !== null) return `${outcome.failure.stage}: ${outcome.failure.message}`
  if (outcome.code === 0) return null
  return outcome.stderr.trim().split('\n')[0] || `exit ${outcome.code ?? outcome.signal}`
}

// "sandbox: <level> (<what is enforced>; …)": the startup line of a level.
function describeLevel(runner: LevelRunner, identity: Identity, root: boolean, bwrapUnavailableReason: string | null): string {
  const {level, cgroups} = runner
  const parts: string[] = []
  if (level === 'bwrap') parts.push('no network (netns per run)', 'PID/IPC/UTS/mount namespaces', 'read-only system view, private /tmp')
  if (identity.kind === 'pool') parts.push(`uid per run from ${identity.pool.start}-${identity.pool.start + identity.pool.size - 1}`)
  else if (identity.kind === 'user') parts.push(`uid ${identity.uid} (${identity.name}) shared by all runs`)
  else if (level === 'bwrap') parts.push(`runs as cgibox's own uid ${process.getuid?.() ?? '?'} (the PID namespace and the view hide cgibox's processes and files)`)
  else parts.push(`runs as cgibox's own uid ${process.getuid?.() ?? '?'}: scripts can read cgibox's environment and signal it`)
  if (cgroups !== null) parts.push(`cgroup v1 ${cgroups.controllers.join('+')}${level === 'none' ? ' (whole-run kill only)' : ''}`)
  else if (level === 'bwrap') parts.push('no cgroups (whole-run kill by the PID namespace)')
  else if (identity.kind === 'pool') parts.push('no cgroups (whole-run kill by a sweep of the run\'s uid)')
  else parts.push('no cgroups (double-forked daemons escape the process-group kill)')
  if (level === 'none') parts.push('no resource limits: trusted scripts only')
  else {
    const rlimits = ['cpu', 'fsize', 'nofile', 'core']
    if (!cgroups?.controllers.includes('memory')) rlimits.push('data')
    if (!cgroups?.controllers.includes('pids') && identity.kind === 'pool') rlimits.push('nproc')
    parts.push(`rlimits ${rlimits.join('/')}`, 'no-new-privs')
  }
  if (level !== 'bwrap') parts.push('private TMPDIR per run')
  if (!root && level !== 'bwrap') parts.push('not root: no uid per run')
  if (level !== 'bwrap' && bwrapUnavailableReason !== null) parts.push(`bwrap unavailable: ${bwrapUnavailableReason}`)
  return `sandbox: ${level} (${parts.join('; ')})`
}

function findTool(name: string): string | null {
  return TOOL_DIRS.map((dir) => `${dir}/${name}`).find(isExecutableFileSync) ?? null
}
