// The README recipe "a hit counter or guestbook with writePaths" at the default sandbox level: a classic Perl CGI
// (`#!/usr/bin/perl -wT`, flock) that writes ../data/counter.txt next to its scripts. The location binds that
// directory read-write into the sandbox and runs every visit as the user who owns it, so the tenth visitor can
// write the file the first one created (with a uid per run, the second visit could not).
import {chown, copyFile, mkdir, readFile, stat} from 'node:fs/promises'
import path from 'node:path'
import {describe, expect, test} from 'vitest'
import {LEGACY} from '../helpers/legacy.js'
import {FIXTURES, startTestServer} from '../helpers/server.js'
import {makeTempDir} from '../helpers/temp-dir.js'

const IS_ROOT = process.getuid?.() === 0
const COUNTER_USER = {name: 'www-data', uid: 33}

// A site with cgi-bin/counter.pl and an empty data/ owned by the counter's user.
async function counterSite(): Promise<{cgiBin: string; data: string}> {
  const site = await makeTempDir('counter')
  const cgiBin = path.join(site, 'cgi-bin')
  const data = path.join(site, 'data')
  await mkdir(cgiBin)
  await mkdir(data)
  await copyFile(path.join(LEGACY, 'counter', 'cgi-bin', 'counter.pl'), path.join(cgiBin, 'counter.pl'))
  const {chmod} = await import('node:fs/promises')
  await chmod(path.join(cgiBin, 'counter.pl'), 0o755)
  if (IS_ROOT) await chown(data, COUNTER_USER.uid, COUNTER_USER.uid)
  return {cgiBin, data}
}

describe.skipIf(!IS_ROOT)('a hit counter writing next to its scripts, at the default level', () => {
  test('every visit counts, concurrent ones too, in a file owned by the location user', async () => {
    const {cgiBin, data} = await counterSite()
    const server = await startTestServer({
      sandbox: 'auto', htdocs: path.join(FIXTURES, 'htdocs'), cgiBin,
      locations: [{prefix: '/cgi-bin/counter.pl', writePaths: [data], user: COUNTER_USER.name}],
    })
    expect(server.sandbox).toMatch(/^sandbox: (bwrap|rlimit) /)
    for (const visitor of [1, 2, 3]) {
      expect(await (await fetch(`${server.url}cgi-bin/counter.pl`)).text()).toBe(`You are visitor number ${visitor}\n`)
    }
    const visits = await Promise.all(Array.from({length: 10}, async () => (await fetch(`${server.url}cgi-bin/counter.pl`)).text()))
    expect(visits.map((text) => Number(/(\d+)/.exec(text)![1])).sort((a, b) => a - b)).toEqual([4, 5, 6, 7, 8, 9, 10, 11, 12, 13])
    const file = path.join(data, 'counter.txt')
    expect(await readFile(file, 'utf8')).toBe('13\n')
    expect((await stat(file)).uid).toBe(COUNTER_USER.uid)
  })

  test('the rest of the site stays read-only and keeps the uid pool', async () => {
    const {cgiBin, data} = await counterSite()
    const {writeFile} = await import('node:fs/promises')
    await writeFile(path.join(cgiBin, 'touch.sh'), '#!/bin/sh\necho "Content-Type: text/plain"; echo\n' +
      `echo x > "${data}/other.txt" 2>/dev/null && echo wrote || echo refused; id -u\n`, {mode: 0o755})
    const server = await startTestServer({
      sandbox: 'auto', htdocs: path.join(FIXTURES, 'htdocs'), cgiBin,
      locations: [{prefix: '/cgi-bin/counter.pl', writePaths: [data], user: COUNTER_USER.name}],
    })
    const [result, uid] = (await (await fetch(`${server.url}cgi-bin/touch.sh`)).text()).trim().split('\n')
    expect(result).toBe('refused')
    expect(Number(uid)).toBeGreaterThanOrEqual(61_000)
  })

  test('writePaths without a user is refused at startup: a uid per run could not write what the last run wrote', async () => {
    const {cgiBin, data} = await counterSite()
    await expect(startTestServer({
      sandbox: 'auto', htdocs: path.join(FIXTURES, 'htdocs'), cgiBin,
      locations: [{prefix: '/cgi-bin/counter.pl', writePaths: [data]}],
    })).rejects.toThrow(/`locations\[0\]\.writePaths` needs `locations\[0\]\.user`/)
  })
})
