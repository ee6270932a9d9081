// Whether a path is a regular file this process may execute, as execve would judge it: one check for the tools
// cgibox finds at startup (bwrap, sh, python3) and for the interpreters scripts name.
import fs from 'node:fs'
import fsPromises from 'node:fs/promises'

// root passes access(X_OK) when any execute bit is set; require one anyway, as execve does.
function isExecutableStat(stats: fs.Stats): boolean {
  return stats.isFile() && (stats.mode & 0o111) !== 0
}

/** At startup: a blocking check. */
export function isExecutableFileSync(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK)
    return isExecutableStat(fs.statSync(file))
  } catch {
    return false
  }
}

/** While serving: the same check off the main thread. */
export async function isExecutableFile(file: string): Promise<boolean> {
  try {
    const stats = await fsPromises.stat(file)
    if (!isExecutableStat(stats)) return false
    await fsPromises.access(file, fs.constants.X_OK)
    return true
  } catch {
    return false
  }
}
