// Per-run cgroups (v1 pids and memory controllers): a process limit, a memory limit, a member list that
// whole-run kills sweep, and the counters that say which limit a run hit. cgroup v2 is not handled yet
// (it needs a delegated subtree: the server's own cgroup may not hold both processes and controllers).
import fs from 'node:fs'
import path from 'node:path'
import {setTimeout as sleep} from 'node:timers/promises'
import {instanceName, isDeadInstance, killUntilEmpty, readPidList} from './kill-tree.js'
import type {ResourceLimit} from './run-plan.js'

export type CgroupController = 'pids' | 'memory'

/** Directories of one cgibox instance are named cgibox-<pid namespace>-<server pid>-<random hex>. */
const INSTANCE_PREFIX = 'cgibox'
/** How long removing a run's cgroup may retry (members still dying) before it is left for the next startup. */
const REMOVE_TIMEOUT_MS = 2_000
const REMOVE_RETRY_MS = 5

export interface CgroupManager {
  /** Controllers this instance can use (an empty list means no cgroups at all). */
  readonly controllers: readonly CgroupController[]
  /**
   * A new, empty cgroup per controller that has a limit here (at least one). Only cgibox's launcher (as root) can
   * move a process in: cgroup.procs is never handed to a script's uid, so no run can join another run's cgroup.
   */
  createRun(limits: RunCgroupLimits): RunCgroup
  /** Removes the instance directories (every run must be removed first). */
  close(): Promise<void>
}

export interface RunCgroupLimits {
  /** pids.max; null = no limit (the cgroup only tracks the run). */
  readonly maxProcesses: number | null
  /** memory.limit_in_bytes; null = no limit. */
  readonly memoryBytes: number | null
}

export interface RunCgroup {
  /** The cgroup.procs files the run's first process writes its own pid to before it execs anything. */
  readonly procsFiles: readonly string[]
  /** Pids of the run's live processes (zombies are not listed in cgroup v1). */
  members(): number[]
  /** SIGKILLs the members until none is left; false if it kept forking past the kill rounds. */
  killAll(): Promise<boolean>
  /** The limit the kernel enforced on this run, read from the controllers' counters. */
  readResourceLimit(): ResourceLimit | null
  /** Kills what is left and removes the directories; retries while members are still dying. */
  remove(): Promise<boolean>
  /** Removes the directories of a run that never started (no members), at once. */
  discard(): void
}

interface Hierarchy {
  readonly controller: CgroupController
  /** The instance directory: <mount>/<this process's cgroup>/cgibox-<pid>-<hex>. */
  readonly dir: string
}

// Finds writable v1 hierarchies, removes directories left by dead cgibox servers, and creates this instance's
// directories under the cgroup the server itself is in (in each hierarchy).
export async function createCgroupManager(wanted: readonly CgroupController[] = ['pids', 'memory']): Promise<CgroupManager> {
  const hierarchies: Hierarchy[] = []
  const name = instanceName(INSTANCE_PREFIX)
  for (const controller of wanted) {
    const own = findOwnCgroupDir(controller)
    if (own === null) continue
    await removeStaleInstances(own)
    const dir = path.join(own, name)
    try {
      fs.mkdirSync(dir)
    } catch {
      continue // not writable here (not root, no delegation)
    }
    try {
      writeLimit(dir, controller, null) // proves the controller files are writable too
    } catch {
      removeEmptyDir(dir)
      continue
    }
    hierarchies.push({controller, dir})
  }
  let nextRun = 1
  return {
    controllers: hierarchies.map((hierarchy) => hierarchy.controller),
    createRun(limits) {
      const dirs: {controller: CgroupController; dir: string}[] = []
      const name = `run-${nextRun++}`
      const limitOf = (controller: CgroupController) => controller === 'pids' ? limits.maxProcesses : limits.memoryBytes
      // Only the controllers with a limit; without any, one cgroup that just tracks the run's processes.
      const limited = hierarchies.filter((hierarchy) => limitOf(hierarchy.controller) !== null)
      try {
        for (const hierarchy of limited.length > 0 ? limited : hierarchies.slice(0, 1)) {
          const dir = path.join(hierarchy.dir, name)
          fs.mkdirSync(dir)
          dirs.push({controller: hierarchy.controller, dir})
          writeLimit(dir, hierarchy.controller, limitOf(hierarchy.controller))
        }
      } catch (error) {
        for (const {dir} of dirs) removeEmptyDir(dir)
        throw error
      }
      return createRunCgroup(dirs)
    },
    async close() {
      for (const hierarchy of hierarchies) await removeTree(hierarchy.dir)
    },
  }
}

