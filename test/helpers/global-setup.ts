// Once per `vitest run`: a private base directory for the whole run (nothing a previous run or another program left
// in the machine's temp directory can make a test pass), removed at the end. Each test file gets its own empty,
// 0700 TMPDIR inside it (setup.ts), as a user's fresh machine may have.
import {chmodSync, mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import type {TestProject} from 'vitest/node'

declare module 'vitest' {
  export interface ProvidedContext {
    testBase: string
  }
}

export default function setup(project: TestProject): () => void {
  const base = mkdtempSync(path.join(tmpdir(), 'cgibox-test-run-'))
  chmodSync(base, 0o755) // sites of the tests live in here and scripts run as other users when the tests run as root
  project.provide('testBase', base)
  return () => rmSync(base, {recursive: true, force: true})
}
