// The README recipe "git push with writePaths + user + auth" at the default sandbox level, driven by the real git
// client: a location /git/ served by git-http-backend as a fixed user that owns the repositories, which are bound
// read-write into the sandbox, behind HTTP Basic auth (an htpasswd file). git-http-backend allows a push only with
// REMOTE_USER, which only cgibox's auth sets; without credentials nothing under /git/ runs at all.
import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import bcrypt from 'bcryptjs'
import {describe, expect, test} from 'vitest'
import {cloneOverHttp, commitFile, createBareRepo, git, startGitSite, type GitSite} from '../helpers/git.js'

const IS_ROOT = process.getuid?.() === 0
/** Owns the repositories and runs git-http-backend (Debian's web server user). */
const GIT_USER = 'www-data'

// A git site whose /git/ needs `ada`'s password, running as GIT_USER with the repositories writable.
async function startAuthSite(): Promise<GitSite> {
  return startGitSite({
    location: async (root, tmp) => {
      const htpasswd = path.join(tmp, 'git.htpasswd')
      // As `htpasswd -B` writes it: bcrypt with the $2y$ prefix.
      await writeFile(htpasswd, `ada:${bcrypt.hashSync('lovelace', 5).replace(/^\$2b\$/, '$2y$')}\n`)
      return {user: GIT_USER, writePaths: [root], auth: {realm: 'git', htpasswd}}
    },
    settings: {sandbox: 'auto'},
  })
}

function withCredentials(url: string, user: string, password: string): string {
  const parsed = new URL(url)
  parsed.username = user
  parsed.password = password
  return parsed.href
}

describe.skipIf(!IS_ROOT)('git over HTTP with Basic auth, a fixed user and writePaths, at the default level', () => {
  test('clone and push with the password land in the repository, as the fixed user, with REMOTE_USER', async () => {
    const site = await startAuthSite()
    expect(site.server.sandbox).toMatch(/^sandbox: (bwrap|rlimit) /)
    const bare = await createBareRepo(site, 'repo.git', {receivePack: false, owner: GIT_USER})
    const clone = path.join(site.work, 'clone')
    await git(site, ['clone', '--quiet', withCredentials(`${site.baseUrl}repo.git`, 'ada', 'lovelace'), clone])
    const head = await commitFile(site, clone, 'hello.txt', 'pushed with a password\n', 'authenticated push')
    await git(site, ['push', '--quiet', 'origin', 'main'], {cwd: clone})
    expect(await git(site, ['rev-parse', 'main'], {cwd: bare})).toBe(head)
    // The objects were written by the location's user, not by root or a pool uid.
    const {stat} = await import('node:fs/promises')
    const {readdir} = await import('node:fs/promises')
    const objectDirs = (await readdir(path.join(bare, 'objects'))).filter((name) => /^[0-9a-f]{2}$/.test(name))
    const owners = new Set(await Promise.all(objectDirs.map(async (name) => (await stat(path.join(bare, 'objects', name))).uid)))
    expect([...owners]).toEqual([33])
    // git-http-backend saw the user cgibox let in: its receive-pack answered 200, which it gives only with REMOTE_USER.
    expect(site.server.log.accesses.filter((record) => record.url.endsWith('/git-receive-pack')).map((record) => record.status))
      .toEqual([200])
  })

  test('an anonymous clone or push is refused with 401 and git-http-backend never starts', async () => {
    const site = await startAuthSite()
    await createBareRepo(site, 'repo.git', {receivePack: false, owner: GIT_USER})
    // git got the 401 and would have asked for a user name (prompts are off here).
    await expect(cloneOverHttp(site, 'repo.git', 'anonymous')).rejects.toMatchObject({
      stderr: expect.stringMatching(/could not read Username|Authentication failed/),
    })
    const response = await fetch(`${site.baseUrl}repo.git/info/refs?service=git-receive-pack`)
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toBe('Basic realm="git", charset="UTF-8"')
    expect(site.server.log.runs).toEqual([])
  })

  test('a wrong password is refused like no password', async () => {
    const site = await startAuthSite()
    const bare = await createBareRepo(site, 'repo.git', {receivePack: false, owner: GIT_USER})
    const before = await git(site, ['rev-parse', 'main'], {cwd: bare})
    const clone = path.join(site.work, 'clone')
    await git(site, ['clone', '--quiet', withCredentials(`${site.baseUrl}repo.git`, 'ada', 'lovelace'), clone])
    await commitFile(site, clone, 'evil.txt', 'should not land\n', 'wrong password')
    await git(site, ['remote', 'set-url', 'origin', withCredentials(`${site.baseUrl}repo.git`, 'ada', 'babbage')], {cwd: clone})
    await expect(git(site, ['push', 'origin', 'main'], {cwd: clone})).rejects.toMatchObject({
      stderr: expect.stringMatching(/Authentication failed|401/),
    })
    expect(await git(site, ['rev-parse', 'main'], {cwd: bare})).toBe(before)
  })
})
