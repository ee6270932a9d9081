// The real git client against a cgibox serving git-http-backend (test/legacy): a site with bare repositories in
// temp dirs, git run as a client would (clean environment, no prompts, a deadline), and a trace of what it sent.
import {execFile} from 'node:child_process'
import {mkdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import type {RawConfig} from '../../src/config.js'
import {handToScriptUser, startLegacyServer} from './legacy.js'
import type {TestServer} from './server.js'
import {makeTempDir} from './temp-dir.js'

export const GIT_HTTP_BACKEND = '/usr/lib/git-core/git-http-backend'
export const MIB = 1024 * 1024

export interface GitSite {
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
export function git(site: GitSite, args: readonly string[], options: GitOptions = {}): Promise<string> {
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

export interface GitOptions {
  readonly cwd?: string
  readonly env?: Record<string, string>
  /** Written to git's stdin. */
  readonly input?: string
}

// A server with /git/ mounted on git-http-backend over a fresh project root, and an empty client side. `location`
// adds to the /git/ location (user, writePaths, auth…), `settings` to the server (sandbox…).
export async function startGitSite(options: {location?: (root: string, tmp: string) => Promise<RawConfig> | RawConfig; settings?: RawConfig} = {}): Promise<GitSite> {
  const tmp = await makeTempDir('git')
  const [root, work, home] = ['srv', 'work', 'home'].map((name) => path.join(tmp, name)) as [string, string, string]
  await Promise.all([root, work, home].map((dir) => mkdir(dir)))
  const server = await startLegacyServer({
    locations: [{
      prefix: '/git/',
      program: GIT_HTTP_BACKEND,
      env: {GIT_PROJECT_ROOT: root, GIT_HTTP_EXPORT_ALL: '1'},
      timeoutMs: 60_000,
      ...await options.location?.(root, tmp),
    }],
    ...options.settings,
  })
  return {server, root, work, home, baseUrl: `${server.url}git/`}
}

// Creates `<root>/<name>` as a bare repository holding one commit with README, pushed locally (not over HTTP).
export async function createBareRepo(site: GitSite, name: string, options: {receivePack: boolean; owner?: string}): Promise<string> {
  const bare = path.join(site.root, name)
  await git(site, ['init', '--quiet', '--bare', '--initial-branch=main', bare])
  if (options.receivePack) await git(site, ['config', 'http.receivepack', 'true'], {cwd: bare})
  const seed = path.join(site.work, `seed-${name}`)
  await git(site, ['init', '--quiet', '--initial-branch=main', seed])
  await writeFile(path.join(seed, 'README'), 'hello from the seed\n')
  await git(site, ['add', 'README'], {cwd: seed})
  await git(site, ['commit', '--quiet', '-m', 'seed'], {cwd: seed})
  await git(site, ['push', '--quiet', bare, 'main'], {cwd: seed})
  await handToScriptUser(bare, options.owner) // receive-pack runs as the script user and writes objects and refs
  return bare
}

// Clones `<name>` over HTTP through cgibox into work/<dir>.
export async function cloneOverHttp(site: GitSite, name: string, dir: string, env?: Record<string, string>): Promise<string> {
  const clone = path.join(site.work, dir)
  await git(site, ['clone', '--quiet', `${site.baseUrl}${name}`, clone], {env})
  return clone
}

export async function commitFile(site: GitSite, clone: string, file: string, content: string | Buffer, message: string): Promise<string> {
  await writeFile(path.join(clone, file), content)
  await git(site, ['add', file], {cwd: clone})
  await git(site, ['commit', '--quiet', '-m', message], {cwd: clone})
  return git(site, ['rev-parse', 'HEAD'], {cwd: clone})
}

export interface SentRequest {
  /** The request line, e.g. `POST /git/repo.git/git-upload-pack HTTP/1.1`. */
  readonly line: string
  readonly headers: readonly string[]
}

// Traces git's HTTP requests (GIT_TRACE_CURL, headers only) and protocol lines (GIT_TRACE_PACKET): what git
// really put on the wire.
export function traceGit(site: GitSite, name: string): {env: Record<string, string>; requests(): Promise<SentRequest[]>; packets(): Promise<string>} {
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
