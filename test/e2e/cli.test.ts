// End-to-end command line (docs/architecture.md §5, issue #2 points 1 and 8): the real `cgibox` built from src/
// and run with node: the URL line, --help, --version, one clear line per bad option, and SIGTERM shutdown.
import {spawn, type ChildProcess} from 'node:child_process'
import {writeFile} from 'node:fs/promises'
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, onTestFinished, test} from 'vitest'
import {FIXTURES, isAlive, parseEnvDump} from '../helpers/server.js'
import {makeTempDir} from '../helpers/temp-dir.js'
import {BUILD_TIMEOUT_MS, REPO, buildCli, type Build} from '../helpers/build.js'

const PACKAGE = JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {version: string; scripts: {start: string}}
const VERSION = PACKAGE.version
// The flags of package.json's start script (`node dist/cli.js …`): what `npm start` runs cgibox with.
const START_ARGS = PACKAGE.scripts.start.split(' ').slice(2)
const START_TIMEOUT_MS = 10_000
const EXIT_TIMEOUT_MS = 10_000
const FIXTURE_ARGS = ['--htdocs', path.join(FIXTURES, 'htdocs'), '--cgi-bin', path.join(FIXTURES, 'cgi-bin'), '--sandbox', 'none']

let build: Build | null = null
let cliPath = ''

beforeAll(async () => {
  build = await buildCli()
  cliPath = build.cliPath
}, BUILD_TIMEOUT_MS + 10_000)

afterAll(async () => {
  await build?.remove()
})

interface Cli {
  readonly child: ChildProcess
  stdout(): string
  stderr(): string
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>
}

// Spawns `node dist/cli.js …args`; the process is killed (SIGKILL) when the test finishes if it is still running.
// `inherit` gives it descriptors of this process at the given numbers, as a shell's `exec 41<dir` would.
function spawnCli(args: readonly string[], cwd = REPO, inherit: Readonly<Record<number, number>> = {}, env: NodeJS.ProcessEnv = process.env,
  prefix: readonly string[] = []): Cli {
  const stdio: ('ignore' | 'pipe' | number)[] = ['ignore', 'pipe', 'pipe']
  for (const [at, fd] of Object.entries(inherit)) {
    while (stdio.length < Number(at)) stdio.push('ignore')
    stdio[Number(at)] = fd
  }
  const [command, ...rest] = [...prefix, process.execPath, cliPath, ...args]
  const child = spawn(command!, rest, {cwd, stdio, env})
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    stdout += text
  })
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    stderr += text
  })
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1))
  })
  onTestFinished(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  return {child, stdout: () => stdout, stderr: () => stderr, exited}
}

