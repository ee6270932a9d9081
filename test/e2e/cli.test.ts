// End-to-end command line (DESIGN.md "Command line", issue #2 points 1 and 8): the real `cgibox` built from src/
// and run with node: the URL line, --help, --version, one clear line per bad option, and SIGTERM shutdown.
import {spawn, type ChildProcess} from 'node:child_process'
import {writeFile} from 'node:fs/promises'
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, onTestFinished, test} from 'vitest'
import {FIXTURES, isAlive, parseEnvDump} from '../helpers/server.js'
import {makeTempDir} from '../helpers/temp-dir.js'
import {BUILD_TIMEOUT_MS, REPO, buildCli, type Build} from '../helpers/build.js'

const VERSION = (JSON.parse(readFileSync(path.join(REPO, 'package.json'), 'utf8')) as {version: string}).version
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
function spawnCli(args: readonly string[], cwd = REPO): Cli {
  const child = spawn(process.execPath, [cliPath, ...args], {cwd, stdio: ['ignore', 'pipe', 'pipe']})
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

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

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
  ])('a config file with %s exits non-zero and names the option', async (_title, content, option) => {
    const dir = await makeTempDir('cli')
    const file = path.join(dir, 'cgibox.json')
    await writeFile(file, JSON.stringify(content))
    const {code, stdout, stderr} = await runCli([...FIXTURE_ARGS, '--port', '0', '--config', file])
    expect(code).not.toBe(0)
    expect(stdout).not.toContain('http://')
    expect(stderr).toMatch(option)
    expect(stderr.trim().split('\n')).toHaveLength(1)
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
