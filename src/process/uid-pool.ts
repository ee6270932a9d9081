// A pool of unprivileged uids, one per live run, so runs cannot signal, ptrace or read each other and
// RLIMIT_NPROC (per real uid, system-wide) counts one run only. It does not create users or touch files.
import fs from 'node:fs'

/** Uids held by live runs of every pool in this process (tests create several sandboxes in one process). */
const UIDS_IN_USE = new Set<number>()

export interface UidPool {
  readonly start: number
  readonly size: number
  /** A uid no other live run of this process holds; throws when all are taken. */
  acquire(): number
  release(uid: number): void
}

// Creates a pool over [start, start + size); the first uid handed out is random so that two cgibox servers on one
// machine rarely hand out the same uid at the same time.
export function createUidPool(start: number, size: number): UidPool {
  let cursor = Math.floor(Math.random() * size)
  return {
    start,
    size,
    acquire() {
      for (let tried = 0; tried < size; tried++) {
        const uid = start + ((cursor + tried) % size)
        if (UIDS_IN_USE.has(uid)) continue
        UIDS_IN_USE.add(uid)
        cursor = (cursor + tried + 1) % size // round robin: a uid just released is reused last
        return uid
      }
      throw new Error(`sandbox: all ${size} uids of the pool ${start}-${start + size - 1} are in use`)
    },
    release(uid) {
      UIDS_IN_USE.delete(uid)
    },
  }
}

// Throws when a user in /etc/passwd has a uid inside the pool: a shared uid breaks per-run process limits
// (RLIMIT_NPROC counts every process of the uid on the machine, so a service running as it would make runs fail).
export function validateUidPoolIsUnused(start: number, size: number, passwdFile = '/etc/passwd'): void {
  for (const user of readPasswd(passwdFile)) {
    if (user.uid >= start && user.uid < start + size) {
      throw new Error(`sandbox: the uid pool ${start}-${start + size - 1} contains uid ${user.uid} of user ` +
        `"${user.name}"; choose a range nothing else uses with uidPoolStart/uidPoolSize`)
    }
  }
}

// Looks a user up by name (or numeric id) in /etc/passwd; null when absent. No NSS: the sandbox needs only local users.
export function lookupUser(name: string, passwdFile = '/etc/passwd'): {uid: number; gid: number} | null {
  if (/^\d+$/.test(name)) return {uid: Number(name), gid: Number(name)}
  const user = readPasswd(passwdFile).find((entry) => entry.name === name)
  return user === undefined ? null : {uid: user.uid, gid: user.gid}
}

function readPasswd(passwdFile: string): {name: string; uid: number; gid: number}[] {
  let text: string
  try {
    text = fs.readFileSync(passwdFile, 'utf8')
  } catch {
    return []
  }
  return text.split('\n').flatMap((line) => {
    const [name, , uid, gid] = line.split(':')
    if (name === undefined || uid === undefined || gid === undefined || !/^\d+$/.test(uid)) return []
    return [{name, uid: Number(uid), gid: Number(gid)}]
  })
}
