// The directories cgibox itself needs at run time, created at startup owned and moded for whoever uses them, so a
// run never depends on what an earlier run or another program left on the machine: one instance directory per server
// (the launcher's socket, the private /etc of bwrap runs, the private TMPDIRs of runs) under a base that also holds
// the .ts cache. Root: /run/cgibox; otherwise $XDG_RUNTIME_DIR/cgibox or <tmpdir>/cgibox-<uid>, private to the user.
import fs from 'node:fs'
import path from 'node:path'
import {instanceName, isDeadInstance} from './kill-tree.js'

const INSTANCE_PREFIX = 'cgibox-run'

export interface RuntimeDir {
  /** This server's instance directory (0755). */
  readonly path: string
  /** Holds the launcher's socket: 0700, only cgibox can connect. */
  readonly launcherDir: string
  /** Holds the per-run TMPDIRs: 0711, each run can enter only its own. */
  readonly tempRoot: string
  /** Removes the instance directory; runs must have ended. */
  remove(): void
}

/** A directory cgibox cannot set up: its own fault, never the script's, so the message names the path. */
class SetupError extends Error {
  constructor(message: string, options?: {cause?: unknown}) {
    super(`setup: ${message}`, options)
    this.name = 'SetupError'
  }
}

// Creates (or checks) `base`, then this server's instance directory in it, removing those of dead servers.
export function createRuntimeDir(base: string): RuntimeDir {
  ensureOwnDir(base, process.getuid?.() === 0 ? 0o755 : 0o700)
  for (const entry of safeReaddir(base)) {
    if (isDeadInstance(entry, INSTANCE_PREFIX)) fs.rmSync(path.join(base, entry), {recursive: true, force: true})
  }
  const dir = path.join(base, instanceName(INSTANCE_PREFIX))
  makeDir(dir, 0o755)
  const launcherDir = path.join(dir, 'launcher')
  makeDir(launcherDir, 0o700)
  const tempRoot = path.join(dir, 'tmp')
  makeDir(tempRoot, 0o711)
  return {
    path: dir,
    launcherDir,
    tempRoot,
    remove() {
      fs.rmSync(dir, {recursive: true, force: true})
    },
  }
}

// A directory owned by this process's uid that nobody else may write (it holds code cgibox runs and its socket);
// created with `mode` when missing. Throws a SetupError naming the path when it cannot be made so.
export function ensureOwnDir(dir: string, mode: number): void {
  try {
    fs.mkdirSync(dir, {recursive: true, mode})
  } catch (error) {
    throw new SetupError(`cannot create ${dir}: ${(error as Error).message}`, {cause: error})
  }
  const stats = fs.lstatSync(dir)
  const uid = process.getuid?.() ?? 0
  if (!stats.isDirectory() || stats.uid !== uid || (stats.mode & 0o022) !== 0) {
    throw new SetupError(`${dir} must be a directory owned by uid ${uid} and writable only by it ` +
      `(it is ${stats.isDirectory() ? `owned by uid ${stats.uid}, mode ${(stats.mode & 0o7777).toString(8)}` : 'not a directory'})`)
  }
  if ((stats.mode & 0o777) !== mode) fs.chmodSync(dir, mode) // mkdir's mode is masked by the umask
}

function makeDir(dir: string, mode: number): void {
  try {
    fs.mkdirSync(dir, {mode})
    fs.chmodSync(dir, mode)
  } catch (error) {
    throw new SetupError(`cannot create ${dir}: ${(error as Error).message}`, {cause: error})
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir)
  } catch {
    return []
  }
}
