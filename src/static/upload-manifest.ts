// Which files of a directory were uploaded: a hidden `.cgibox-uploads` in the directory (dotfiles are never routed or
// listed), one `<inode> <name>` line per upload, appended by static/upload.ts and read by serve-file.ts and listing.ts.
// No serving here. The inode ties a line to the file it was written for: a line for a name that was taken after all
// (EEXIST) does not mark the site's own file of that name.
import {appendFile, readFile, stat} from 'node:fs/promises'
import path from 'node:path'

/** The manifest's file name, in every directory that received an upload. */
export const UPLOAD_MANIFEST = '.cgibox-uploads'

/** Parsed manifests kept in memory (by real directory path); the oldest go first. */
const MAX_CACHED_MANIFESTS = 1_000

interface CachedManifest {
  readonly ino: bigint
  readonly size: bigint
  readonly mtimeNs: bigint
  /** Name → the inodes uploaded under it (decimal strings). */
  readonly names: ReadonlyMap<string, ReadonlySet<string>>
}

/** Parsed manifests by directory, re-read when the manifest's inode, size or mtime changes (appends always grow it). */
const manifests = new Map<string, CachedManifest>()

// Records that the file with inode `ino` becomes `name` in dirPath. Called before the file is linked into place, so
// the name never serves as the site's own content, not even for a moment (O_APPEND: concurrent lines stay whole).
export async function recordUpload(dirPath: string, name: string, ino: bigint): Promise<void> {
  await appendFile(path.join(dirPath, UPLOAD_MANIFEST), `${ino} ${name}\n`, {flag: 'a', mode: 0o644})
}

// True when the real path filePath is an upload: its directory's manifest names it, with the inode it has now.
// False when the file is gone (the caller answers 404); other failures reject, so nothing is served unchecked.
export async function isUpload(filePath: string): Promise<boolean> {
  const names = await readManifest(path.dirname(filePath))
  const inodes = names?.get(path.basename(filePath))
  if (inodes === undefined) return false
  const stats = await stat(filePath, {bigint: true}).catch(ignoreMissing)
  return stats !== null && inodes.has(String(stats.ino))
}

// Parses manifest text: `<inode> <name>` per line; lines without both parts are skipped.
export function parseManifest(text: string): Map<string, Set<string>> {
  const names = new Map<string, Set<string>>()
  for (const line of text.split('\n')) {
    const space = line.indexOf(' ')
    if (space <= 0 || space === line.length - 1) continue
    const name = line.slice(space + 1)
    let inodes = names.get(name)
    if (inodes === undefined) names.set(name, inodes = new Set())
    inodes.add(line.slice(0, space))
  }
  return names
}

async function readManifest(dirPath: string): Promise<ReadonlyMap<string, ReadonlySet<string>> | null> {
  const manifestPath = path.join(dirPath, UPLOAD_MANIFEST)
  const stats = await stat(manifestPath, {bigint: true}).catch(ignoreMissing)
  if (stats === null) {
    manifests.delete(dirPath)
    return null
  }
  const cached = manifests.get(dirPath)
  if (cached && cached.ino === stats.ino && cached.size === stats.size && cached.mtimeNs === stats.mtimeNs) return cached.names
  // Read after the stat: lines appended in between are parsed now and make the next stat differ, so they are re-read.
  const names = parseManifest(await readFile(manifestPath, 'utf8'))
  manifests.delete(dirPath)
  manifests.set(dirPath, {ino: stats.ino, size: stats.size, mtimeNs: stats.mtimeNs, names})
  if (manifests.size > MAX_CACHED_MANIFESTS) manifests.delete(manifests.keys().next().value!)
  return names
}

function ignoreMissing(error: unknown): null {
  const code = (error as NodeJS.ErrnoException).code
  if (code === 'ENOENT' || code === 'ENOTDIR') return null
  throw error
}
