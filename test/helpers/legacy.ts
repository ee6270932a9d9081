// Helpers for the legacy-program tests (issue #4 point 3): a server over test/fixtures/legacy, the key=value
// reports the fixtures print, and handing a tree to the script user. Temp dirs come from ./temp-dir.js.
import {createHash} from 'node:crypto'
import {lchown, lstat, readdir, readFile} from 'node:fs/promises'
import path from 'node:path'
import type {RawConfig} from '../../src/config.js'
import {FIXTURES, startTestServer, type TestServer} from './server.js'

export const LEGACY = path.join(FIXTURES, 'legacy')

// Starts cgibox with test/fixtures/legacy/{htdocs,cgi-bin} and the given settings on top.
export function startLegacyServer(settings: RawConfig = {}): Promise<TestServer> {
  return startTestServer({htdocs: path.join(LEGACY, 'htdocs'), cgiBin: path.join(LEGACY, 'cgi-bin'), ...settings})
}

// Parses `key=value` lines into a map (the fixtures' report format).
export function parseReport(text: string): Record<string, string> {
  const report: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const equals = line.indexOf('=')
    if (equals > 0) report[line.slice(0, equals)] = line.slice(equals + 1)
  }
  return report
}

export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

// Gives a tree to the user scripts run as (config `user`, default nobody) when the tests run as root, as an operator
// does for the repositories git-http-backend writes to (Apache: chown www-data).
export async function handToScriptUser(target: string, user = 'nobody'): Promise<void> {
  if (process.getuid?.() !== 0) return
  const entry = (await readFile('/etc/passwd', 'utf8')).split('\n').find((line) => line.startsWith(`${user}:`))
  if (!entry) throw new Error(`no user ${user}`)
  const [, , uid, gid] = entry.split(':')
  await chownTree(target, Number(uid), Number(gid))
}

async function chownTree(target: string, uid: number, gid: number): Promise<void> {
  await lchown(target, uid, gid)
  const stats = await lstat(target)
  if (!stats.isDirectory()) return
  for (const name of await readdir(target)) await chownTree(path.join(target, name), uid, gid)
}
