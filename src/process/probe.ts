// What the sandbox finds on this machine at startup: the tools of the wrapper chain, a proof run of /bin/true
// through the real argv, the shared empty network namespace, and the directory for the private /etc.
import {spawn} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {instanceName, isDeadInstance, signalGroup, signalProcess} from './kill-tree.js'
import type {PreparedRun} from './sandbox.js'

/** The pre-created, empty network namespace shared by bwrap runs (only `lo`, down). Kept across restarts. */
export const SHARED_NETNS_FILE = '/run/cgibox/netns'
/** How long the startup probe run of the sandbox may take. */
const PROBE_TIMEOUT_MS = 10_000
/** Where the tools of the wrapper chain are looked up; never the PATH cgibox was started with. */
const TOOL_DIRS = ['/usr/bin', '/bin', '/usr/sbin', '/sbin']
/** Instance directories for the private /etc: cgibox-sandbox-<pid namespace>-<server pid>-<hex>. */
const FILES_DIR_PREFIX = 'cgibox-sandbox'

export interface Tools {
  readonly sh: string
  readonly setpriv: string | null
  readonly nsenter: string | null
  readonly unshare: string | null
  readonly bwrap: string | null
}

// Runs /bin/true through the real wrapper chain; null when it exited 0, else the first line of what went wrong.
export async function probeRun(prepare: (argv: readonly string[], cwd: string) => PreparedRun, cwd: string): Promise<string | null> {
  let prepared: PreparedRun
  try {
    prepared = prepare(['/bin/true'], cwd)
  } catch (error) {
    return (error as Error).message
  }
  return new Promise((resolve) => {
    const child = spawn(prepared.command, prepared.args, {
      cwd, env: {PATH: '/usr/bin:/bin'}, detached: true, stdio: ['ignore', 'ignore', 'pipe'],
      uid: prepared.uid, gid: prepared.gid,
    })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    const timer = setTimeout(() => {
      signalGroup(child.pid, 'SIGKILL')
      signalProcess(child.pid, 'SIGKILL')
    }, PROBE_TIMEOUT_MS)
    const done = async (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
      clearTimeout(timer)
      await prepared.finish({code, signal})
      if (error !== undefined) resolve(error.message)
      else if (code === 0) resolve(null)
      else resolve(stderr.trim().split('\n')[0] || `exit ${code ?? signal}`)
    }
    child.once('error', (error) => void done(null, null, error))
    child.once('close', (code, signal) => void done(code, signal))
  })
}

// A directory for the fake /etc/passwd, /etc/group and /etc/hosts of bwrap runs; world-readable because the
// unprivileged bwrap opens the bind sources itself. Directories of dead servers are removed first.
export function createFilesDir(root: boolean): string {
  const parent = root ? '/run' : os.tmpdir()
  for (const entry of safeReaddir(parent)) {
    if (isDeadInstance(entry, FILES_DIR_PREFIX)) fs.rmSync(path.join(parent, entry), {recursive: true, force: true})
  }
  const dir = path.join(parent, instanceName(FILES_DIR_PREFIX))
  fs.mkdirSync(dir, {mode: 0o755})
  fs.chmodSync(dir, 0o755) // mkdir applies the umask
  return dir
}

// Creates (once per machine) the empty network namespace bwrap runs share, and checks that it holds only `lo`
// and that `lo` is down: then no run can reach anything, not even another run over loopback.
export async function ensureSharedNetns(tools: Tools): Promise<string | null> {
  const file = SHARED_NETNS_FILE
  fs.mkdirSync(path.dirname(file), {recursive: true, mode: 0o755})
  if (!isNsfsMount(file)) {
    fs.closeSync(fs.openSync(file, 'a', 0o444))
    const created = await runTool(tools.unshare!, [`--net=${file}`, '/bin/true'])
    if (created.code !== 0 && !isNsfsMount(file)) return null
  }
  const dev = await runTool(tools.nsenter!, [`--net=${file}`, '/bin/cat', '/proc/self/net/dev', '/proc/self/net/fib_trie'])
  if (dev.code !== 0) return null
  const interfaces = [...dev.stdout.matchAll(/^\s*([^\s:]+):/gm)].map((match) => match[1])
  // fib_trie lists 127.0.0.0/8 only once lo is up with its address.
  if (interfaces.some((name) => name !== 'lo') || dev.stdout.includes('127.0.0.1')) return null
  return file
}

// The absolute paths of sh, setpriv, nsenter, unshare and bwrap (null when missing); sh is required.
export function findTools(bwrapPath: string | undefined): Tools {
  const find = (name: string) => TOOL_DIRS.map((dir) => path.join(dir, name)).find(isExecutable) ?? null
  const sh = find('sh')
  if (sh === null) throw new Error('sandbox: /bin/sh not found')
  const bwrap = bwrapPath === undefined ? find('bwrap') : isExecutable(bwrapPath) ? bwrapPath : null
  return {sh, setpriv: find('setpriv'), nsenter: find('nsenter'), unshare: find('unshare'), bwrap}
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK)
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}

function isNsfsMount(file: string): boolean {
  try {
    return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
      .some((line) => line.split(' ')[4] === file && / - nsfs /.test(line))
  } catch {
    return false
  }
}

function runTool(command: string, args: readonly string[]): Promise<{code: number | null; stdout: string}> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {env: {PATH: '/usr/bin:/bin'}, stdio: ['ignore', 'pipe', 'ignore']})
    let stdout = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.once('error', () => resolve({code: null, stdout}))
    child.once('close', (code) => resolve({code, stdout}))
  })
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir)
  } catch {
    return []
  }
}
