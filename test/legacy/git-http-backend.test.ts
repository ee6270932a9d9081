// git's own git-http-backend as a program mount, driven by the real git client over http:// (issue #4 point 3):
// clone, fetch, push of a small commit and of several MiB (sent chunked), a fetch whose request is gzip-encoded,
// and a refused anonymous push (403). Repositories live in temp dirs owned by the user scripts run as.
import {execFile} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {describe, expect, test} from 'vitest'
import {handToScriptUser, startLegacyServer} from '../helpers/legacy.js'
import type {TestServer} from '../helpers/server.js'
import {makeTempDir} from '../helpers/temp-dir.js'

const GIT_HTTP_BACKEND = '/usr/lib/git-core/git-http-backend'
const MIB = 1024 * 1024

interface GitSite {
  readonly server: TestServer
  /** GIT_PROJECT_ROOT: the bare repositories. */
  readonly root: string
  /** Working directories of the client side. */
  readonly work: string
  /** HOME of the git client (empty: no user config). */
  readonly home: string
  /** http://127.0.0.1:PORT/git/ */
  readonly baseUrl: string
}

// Runs git as a client would, with a clean environment (no system or user config, no prompts) and a deadline.
function git(site: GitSite, args: readonly string[], options: GitOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('git', args, {
      cwd: options.cwd ?? site.work,
      env: {
        PATH: '/usr/local/bin:/usr/bin:/bin',
        HOME: site.home,
        LANG: 'C',
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_TERMINAL_PROMPT: '0',
        // The repositories belong to the script user; the test's own git (root) works on them too.
        GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'safe.directory', GIT_CONFIG_VALUE_0: '*',
        GIT_AUTHOR_NAME: 'Test', GIT_AUTHOR_EMAIL: 'test@example.com',
        GIT_COMMITTER_NAME: 'Test', GIT_COMMITTER_EMAIL: 'test@example.com',
        ...options.env,
      },
      timeout: 60_000,
      maxBuffer: 16 * MIB,
    }, (error, stdout, stderr) => {
      if (error) reject(Object.assign(error, {stderr}))
      else resolve(stdout.trim())
    })
    child.stdin?.on('error', () => {}) // EPIPE: git need not read its stdin
    child.stdin?.end(options.input ?? '')
  })
}

interface GitOptions {
  readonly cwd?: string
  readonly env?: Record<string, string>
  /** Written to git's stdin. */
  readonly input?: string
}

// A server with /git/ mounted on git-http-backend over a fresh project root, and an empty client side.
async function startGitSite(): Promise<GitSite> {
  const tmp = await makeTempDir('git')
  const [root, work, home] = ['srv', 'work', 'home'].map((name) => path.join(tmp, name)) as [string, string, string]
  await Promise.all([root, work, home].map((dir) => mkdir(dir)))
  const server = await startLegacyServer({
    mounts: [{
      prefix: '/git/',
      program: GIT_HTTP_BACKEND,
      env: {GIT_PROJECT_ROOT: root, GIT_HTTP_EXPORT_ALL: '1'},
      timeoutMs: 60_000,
    }],
  })
  return {server, root, work, home, baseUrl: `${server.url}git/`}
}

// Creates `<root>/<name>` as a bare repository holding one commit with README, pushed locally (not over HTTP).
async function createBareRepo(site: GitSite, name: string, options: {receivePack: boolean}): Promise<string> {
  const bare = path.join(site.root, name)
  await git(site, ['init', '--quiet', '--bare', '--initial-branch=main', bare])
  if (options.receivePack) await git(site, ['config', 'http.receivepack', 'true'], {cwd: bare})
  const seed = path.join(site.work, `seed-${name}`)
  await git(site, ['init', '--quiet', '--initial-branch=main', seed])
  await writeFile(path.join(seed, 'README'), 'hello from the seed\n')
  await git(site, ['add', 'README'], {cwd: seed})
  await git(site, ['commit', '--quiet', '-m', 'seed'], {cwd: seed})
  await git(site, ['push', '--quiet', bare, 'main'], {cwd: seed})
  await handToScriptUser(bare) // receive-pack runs as the script user and writes objects and refs
  return bare
}

// Clones `<name>` over HTTP through cgibox into work/<dir>.
async function cloneOverHttp(site: GitSite, name: string, dir: string, env?: Record<string, string>): Promise<string> {
  const clone = path.join(site.work, dir)
  await git(site, ['clone', '--quiet', `${site.baseUrl}${name}`, clone], {env})
  return clone
}

async function commitFile(site: GitSite, clone: string, file: string, content: string | Buffer, message: string): Promise<string> {
  await writeFile(path.join(clone, file), content)
  await git(site, ['add', file], {cwd: clone})
  await git(site, ['commit', '--quiet', '-m', message], {cwd: clone})
  return git(site, ['rev-parse', 'HEAD'], {cwd: clone})
}

interface SentRequest {
  /** The request line, e.g. `POST /git/repo.git/git-upload-pack HTTP/1.1`. */
  readonly line: string
  readonly headers: readonly string[]
}

// Traces git's HTTP requests (GIT_TRACE_CURL, headers only) and protocol lines (GIT_TRACE_PACKET): what git
// really put on the wire.
function traceGit(site: GitSite, name: string): {env: Record<string, string>; requests(): Promise<SentRequest[]>; packets(): Promise<string>} {
  const curlFile = path.join(site.home, `${name}.curl-trace`)
  const packetFile = path.join(site.home, `${name}.packet-trace`)
  return {
    env: {GIT_TRACE_CURL: curlFile, GIT_TRACE_CURL_NO_DATA: '1', GIT_TRACE_PACKET: packetFile},
    async requests() {
      const requests: Array<{line: string; headers: string[]}> = []
      for (const [, header] of (await readFile(curlFile, 'utf8')).matchAll(/=> Send header: (.*)$/gm)) {
        if (/^[A-Z]+ \S+ HTTP\//.test(header!)) requests.push({line: header!, headers: []})
        else if (header) requests.at(-1)?.headers.push(header)
      }
      return requests
    },
    packets: () => readFile(packetFile, 'utf8'),
  }
}

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
