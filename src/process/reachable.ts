// Whether a uid can reach a path (search permission on every directory above it), by the classic mode bits: the check
// behind "the script user cannot enter the cache" class of failures, made once at startup instead of a 502 per run.
import fs from 'node:fs'
import path from 'node:path'

// The first directory on the way to `target` that `uid` (with groups `gids`) cannot search, or null when it can reach
// it; a missing path is null (reported elsewhere). Root reaches everything. ACLs are not read.
export function blockingDirectory(target: string, uid: number, gids: readonly number[]): string | null {
  if (uid === 0) return null
  const parts = path.resolve(target).split(path.sep).filter(Boolean)
  let current: string = path.sep
  for (let index = 0; index <= parts.length; index++) {
    const stats = fs.statSync(current, {throwIfNoEntry: false})
    if (stats === undefined) return null
    if (stats.isDirectory()) {
      const bit = stats.uid === uid ? 0o100 : gids.includes(stats.gid) ? 0o010 : 0o001
      if ((stats.mode & bit) === 0) return current
    }
    if (index < parts.length) current = path.join(current, parts[index]!)
  }
  return null
}