function createRunCgroup(dirs: readonly {controller: CgroupController; dir: string}[]): RunCgroup {
  const procsFiles = dirs.map(({dir}) => path.join(dir, 'cgroup.procs'))
  const members = () => {
    if (procsFiles.length === 1) return readPidList(procsFiles[0]!)
    return [...new Set(procsFiles.flatMap(readPidList))]
  }
  return {
    procsFiles,
    members,
    killAll: () => killUntilEmpty(members),
    readResourceLimit() {
      for (const {controller, dir} of dirs) {
        if (controller === 'memory' && hasMemoryOomKill(dir)) return 'memory'
      }
      for (const {controller, dir} of dirs) {
        if (controller === 'pids' && readCounter(path.join(dir, 'pids.events'), 'max') > 0) return 'processes'
      }
      return null
    },
    async remove() {
      let removed = true
      for (const {dir} of dirs) removed = (await removeRunDir(dir, members)) && removed
      return removed
    },
    discard() {
      for (const {dir} of dirs) removeEmptyDir(dir)
    },
  }
}

// The directory of this process's own cgroup in the v1 hierarchy of `controller`, or null without one.
export function findOwnCgroupDir(controller: CgroupController): string | null {
  let mountinfo: string
  let membership: string
  try {
    mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8')
    membership = fs.readFileSync('/proc/self/cgroup', 'utf8')
  } catch {
    return null
  }
  // mountinfo: "36 25 0:31 <root> <mount point> <options> <optional fields> - cgroup cgroup rw,pids"
  let mount: {root: string; point: string} | null = null
  for (const line of mountinfo.split('\n')) {
    const [before, after] = line.split(' - ')
    if (before === undefined || after === undefined) continue
    const [fstype, , superOptions = ''] = after.split(' ')
    const fields = before.split(' ')
    if (fstype === 'cgroup' && superOptions.split(',').includes(controller) && fields[3] && fields[4]) {
      mount = {root: unescapeMountPath(fields[3]), point: unescapeMountPath(fields[4])}
      break
    }
  }
  if (mount === null) return null
  // /proc/self/cgroup: "4:memory:/process_api/24cf…"
  for (const line of membership.split('\n')) {
    const [, controllers, cgroupPath] = line.split(':')
    if (controllers === undefined || cgroupPath === undefined) continue
    if (!controllers.split(',').includes(controller)) continue
    const relative = path.relative(mount.root, cgroupPath)
    if (relative.startsWith('..')) return null // our cgroup is outside the mounted part
    return path.join(mount.point, relative)
  }
  return null
}

function hasMemoryOomKill(dir: string): boolean {
  // memory.oom_control has "oom_kill N" since Linux 4.13; failcnt counts hitting the limit, a coarser signal.
  const text = readText(path.join(dir, 'memory.oom_control'))
  const match = /^oom_kill (\d+)$/m.exec(text)
  if (match !== null) return Number(match[1]) > 0
  return readCounter(path.join(dir, 'memory.failcnt'), null) > 0
}

function readCounter(file: string, key: string | null): number {
  const text = readText(file)
  if (key === null) return Number(text.trim()) || 0
  const match = new RegExp(`^${key} (\\d+)$`, 'm').exec(text)
  return match === null ? 0 : Number(match[1])
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return ''
  }
}

// rmdir of a cgroup fails with EBUSY while it has members; kill them and retry for a bounded time.
async function removeRunDir(dir: string, members: () => number[]): Promise<boolean> {
  const deadline = Date.now() + REMOVE_TIMEOUT_MS
  for (;;) {
    try {
      // Off the main thread: a v1 memory cgroup's rmdir reparents its charges and costs the kernel a while.
      await fs.promises.rmdir(dir)
      return true
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return true
      if (code !== 'EBUSY' || Date.now() > deadline) return false
    }
    await killUntilEmpty(members)
    await sleep(REMOVE_RETRY_MS)
  }
}

function removeEmptyDir(dir: string): void {
  try {
    fs.rmdirSync(dir)
  } catch {
    // Left for the next startup's cleanup.
  }
}

// Instances of dead servers: kill anything still inside, then remove the directories.
async function removeStaleInstances(own: string): Promise<void> {
  let entries: string[]
  try {
    entries = fs.readdirSync(own)
  } catch {
    return
  }
  for (const entry of entries) {
    if (!isDeadInstance(entry, INSTANCE_PREFIX)) continue
    await removeTree(path.join(own, entry))
  }
}

async function removeTree(dir: string): Promise<void> {
  let entries: fs.Dirent[]
  try {
    entries = fs.readdirSync(dir, {withFileTypes: true})
  } catch {
    return
  }
  for (const entry of entries) if (entry.isDirectory()) await removeTree(path.join(dir, entry.name))
  const procs = path.join(dir, 'cgroup.procs')
  await removeRunDir(dir, () => readPidList(procs))
}

function unescapeMountPath(value: string): string {
  return value.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)))
}

function writeLimit(dir: string, controller: CgroupController, value: number | null): void {
  if (controller === 'pids') {
    fs.writeFileSync(path.join(dir, 'pids.max'), value === null ? 'max' : String(value))
    return
  }
  fs.writeFileSync(path.join(dir, 'memory.limit_in_bytes'), value === null ? '-1' : String(value))
  if (value === null) return
  try {
    // Without this, a machine with swap lets the run swap past its limit; absent when swap accounting is off.
    fs.writeFileSync(path.join(dir, 'memory.memsw.limit_in_bytes'), String(value))
  } catch {
    // No swap accounting: memory.limit_in_bytes alone.
  }
}
