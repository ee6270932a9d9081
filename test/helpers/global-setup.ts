// Once per `vitest run`: a private base directory for the whole run (nothing a previous run or another program left
// in the machine's temp directory can make a test pass), removed at the end. Each test file gets its own empty,
// 0700 TMPDIR inside it (setup.ts), as a user's fresh machine may have.
//
// The test sites live in this base too, and scripts run as other users when the tests run as root, so the base must
// be reachable by them: a TMPDIR that is itself private (CI's `mktemp -d`, mode 0700) cannot hold it, and then the
// base goes in the first of /tmp and /var/tmp that every user can search, as a user's own sites would be.
import {accessSync, chmodSync, constants, mkdtempSync, rmSync, statSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type {TestProject} from 'vitest/node'

declare module 'vitest' {
  export interface ProvidedContext {
    testBase: string
  }
}

export default function setup(project: TestProject): () => void {
  const base = mkdtempSync(path.join(reachableTempDir(), 'cgibox-test-run-'))
  chmodSync(base, 0o755) // sites of the tests live in here and scripts run as other users when the tests run as root
  project.provide('testBase', base)
  return () => rmSync(base, {recursive: true, force: true})
}

function reachableTempDir(): string {
  const candidates = [tmpdir(), '/tmp', '/var/tmp']
  const found = candidates.find((dir) => searchableByAll(dir) && writable(dir))
  if (found === undefined) throw new Error(`no temp directory every user can reach among ${candidates.join(', ')}`)
  return found
}

// Every directory from the root down to `dir` has the search bit for others.
function searchableByAll(dir: string): boolean {
  try {
    for (let current = path.resolve(dir); ; current = path.dirname(current)) {
      if ((statSync(current).mode & 0o001) === 0) return false
      if (current === path.dirname(current)) return true
    }
  } catch {
    return false
  }
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK | constants.X_OK)
    return true
  } catch {
    return false
  }
}