// Waits (bounded) for the process to exit and returns its code and output. A cgibox that starts listening instead
// is stopped at once (its stdout then holds the URL), so a refused-option test fails fast rather than by timeout.
async function runCli(args: readonly string[], cwd?: string): Promise<{code: number | string; stdout: string; stderr: string}> {
  const cli = spawnCli(args, cwd)
  const listening = (async () => {
    const running = () => cli.child.exitCode === null && cli.child.signalCode === null
    while (running() && !/http:\/\//.test(cli.stdout())) await new Promise((resolve) => setTimeout(resolve, 20))
    if (running()) cli.child.kill('SIGKILL')
    return cli.exited
  })()
  const code = await withTimeout(Promise.race([cli.exited, listening]), EXIT_TIMEOUT_MS, `cgibox ${args.join(' ')} did not exit`)
  return {code, stdout: cli.stdout(), stderr: cli.stderr()}
}

// Waits (bounded) for the "listening" line and returns the URL and port it prints.
async function waitForUrl(cli: Cli): Promise<{url: string; port: number}> {
  const deadline = Date.now() + START_TIMEOUT_MS
  for (;;) {
    const match = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(cli.stdout())
    if (match) return {url: match[0], port: Number(match[1])}
    if (cli.child.exitCode !== null || cli.child.signalCode !== null) {
      throw new Error(`cgibox exited before listening: ${cli.stderr()}`)
    }
    if (Date.now() > deadline) throw new Error(`cgibox printed no URL in ${START_TIMEOUT_MS} ms: ${cli.stdout()} ${cli.stderr()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

// Spawns cgibox and waits until it listens.
async function startCli(args: readonly string[], cwd?: string, inherit?: Readonly<Record<number, number>>,
  env?: NodeJS.ProcessEnv): Promise<Cli & {url: string; port: number}> {
  const cli = spawnCli(args, cwd, inherit, env)
  return {...cli, ...await waitForUrl(cli)}
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

describe('first contact: the README quick start (npm start) on a fresh machine', () => {
  test.each([['0700', 0o700], ['1777', 0o1777]])('with an empty TMPDIR of mode %s, the first request is a cgi-bin script at the default level, and it works', async (_mode, mode) => {
    const tmp = path.join(await makeTempDir('first-contact'), 'tmp')
    const {mkdir, chmod, readdir} = await import('node:fs/promises')
    await mkdir(tmp)
    await chmod(tmp, mode)
    // As `npm start` does (the demo's cgibox.json), plus the port, in the repository with its demo htdocs/ and cgi-bin/.
    expect(PACKAGE.scripts.start).toMatch(/^node dist\/cli\.js( |$)/)
    const cli = await startCli([...START_ARGS, '--port', '0'], REPO, {}, {...process.env, TMPDIR: tmp})
    expect(cli.stdout()).toMatch(/^sandbox: (bwrap|rlimit) /m)
    const first = await fetch(`${cli.url}cgi-bin/hello.sh`)
    expect(first.status).toBe(200)
    expect(await first.text()).toMatch(/^Hello from cgibox/)
    // Then the demo: a .ts page (built into the cache cgibox made at startup), the date page, the home page.
    const page = await fetch(`${cli.url}time.ts`)
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('Generated')
    expect((await fetch(`${cli.url}cgi-bin/date.py`)).status).toBe(200)
    // CI's smoke check requests the first entry of `ls cgi-bin`: it must be a script that answers.
    const [firstScript] = (await readdir(path.join(REPO, 'cgi-bin'))).sort()
    expect((await fetch(`${cli.url}cgi-bin/${firstScript}`)).status).toBe(200)
    expect((await fetch(cli.url)).status).toBe(200)
    expect(cli.stderr()).not.toMatch(/error/i)
    // As root cgibox keeps its run-time files in /run/cgibox: the user's TMPDIR is left as it was.
    if (process.getuid?.() === 0) expect(await readdir(tmp)).toEqual([])
  })
})

describe.skipIf(process.getuid?.() !== 0)('cgibox started by an unprivileged user', () => {
  // As user nobody, with a private TMPDIR of its own (the only place it may write).
  async function asNobody(args: readonly string[]): Promise<Cli> {
    const tmp = await makeTempDir('nobody')
    const {chown} = await import('node:fs/promises')
    await chown(tmp, 65_534, 65_534)
    return spawnCli(args, REPO, {}, {PATH: '/usr/bin:/bin', TMPDIR: tmp},
      ['/usr/bin/setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'])
  }

  test('says plainly at startup that scripts share its uid, and still serves them', async () => {
    const cli = await asNobody([...FIXTURE_ARGS.slice(0, -2), '--sandbox', 'rlimit', '--port', '0'])
    const {url} = await waitForUrl(cli)
    expect(cli.stdout()).toMatch(/^sandbox: rlimit \(.*runs as cgibox's own uid 65534: scripts can read cgibox's environment and signal it/m)
    const env = parseEnvDump(await (await fetch(`${url}cgi-bin/env.py`)).text())
    expect(env.SCRIPT_NAME).toBe('/cgi-bin/env.py')
    expect((await (await fetch(`${url}cgi-bin/pids.sh`)).text()).split('\n')).toContain(String(cli.child.pid))
  })

  test('at bwrap says that the namespaces, not a uid, keep its scripts from it', async () => {
    const cli = await asNobody([...FIXTURE_ARGS.slice(0, -2), '--sandbox', 'bwrap', '--port', '0'])
    const {url} = await waitForUrl(cli)
    expect(cli.stdout()).toMatch(/^sandbox: bwrap \(.*runs as cgibox's own uid 65534 \(the PID namespace and the view hide cgibox's processes and files\)/m)
    expect(cli.stdout()).not.toMatch(/^sandbox: bwrap .*can read cgibox's environment/m)
    // What the description claims: a script sees no process of cgibox's.
    const pids = (await (await fetch(`${url}cgi-bin/pids.sh`)).text()).split('\n')
    expect(pids.length).toBeGreaterThan(1)
    expect(pids).not.toContain(String(cli.child.pid))
  })

  test('refuses a location that requires isolation at rlimit (its scripts would share cgibox\'s uid)', async () => {
    const dir = await makeTempDir('cli')
    const file = path.join(dir, 'cgibox.json')
    await writeFile(file, JSON.stringify({locations: [{prefix: '/cgi-bin/', requireSandbox: 'rlimit'}]}))
    const cli = await asNobody([...FIXTURE_ARGS.slice(0, -2), '--sandbox', 'rlimit', '--port', '0', '--config', file])
    expect(await withTimeout(cli.exited, EXIT_TIMEOUT_MS, 'cgibox did not exit')).not.toBe(0)
    expect(cli.stderr()).toMatch(/requires isolation \(requireSandbox rlimit\), but cgibox is not root/)
  })
})

describe('logs', () => {
  test('--log-format json: access lines on stdout, run records on stderr, JSON with an ISO time and the same request id', async () => {
    const cli = await startCli([...FIXTURE_ARGS, '--port', '0', '--log-format', 'json'])
    const response = await fetch(`${cli.url}cgi-bin/env.py`)
    await response.text()
    const id = response.headers.get('x-request-id')
    const jsonLines = (text: string) => text.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>)
    await expect.poll(() => jsonLines(cli.stdout()).filter((line) => line.type === 'access').length, {timeout: 5_000}).toBe(1)
    await expect.poll(() => jsonLines(cli.stderr()).filter((line) => line.type === 'run').length, {timeout: 5_000}).toBe(1)
    const access = jsonLines(cli.stdout()).find((line) => line.type === 'access')!
    const run = jsonLines(cli.stderr()).find((line) => line.type === 'run')!
    expect(access).toMatchObject({rid: id, method: 'GET', url: '/cgi-bin/env.py', status: 200, msg: 'access'})
    expect(run).toMatchObject({rid: id, script: '/cgi-bin/env.py', code: 0, killReason: null})
    for (const line of [access, run]) expect(new Date(line.time as string).toISOString()).toBe(line.time)
  })

  test('text logs: the access line carries the request id, an ISO time and the duration; run records lead with their time', async () => {
    const cli = await startCli([...FIXTURE_ARGS, '--port', '0'])
    const response = await fetch(`${cli.url}cgi-bin/env.py`)
    await response.text()
    const id = response.headers.get('x-request-id')!
    await expect.poll(() => cli.stdout(), {timeout: 5_000}).toMatch(new RegExp(`"GET /cgi-bin/env\\.py HTTP/1\\.1" 200 \\d+ "-" "[^"]*" rid=${id} at=\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z ms=\\d+$`, 'm'))
    await expect.poll(() => cli.stderr(), {timeout: 5_000}).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z run ${id} /cgi-bin/env\\.py pid=\\d+ exit=0 `, 'm'))
  })
})

describe('descriptors cgibox inherits never reach a script', () => {
  test.each(['none', 'rlimit', 'bwrap'])('at %s, a script started by a cgibox holding fds 41 (a directory) and 42 (a writable file) sees only 0, 1, 2', async (level) => {
    const dir = await makeTempDir('cli-fds')
    const cgiBin = path.join(dir, 'cgi-bin')
    const {mkdir, open} = await import('node:fs/promises')
    await mkdir(cgiBin)
    await writeFile(path.join(cgiBin, 'fds.py'), [
      '#!/usr/bin/env python3', 'import os', 'fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))',
      'print("Content-Type: text/plain")', 'print()', 'print(" ".join(str(fd) for fd in fds[:-1]))',
    ].join('\n') + '\n', {mode: 0o755})
    const directory = await open('/etc', 'r')
    const file = await open(path.join(dir, 'secret-log'), 'a')
    onTestFinished(async () => {
      await directory.close()
      await file.close()
    })
    const cli = await startCli(['--htdocs', path.join(FIXTURES, 'htdocs'), '--cgi-bin', cgiBin, '--sandbox', level, '--port', '0'],
      REPO, {41: directory.fd, 42: file.fd})
    // The last descriptor the script lists is its own listing's; before it, only its stdio.
    expect(await (await fetch(`${cli.url}cgi-bin/fds.py`)).text()).toBe('0 1 2\n')
    expect(cli.stderr()).toMatch(/closed the descriptors it inherited: .*\b41\b.*\b42\b/)
  })
})

describe('starting', () => {
  test('--port 0 prints http://127.0.0.1:<real port>/ and that URL serves the site and its scripts', async () => {
    const cli = spawnCli([...FIXTURE_ARGS, '--port', '0'])
    const {url, port} = await waitForUrl(cli)
    expect(port).toBeGreaterThan(0)
    const home = await fetch(url)
    expect(home.status).toBe(200)
    expect(await home.text()).toBe('<h1>fixture home</h1>\n')
    const script = await fetch(`${url}cgi-bin/env.py`)
    expect(script.status).toBe(200)
    expect(parseEnvDump(await script.text())).toMatchObject({SERVER_PORT: String(port), SCRIPT_NAME: '/cgi-bin/env.py'})
  })

  test('--help exits 0 and lists every option of the command line', async () => {
    const {code, stdout} = await runCli(['--help'])
    expect(code).toBe(0)
    for (const option of [
      '--host', '--port', '--htdocs', '--cgi-bin', '--config', '--sandbox', '--timeout', '--max-output', '--max-concurrent',
      '--kill-grace', '--max-body', '--max-header', '--max-queued', '--help', '--version',
    ]) expect(stdout).toContain(option)
    for (const level of ['auto', 'none', 'rlimit', 'bwrap']) expect(stdout).toContain(level)
  })

  test('--version exits 0 and prints the package.json version', async () => {
    const {code, stdout} = await runCli(['--version'])
    expect(code).toBe(0)
    expect(stdout).toContain(VERSION)
  })
})

describe('bad options', () => {
  // Each is refused before listening, with one line on stderr that names the option, and a non-zero exit.
  test.each<[string, string[], RegExp]>([
    ['--port -1', ['--port', '-1'], /--port/],
    ['--port abc', ['--port', 'abc'], /--port/],
    ['--port 65536', ['--port', '65536'], /port/],
    ['--timeout x', ['--timeout', 'x'], /--timeout/],
    ['--timeout 0', ['--timeout', '0'], /timeout/],
    ['--sandbox bogus', ['--sandbox', 'bogus'], /sandbox/],
    ['--access-log json', ['--access-log', 'json'], /access-?log/i],
    ['--bogus-flag', ['--bogus-flag'], /--bogus-flag/],
    ['--config /nonexistent.json', ['--config', '/nonexistent.json'], /--config/],
    // A negative number says what was expected, not "argument is ambiguous".
    ['--timeout -5', ['--timeout', '-5'], /^cgibox: Expected the `--timeout` option to be a non-negative integer, got `-5`$/m],
    ['--max-output -1M', ['--max-output', '-1M'], /^cgibox: Expected the `--max-output` option to be a size in bytes/m],
    // A bad value from a flag names the flag, never the config key behind it.
    ['--timeout 0 names the flag', ['--timeout', '0'], /`--timeout` option/],
    ['--max-concurrent 0', ['--max-concurrent', '0'], /`--max-concurrent` option/],
    ['--memory lots', ['--memory', 'lots'], /`--memory` option.*like 65536, 512K, 64M or 1G/],
    ['--htdocs /nonexistent', ['--htdocs', '/nonexistent/htdocs'], /`--htdocs` option to name a directory, got `\/nonexistent\/htdocs` \(it does not exist\)/],
    ['--cgi-bin a file', ['--cgi-bin', path.join(FIXTURES, 'htdocs', 'hello.txt')], /`--cgi-bin` option to name a directory.*\(not a directory\)/],
    ['--cgi-bin /nonexistent', ['--cgi-bin', '/nonexistent/cgi-bin'], /`--cgi-bin` option to name a directory/],
  ])('%s exits non-zero and names the option', async (_title, args, option) => {
    const {code, stdout, stderr} = await runCli([...FIXTURE_ARGS, '--port', '0', ...args])
    expect(code).not.toBe(0)
    expect(stdout).not.toContain('http://')
    expect(stderr).toMatch(option)
    expect(stderr.trim().split('\n')).toHaveLength(1)
  })

  test.each<[string, unknown, RegExp]>([
    ['{"timeoutMs": -5}', {timeoutMs: -5}, /timeoutMs/],
    ['{"prot": 80}', {prot: 80}, /prot/],
    ['a mount without a program', {mounts: [{prefix: '/p/'}]}, /mounts\[0\]\.program/],
    ['a JSON syntax error', '{\n  "port": 8080,\n  "timeoutMs" 5\n}\n', /cgibox\.json:3:15: /],
    ['a trailing comma', '{"port": 8080,}', /cgibox\.json:1:15: /],
    ['an htpasswd file that does not exist', {locations: [{prefix: '/a/', auth: {realm: 'r', htpasswd: 'missing.htpasswd'}}]}, /locations\[0\]\.auth\.htpasswd/],
  ])('a config file with %s exits non-zero and names the option', async (_title, content, option) => {
    const dir = await makeTempDir('cli')
    const file = path.join(dir, 'cgibox.json')
    await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content))
    const {code, stdout, stderr} = await runCli([...FIXTURE_ARGS, '--port', '0', '--config', file])
    expect(code).not.toBe(0)
    expect(stdout).not.toContain('http://')
    expect(stderr).toMatch(option)
    expect(stderr.trim().split('\n')).toHaveLength(1)
  })

  test('-h and -v are --help and --version', async () => {
    const help = await runCli(['-h'])
    expect(help).toMatchObject({code: 0})
    expect(help.stdout).toContain('Usage: cgibox [options]')
    const version = await runCli(['-v'])
    expect(version).toMatchObject({code: 0, stdout: `cgibox ${VERSION}\n`})
  })

  test('sizes take units on the command line', async () => {
    const cli = await startCli([...FIXTURE_ARGS, '--port', '0', '--max-output', '1K'])
    const response = await fetch(`${cli.url}cgi-bin/yes.sh`)
    await response.arrayBuffer().catch(() => null)
    // yes.sh writes forever: 1K of output is its cap (the record counts the chunk that crossed it).
    await expect.poll(() => cli.stderr(), {timeout: 10_000}).toMatch(/run \S+ \/cgi-bin\/yes\.sh .*kill=output-cap/)
  })

  test('a site without a script directory serves its files and pages, and says so once', async () => {
    const dir = await makeTempDir('cli')
    const htdocs = path.join(dir, 'htdocs')
    await (await import('node:fs/promises')).mkdir(htdocs)
    await writeFile(path.join(htdocs, 'index.html'), '<p>no cgi-bin here</p>\n')
    const cli = await startCli(['--htdocs', htdocs, '--sandbox', 'none', '--port', '0'], dir)
    expect(await (await fetch(cli.url)).text()).toBe('<p>no cgi-bin here</p>\n')
    expect((await fetch(`${cli.url}cgi-bin/x.sh`)).status).toBe(404)
    expect(cli.stderr().match(/no script directory/g)).toHaveLength(1)
  })

  test('SIGHUP reloads the config file for new requests; an invalid one is logged and the running config kept', async () => {
    const dir = await makeTempDir('cli')
    const file = path.join(dir, 'cgibox.json')
    await writeFile(file, JSON.stringify({env: {GREETING: 'first'}}))
    const cli = await startCli([...FIXTURE_ARGS, '--port', '0', '--config', file])
    const greeting = async () => parseEnvDump(await (await fetch(`${cli.url}cgi-bin/env.py`)).text()).GREETING
    expect(await greeting()).toBe('first')
    await writeFile(file, JSON.stringify({env: {GREETING: 'second'}}))
    cli.child.kill('SIGHUP')
    await expect.poll(greeting, {timeout: 10_000}).toBe('second')
    expect(cli.stderr()).toContain('config reloaded')
    // A broken file: said in the log, the server keeps serving with the config it has.
    await writeFile(file, '{"env": {"GREETING": "third"},}')
    cli.child.kill('SIGHUP')
    await expect.poll(() => cli.stderr(), {timeout: 10_000}).toMatch(/config not reloaded \(the running one stays\): .*cgibox\.json:1:31/)
    expect(await greeting()).toBe('second')
    expect(cli.child.exitCode).toBeNull()
  })

  test('a mount whose program does not exist is refused at startup, naming the option', async () => {
    const dir = await makeTempDir('cli')
    const file = path.join(dir, 'cgibox.json')
    await writeFile(file, JSON.stringify({mounts: [{prefix: '/p/', program: 'no-such-program'}]}))
    const {code, stdout, stderr} = await runCli([...FIXTURE_ARGS, '--port', '0', '--config', file])
    expect(code).not.toBe(0)
    expect(stdout).not.toContain('http://')
    expect(stderr).toMatch(/mounts\[0\]\.program/)
  })
})

describe('shutdown', () => {
  test.each<[string, string, string[]]>([
    ['a script sleeps', 'cgi-bin/sleep.sh?30', ['x-cgi-pid']],
    ['a script streams with a background grandchild', 'cgi-bin/tree.sh', ['x-cgi-pid', 'x-child-pid']],
  ])('SIGTERM while %s: cgibox exits after its grace and no process of the run is left', async (_title, target, pidHeaders) => {
    const dir = await makeTempDir('cli')
    const file = path.join(dir, 'cgibox.json')
    await writeFile(file, JSON.stringify({shutdownGraceMs: 300}))
    const cli = spawnCli([...FIXTURE_ARGS, '--port', '0', '--kill-grace', '300', '--config', file])
    const {url} = await waitForUrl(cli)
    const controller = new AbortController()
    onTestFinished(() => controller.abort())
    const response = await fetch(`${url}${target}`, {signal: controller.signal})
    expect(response.status).toBe(200)
    const pids = pidHeaders.map((name) => Number(response.headers.get(name)))
    for (const pid of pids) expect(pid).toBeGreaterThan(0)
    onTestFinished(() => {
      for (const pid of pids) if (isAlive(pid)) process.kill(pid, 'SIGKILL')
    })
    for (const pid of pids) expect(isAlive(pid)).toBe(true)

    cli.child.kill('SIGTERM')
    await expect.poll(() => cli.child.exitCode, {timeout: EXIT_TIMEOUT_MS}).toBe(0)
    for (const pid of pids) await expect.poll(() => isAlive(pid), {timeout: 5_000}).toBe(false)
    controller.abort() // the body was cut off by the shutdown; stop reading what undici buffered
  })

  test('SIGTERM with nothing running exits 0 at once', async () => {
    const cli = spawnCli([...FIXTURE_ARGS, '--port', '0'])
    await waitForUrl(cli)
    cli.child.kill('SIGTERM')
    await expect.poll(() => cli.child.exitCode, {timeout: EXIT_TIMEOUT_MS}).toBe(0)
  })
})
