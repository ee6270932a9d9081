// Keeps an htpasswd file's parsed contents current: an async stat on use, at most once per `checkIntervalMs`, and a
// re-read when the device, inode, size, mtime or ctime changed. A re-read that fails keeps the last good contents.
// Not fs.watch: a watch follows the inode, so it loses tools that replace the file by rename (editors, `mv`), it is
// silent on network file systems, and it holds a handle that must be closed. One stat a second costs far less.
import type {BigIntStats} from 'node:fs'
import {readFile, stat} from 'node:fs/promises'
import {performance} from 'node:perf_hooks'
import {parseHtpasswd, type Htpasswd} from './htpasswd.js'

export interface HtpasswdFileOptions {
  /** Absolute path of the file. */
  readonly path: string
  /** How long the contents are used without looking at the file again; 0 looks on every use. */
  readonly checkIntervalMs: number
  /** Told once per version of the file that cannot be used (unreadable, gone, a refused line). */
  readonly onError: (message: string) => void
}

export interface HtpasswdFile {
  /** The contents in force: the last good version, after looking at the file if the interval has passed. */
  current(): Promise<Htpasswd>
  /** Stops looking at the file; current() keeps answering with the last good contents. */
  close(): void
}

// Reads and parses the file; throws a TypeError naming the path when it cannot be read, or its file and line when a
// line is refused.
export async function openHtpasswdFile({path, checkIntervalMs, onError}: HtpasswdFileOptions): Promise<HtpasswdFile> {
  let version: string
  let text: string
  try {
    version = versionOf(await stat(path, {bigint: true}))
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new TypeError(`Expected the \`htpasswd\` option to be a readable file, got \`${path}\` (${reasonOf(error)})`, {cause: error})
  }
  let htpasswd = parseHtpasswd(text, path)
  // The version last looked at, good or bad: a bad one is reported once, not on every check.
  let seen = version
  let checkedAt = performance.now()
  let checking: Promise<void> | undefined
  let closed = false

  const check = async () => {
    let next: string | undefined
    try {
      next = versionOf(await stat(path, {bigint: true}))
      if (next === seen) return
      // Stat first, then read: a write that lands after the stat changes the version again, so it is read next time.
      htpasswd = parseHtpasswd(await readFile(path, 'utf8'), path)
      seen = next
    } catch (error) {
      const failed = next ?? `error:${reasonOf(error)}`
      if (failed === seen) return
      seen = failed
      onError(`htpasswd file \`${path}\`: ${error instanceof Error ? error.message : String(error)}`)
    }
  }

  return {
    current() {
      if (closed || performance.now() - checkedAt < checkIntervalMs) return Promise.resolve(htpasswd)
      // Uses at the same moment share one look at the file.
      checking ??= check().finally(() => {
        checkedAt = performance.now()
        checking = undefined
      })
      return checking.then(() => htpasswd)
    },
    close() {
      closed = true
    },
  }
}

function reasonOf(error: unknown): string {
  return (error as NodeJS.ErrnoException | undefined)?.code ?? (error instanceof Error ? error.message : String(error))
}

function versionOf(stats: BigIntStats): string {
  // ctime too: `cp -p` and `rsync -t` put an old mtime back on new contents, but cannot set ctime.
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`
}
