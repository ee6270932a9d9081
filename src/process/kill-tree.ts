// Signals whole runs: a process group, a list of pids read from a cgroup, or every process of a pool uid.
// Each call ignores ESRCH (the target is gone). It does not decide when to kill: run.ts does.
import {randomBytes} from 'node:crypto'
import fs from 'node:fs'
import {constants} from 'node:os'
import {setTimeout as sleep} from 'node:timers/promises'

/** Rounds of "read the members, SIGKILL them" before giving up on a run that keeps forking. */
export const MAX_KILL_ROUNDS = 200
/** Pause between rounds once the first quick rounds did not empty the run. */
const KILL_ROUND_PAUSE_MS = 5
const QUICK_ROUNDS = 3

// The name of a signal number, the first one os.constants.signals lists for it (6 is SIGABRT, not SIGIOT), so a
// signal reads the same whether the launcher reported it or bwrap's 128 + N exit code carried it.
const SIGNAL_NAMES = new Map<number, NodeJS.Signals>()
for (const [name, number] of Object.entries(constants.signals)) {
  if (!SIGNAL_NAMES.has(number)) SIGNAL_NAMES.set(number, name as NodeJS.Signals)
}

export function signalName(number: number): NodeJS.Signals | null {
  return SIGNAL_NAMES.get(number) ?? null
}

// Sends a signal to the process group led by pid (detached spawn: the group id is the child's pid).
export function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined || pid <= 0) return
  try {
    process.kill(-pid, signal)
  } catch {
    // ESRCH: the group is already gone.
  }
}

// Sends a signal to one process.
export function signalProcess(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined || pid <= 0) return
  try {
    process.kill(pid, signal)
  } catch {
    // ESRCH: already gone.
  }
}

// A directory name for one sandbox instance of this process: <prefix>-<pid namespace inode>-<pid>-<random hex>.
export function instanceName(prefix: string): string {
  return `${prefix}-${ownPidNamespace()}-${process.pid}-${randomBytes(4).toString('hex')}`
}

// Whether `name` (from instanceName) belongs to a server that is gone: same pid namespace (pids of other
// namespaces, e.g. another container on a shared cgroup tree, cannot be checked and are left alone), pid dead.
export function isDeadInstance(name: string, prefix: string): boolean {
  const match = new RegExp(`^${prefix}-(\\d+)-(\\d+)-[0-9a-f]+$`).exec(name)
  return match !== null && Number(match[1]) === ownPidNamespace() && !isAlive(Number(match[2]))
}

// Whether a process with this pid exists (EPERM: it exists but belongs to someone else).
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

// SIGKILLs the members listed by `members` until it returns none; true when it emptied within MAX_KILL_ROUNDS.
// A fork bomb's new children appear in the next read; a member's pid could be reused between the read and the
// kill only after the kernel wraps around pid_max, which a pids-limited run cannot cause.
export async function killUntilEmpty(members: () => number[]): Promise<boolean> {
  for (let round = 0; round < MAX_KILL_ROUNDS; round++) {
    const pids = members()
    if (pids.length === 0) return true
    for (const pid of pids) signalProcess(pid, 'SIGKILL')
    await sleep(round < QUICK_ROUNDS ? 0 : KILL_ROUND_PAUSE_MS)
  }
  return members().length === 0
}

// The pids of every process whose real uid is `uid` (the sweep for runs without a cgroup, docs/architecture.md §6.7).
export function listProcessesOfUid(uid: number): number[] {
  const pids: number[] = []
  let entries: string[]
  try {
    entries = fs.readdirSync('/proc')
  } catch {
    return pids
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    let status: string
    try {
      status = fs.readFileSync(`/proc/${entry}/status`, 'utf8')
    } catch {
      continue // exited meanwhile
    }
    const match = /^Uid:\s+(\d+)/m.exec(status)
    const state = /^State:\s+(\S)/m.exec(status)
    if (match !== null && Number(match[1]) === uid && state?.[1] !== 'Z') pids.push(Number(entry))
  }
  return pids
}

// Reads a pid list file such as cgroup.procs; an absent file (cgroup removed) is an empty list.
export function readPidList(file: string): number[] {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch {
    return []
  }
  const pids: number[] = []
  for (const line of text.split('\n')) if (line !== '') pids.push(Number(line))
  return pids
}

function ownPidNamespace(): number {
  try {
    return fs.statSync('/proc/self/ns/pid').ino
  } catch {
    return 0
  }
}
