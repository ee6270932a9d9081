// Temporary directories for tests, removed when the test finishes.
import {chmod, mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {onTestFinished} from 'vitest'

// A fresh `cgibox-<prefix>-*` directory under the system temp dir, removed when the test finishes (after any
// server started later in the test, whose close was registered later and so runs first).
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), `cgibox-${prefix}-`))
  await chmod(dir, 0o755) // scripts run as an unprivileged user when the tests run as root
  onTestFinished(() => rm(dir, {recursive: true, force: true}))
  return dir
}
