// Temporary directories for tests, removed when the test finishes. They live in the test file's sites directory
// (0755, reachable by the users scripts run as), not in its private 0700 TMPDIR (setup.ts).
import {chmod, mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {onTestFinished} from 'vitest'

// A fresh `cgibox-<prefix>-*` directory, removed when the test finishes (after any server started later in the test,
// whose close was registered later and so runs first).
export async function makeTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(process.env.CGIBOX_TEST_SITES ?? tmpdir(), `cgibox-${prefix}-`))
  await chmod(dir, 0o755) // scripts run as an unprivileged user when the tests run as root
  onTestFinished(() => rm(dir, {recursive: true, force: true}))
  return dir
}
