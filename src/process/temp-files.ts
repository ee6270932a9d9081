// Temp files of runs outside bwrap: a private TMPDIR per run (0700, owned by the run's uid, removed with the run),
// and the sweep of what a run with a uid of its own left in the shared temp directories (/tmp, /var/tmp, /dev/shm),
// which would otherwise outlive the run, be readable by later runs and, in /dev/shm, hold memory past its limit.
import fs from 'node:fs'
import path from 'node:path'

/** The world-writable directories every process on the host can leave files in. */
const SHARED_TEMP_DIRS: readonly string[] = ['/tmp', '/var/tmp', '/dev/shm']

/** The mtimes of the shared temp directories when a run started: unchanged ones need no sweep afterwards. */
type TempSnapshot = ReadonlyMap<string, number>

export interface TempDirs {
  /** A new private directory for one run, owned by uid/gid (null: the server's own), mode 0700. */
  create(uid: number | null, gid: number | null): string
  /** Removes a run's directory and everything in it (off the main thread). */
  remove(dir: string): Promise<void>
  /** Where the shared temp directories stand now. */
  snapshot(): TempSnapshot
}

// Per-run directories inside `root` (created by the caller, 0711 so run uids can enter only their own).
export function createTempDirs(root: string, shared: readonly string[] = SHARED_TEMP_DIRS): TempDirs {
  return {
    create(uid, gid) {
      // mkdtemp: a name of its own (sandboxes of a reloaded config share the root) and mode 0700.
      const dir = fs.mkdtempSync(path.join(root, 'run-'))
      if (uid !== null) fs.chownSync(dir, uid, gid ?? uid)
      return dir
    },
    async remove(dir) {
      try {
        await fs.promises.rmdir(dir) // most runs leave their TMPDIR empty: one syscall, not rm's walk
      } catch {
        await fs.promises.rm(dir, {recursive: true, force: true, maxRetries: 2})
      }
    },
    snapshot() {
      const state = new Map<string, number>()
      for (const dir of shared) {
        const stats = fs.statSync(dir, {throwIfNoEntry: false})
        if (stats !== undefined) state.set(dir, stats.mtimeMs)
      }
      return state
    },
  }
}

// Removes the entries owned by `uid` directly inside each shared temp directory whose mtime moved since `before`
// (an entry was created, renamed or removed there). Symlinks are removed, never followed; a directory of that uid
// goes with its contents. Only for uids no other live process has (a pool uid after its run was killed).
export async function removeFilesOfUid(uid: number, before: TempSnapshot): Promise<number> {
  let removed = 0
  for (const [dir, mtimeMs] of before) {
    const stats = await fs.promises.stat(dir).catch(() => undefined)
    if (stats === undefined || stats.mtimeMs === mtimeMs) continue
    const names = await fs.promises.readdir(dir).catch((): string[] => [])
    for (const name of names) {
      const entry = path.join(dir, name)
      const entryStats = await fs.promises.lstat(entry).catch(() => undefined)
      if (entryStats === undefined || entryStats.uid !== uid) continue
      await fs.promises.rm(entry, {recursive: true, force: true})
      removed++
    }
  }
  return removed
}
