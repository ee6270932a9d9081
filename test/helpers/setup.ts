// Before each test file: its own empty TMPDIR (mode 0700, the strictest a user may have) and its own directory for
// test sites (0755, so scripts running as other users can reach them), both removed after the file.
import {chmodSync, mkdirSync, mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {afterAll, inject} from 'vitest'

// Any process warning fails the test run (execa's fixtures-directory.js does the same).
process.on('warning', (warning) => {
  throw warning
})

const base = inject('testBase') ?? tmpdir()
const fileDir = mkdtempSync(path.join(base, 'file-'))
chmodSync(fileDir, 0o755)
const privateTmp = path.join(fileDir, 'tmp')
mkdirSync(privateTmp, {mode: 0o700})
chmodSync(privateTmp, 0o700)
const sites = path.join(fileDir, 'sites')
mkdirSync(sites, {mode: 0o755})
chmodSync(sites, 0o755)
process.env.TMPDIR = privateTmp
process.env.CGIBOX_TEST_SITES = sites

afterAll(() => {
  rmSync(fileDir, {recursive: true, force: true})
})
