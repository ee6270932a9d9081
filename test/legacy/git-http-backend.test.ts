// git's own git-http-backend as a program mount, driven by the real git client over http:// (issue #4 point 3):
// clone, fetch, push of a small commit and of several MiB (sent chunked), a fetch whose request is gzip-encoded,
// and a refused anonymous push (403). Repositories live in temp dirs owned by the user scripts run as.
import {randomBytes} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {describe, expect, test} from 'vitest'
import {MIB, cloneOverHttp, commitFile, createBareRepo, git, startGitSite, traceGit} from '../helpers/git.js'

describe('git-http-backend as a program mount', () => {
  test('git clone over http:// gets the commits and files', async () => {
    const site = await startGitSite()
    const bare = await createBareRepo(site, 'repo.git', {receivePack: true})
    const trace = traceGit(site, 'clone')
    const clone = await cloneOverHttp(site, 'repo.git', 'clone', trace.env)
    expect(await readFile(path.join(clone, 'README'), 'utf8')).toBe('hello from the seed\n')
    expect(await git(site, ['rev-parse', 'HEAD'], {cwd: clone})).toBe(await git(site, ['rev-parse', 'main'], {cwd: bare}))
    // The smart protocol was spoken (a dumb-HTTP fallback would GET objects/ files instead).
    expect(site.server.log.accesses.map((record) => `${record.method} ${record.url} ${record.status}`)).toEqual(
      expect.arrayContaining(['GET /git/repo.git/info/refs?service=git-upload-pack 200', 'POST /git/repo.git/git-upload-pack 200']))
    // Protocol v2: git's Git-Protocol header reaches git-http-backend as HTTP_GIT_PROTOCOL, which it honours.
    expect(await trace.packets()).toMatch(/clone< version 2$/m)
  })

  test('git fetch brings in a commit pushed by someone else', async () => {
    const site = await startGitSite()
    await createBareRepo(site, 'repo.git', {receivePack: true})
    const mine = await cloneOverHttp(site, 'repo.git', 'mine')
    const theirs = await cloneOverHttp(site, 'repo.git', 'theirs')
    const head = await commitFile(site, theirs, 'NEWS', 'fresh news\n', 'news')
    await git(site, ['push', '--quiet', 'origin', 'main'], {cwd: theirs})
    await git(site, ['fetch', '--quiet', 'origin'], {cwd: mine})
    expect(await git(site, ['rev-parse', 'origin/main'], {cwd: mine})).toBe(head)
  })

  test('git push of a small commit lands in the bare repository', async () => {
    const site = await startGitSite()
    const bare = await createBareRepo(site, 'repo.git', {receivePack: true})
    const clone = await cloneOverHttp(site, 'repo.git', 'clone')
    const head = await commitFile(site, clone, 'hello.txt', 'hello over http\n', 'small commit')
    await git(site, ['push', '--quiet', 'origin', 'main'], {cwd: clone})
    expect(await git(site, ['rev-parse', 'main'], {cwd: bare})).toBe(head)
    expect(await git(site, ['cat-file', 'blob', 'main:hello.txt'], {cwd: bare})).toBe('hello over http')
  })

  test('git push of 6 MiB of random data is sent chunked, spooled, and arrives whole', async () => {
    const site = await startGitSite()
    const bare = await createBareRepo(site, 'repo.git', {receivePack: true})
    const clone = await cloneOverHttp(site, 'repo.git', 'clone')
    const data = randomBytes(6 * MIB) // incompressible: the pack is as large as the data
    const head = await commitFile(site, clone, 'big.bin', data, 'big commit')
    const trace = traceGit(site, 'push')
    await git(site, ['push', '--quiet', 'origin', 'main'], {cwd: clone, env: trace.env})
    expect(await git(site, ['rev-parse', 'main'], {cwd: bare})).toBe(head)
    expect(await git(site, ['cat-file', '-s', 'main:big.bin'], {cwd: bare})).toBe(String(data.length))
    // Past http.postBuffer (1 MiB) git streams the pack with Transfer-Encoding: chunked; cgibox spools it so
    // git-http-backend still gets CONTENT_LENGTH, and the run record counts every byte it was fed.
    expect(await trace.requests()).toContainEqual({
      line: 'POST /git/repo.git/git-receive-pack HTTP/1.1', headers: expect.arrayContaining(['Transfer-Encoding: chunked']),
    })
    await expect.poll(() => Math.max(...site.server.log.runs.map((run) => run.bytesIn))).toBeGreaterThan(data.length)
  })

  test('a clone that wants many refs sends a gzip-encoded upload-pack request, which git-http-backend inflates', async () => {
    const site = await startGitSite()
    const bare = await createBareRepo(site, 'repo.git', {receivePack: false})
    // 100 branches on 100 distinct commits: 100 "want" lines make a request body of over 1 KiB, which git gzips.
    const commits = Array.from({length: 100}, (_, index) => [
      `commit refs/heads/topic-${index}`, 'committer Test <test@example.com> 1700000000 +0000',
      `data ${`topic ${index}`.length}`, `topic ${index}`, '',
    ].join('\n'))
    await git(site, ['fast-import', '--quiet'], {cwd: bare, input: commits.join('')})
    expect((await git(site, ['for-each-ref', 'refs/heads/'], {cwd: bare})).split('\n')).toHaveLength(101)
    const trace = traceGit(site, 'clone')
    const clone = await cloneOverHttp(site, 'repo.git', 'clone', trace.env)
    expect(await trace.requests()).toContainEqual({
      line: 'POST /git/repo.git/git-upload-pack HTTP/1.1', headers: expect.arrayContaining(['Content-Encoding: gzip']),
    })
    const refs = await git(site, ['for-each-ref', '--format=%(refname)', 'refs/remotes/origin/'], {cwd: clone})
    expect(refs.split('\n')).toContain('refs/remotes/origin/topic-99')
  })

  test('an anonymous push to a repository without http.receivepack is refused with 403', async () => {
    const site = await startGitSite()
    const bare = await createBareRepo(site, 'readonly.git', {receivePack: false})
    const before = await git(site, ['rev-parse', 'main'], {cwd: bare})
    const clone = await cloneOverHttp(site, 'readonly.git', 'clone')
    await commitFile(site, clone, 'evil.txt', 'should not land\n', 'anonymous push')
    await expect(git(site, ['push', 'origin', 'main'], {cwd: clone})).rejects.toMatchObject({
      stderr: expect.stringContaining('403'),
    })
    expect(await git(site, ['rev-parse', 'main'], {cwd: bare})).toBe(before)
    const receivePack = site.server.log.accesses.filter((record) => record.url.includes('git-receive-pack'))
    expect(receivePack.map((record) => `${record.method} ${record.url} ${record.status}`))
      .toEqual(['GET /git/readonly.git/info/refs?service=git-receive-pack 403'])
  })
})
