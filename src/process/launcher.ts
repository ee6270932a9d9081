// The server side of launcher.py: the one way cgibox starts processes for runs. A long-lived python3 forks them, so
// the big Node process is never forked per request (Apache mod_cgid's design: forking the server was 40% of its main
// thread under load). Each run is two connections to the launcher's socket: A carries the plan, then stdin one way
// and stderr the other; B carries stdout. Both are authenticated: A by the launcher's secret, B by the run's token.
import {spawn, type ChildProcess} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import {constants} from 'node:os'
import path from 'node:path'
import type {Readable, Writable} from 'node:stream'
import {fileURLToPath} from 'node:url'
import type {RunPlan} from './run-plan.js'
import {isExecutableFileSync} from '../executable.js'
import {signalName} from './kill-tree.js'

const LAUNCHER_SOURCE = fileURLToPath(new URL('launcher.py', import.meta.url))
/** Where python3 is looked for (never on the PATH cgibox was started with). */
const PYTHON_CANDIDATES = ['/usr/bin/python3', '/usr/local/bin/python3', '/bin/python3']
const STARTUP_TIMEOUT_MS = 5_000
/** A launcher that died is started again, at most this often. */
const RESTART_DELAY_MS = 200

/** Why a run never got to run its program: the launcher could not set it up (cgibox's fault) or exec failed. */
export interface LaunchFailure {
  readonly stage: 'setup' | 'exec'
  readonly message: string
}

export interface LaunchExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** Set when the run failed before its program started. */
  readonly failure: LaunchFailure | null
  /** Whether a warm Python zygote ran it (else it was exec'd). */
  readonly warm: boolean
}

// One launched run: its three streams, its pid once forked, and its exit once reaped.
export interface LaunchedProcess {
  /** The request body goes here; end() gives the run EOF on stdin. */
  readonly stdin: Writable
  readonly stdout: Readable
  readonly stderr: Readable
  /** The direct child's pid once forked; null when it never was. */
  readonly pid: Promise<number | null>
  /** Resolves once the launcher reaped the direct child (never rejects). */
  readonly exit: Promise<LaunchExit>
  /** Signals the direct child and its process group, race-free: only while it is not reaped. */
  signal(signal: 'SIGTERM' | 'SIGKILL'): void
}

export interface Launcher {
  launch(plan: RunPlan): LaunchedProcess
  /** What the launcher found: python version and whether orphans are reaped by it (subreaper). */
  readonly info: {readonly python: string; readonly subreaper: boolean; readonly restarts: number}
  /** Stops the launcher; it kills the process groups of its live runs as it goes. */
  close(): Promise<void>
}

export interface LauncherOptions {
  /** A private directory (0700, created by the caller) for the socket. */
  readonly socketDir: string
  /** python3 to run the launcher with. Default: the first of /usr/bin/python3, /usr/local/bin/python3, /bin/python3. */
  readonly python?: string
  /** Lines the launcher reports that are not about a run. */
  readonly onWarning?: (message: string) => void
  /** Runs a warm Python zygote forks before a fresh one replaces it (they share python's hash seed). Default: `1000`. */
  readonly zygoteMaxForks?: number
}

interface PendingRun {
  resolvePid(pid: number | null): void
  resolveExit(exit: LaunchExit): void
  failure: LaunchFailure | null
  pid: number | null
  warm: boolean
  pendingSignal: 'SIGTERM' | 'SIGKILL' | null
  readonly sockets: readonly net.Socket[]
  /** The launcher process that was asked to start it (a restarted launcher must not end the runs of the new one). */
  readonly owner: Helper
}

interface Helper {
  readonly process: ChildProcess
  readonly secret: Buffer
  /** The socket's path as connect() takes it: through a descriptor of its directory, short whatever the depth. */
  readonly socketPath: string
  readonly ready: Promise<{python: string; subreaper: boolean}>
  alive: boolean
  /** Set once it reported ready: its socket exists. */
  listening: boolean
}

// Starts launcher.py and resolves once it listens; rejects (naming what is missing) when it cannot run.
export async function startLauncher(options: LauncherOptions): Promise<Launcher> {
  const python = options.python ?? PYTHON_CANDIDATES.find(isExecutableFileSync)
  if (python === undefined) {
    throw new Error(`launcher: cgibox starts scripts through python3 (3.9 or later), which is not installed at ${PYTHON_CANDIDATES.join(', ')}`)
  }
  const runs = new Map<number, PendingRun>()
  // Unix socket paths have at most 107 bytes; through a descriptor of the directory any depth fits.
  const socketDirFd = fs.openSync(options.socketDir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY)
  let nextId = 1
  let closing = false
  let restarts = 0
  let helper = startHelper(python, options, runs)
  const first = await helper.ready.catch((error: unknown) => {
    helper.process.kill('SIGKILL')
    fs.closeSync(socketDirFd)
    throw error
  })
  const info = {python: first.python, subreaper: first.subreaper, get restarts() { return restarts }}

  // A launcher that died (killed by someone, a bug) is replaced; its runs were reported killed.
  const watch = (current: Helper) => {
    current.process.once('exit', () => {
      if (closing) return
      setTimeout(() => {
        if (closing) return
        restarts++
        helper = startHelper(python, options, runs)
        helper.ready.catch((error: unknown) => options.onWarning?.(`launcher: restart failed: ${(error as Error).message}`))
        watch(helper)
      }, RESTART_DELAY_MS).unref()
    })
  }
  watch(helper)

  return {
    info,
    launch(plan) {
      const id = nextId++
      const token = randomBytes(16)
      const current = helper
      const planBytes = Buffer.from(JSON.stringify({...plan, id, token: token.toString('hex')}))
      const header = Buffer.alloc(4 + 32 + 4)
      header.write('CGBR', 0, 'latin1')
      current.secret.copy(header, 4)
      header.writeUInt32BE(planBytes.length, 36)
      // allowHalfOpen: ending stdin must not end the stderr that comes back on the same connection. A launcher that
      // is not listening (being restarted) fails the run at once.
      const target = current.listening ? current.socketPath : path.join(options.socketDir, 'not-listening')
      const request = net.connect({path: target, allowHalfOpen: true})
      request.write(Buffer.concat([header, planBytes]))
      const stdout = net.connect(target)
      stdout.write(Buffer.concat([Buffer.from('CGBO', 'latin1'), token]))
      let resolvePid: (pid: number | null) => void = () => {}
      let resolveExit: (exit: LaunchExit) => void = () => {}
      const pidPromise = new Promise<number | null>((resolve) => { resolvePid = resolve })
      const exit = new Promise<LaunchExit>((resolve) => { resolveExit = resolve })
      const run: PendingRun = {
        resolvePid, resolveExit, failure: null, pid: null, warm: false, pendingSignal: null, sockets: [request, stdout], owner: current,
      }
      runs.set(id, run)
      // A connection that cannot be made means the run never starts: report it instead of waiting forever.
      const fail = (message: string) => finishRun(runs, id, {code: null, signal: null, failure: {stage: 'setup', message}, warm: false})
      for (const socket of run.sockets) {
        socket.once('error', (error) => {
          if (run.pid === null) fail(`launcher connection: ${error.message}`)
        })
      }
      return {
        stdin: request,
        stdout,
        stderr: request,
        pid: pidPromise,
        exit,
        signal(name) {
          if (!runs.has(id)) return
          if (run.pid === null) {
            // Not forked yet: the signal follows as soon as it is (a kill is never lost).
            if (run.pendingSignal !== 'SIGKILL') run.pendingSignal = name
            return
          }
          sendControl(current, {kill: id, signal: constants.signals[name]})
        },
      }
    },
    async close() {
      if (closing) return
      closing = true
      const current = helper
      if (current.alive) {
        await new Promise<void>((resolve) => {
          current.process.once('exit', () => resolve())
          current.process.stdin!.end() // EOF: the launcher kills what is left of its runs and exits
        })
      }
      fs.closeSync(socketDirFd)
    },
  }

  function sendControl(current: Helper, message: Record<string, unknown>): void {
    if (current.alive) current.process.stdin!.write(JSON.stringify(message) + '\n')
  }

  function startHelper(pythonPath: string, opts: LauncherOptions, table: Map<number, PendingRun>): Helper {
    const socketName = `launcher-${process.pid}-${randomBytes(4).toString('hex')}.sock`
    const socketPath = `/proc/self/fd/${socketDirFd}/${socketName}`
    const secret = randomBytes(32)
    // Nothing of the server's environment: runs get theirs whole from each plan, and the launcher needs none.
    const child = spawn(pythonPath, ['-I', '-S', LAUNCHER_SOURCE, opts.socketDir, socketName], {
      stdio: ['pipe', 'pipe', 'inherit'], env: {PATH: '/usr/bin:/bin', LANG: 'C.UTF-8'},
    })
    child.stdin!.on('error', () => {})
    child.stdin!.write(JSON.stringify({secret: secret.toString('hex'), zygoteMaxForks: opts.zygoteMaxForks ?? 1000}) + '\n')
    let markReady: (info: {python: string; subreaper: boolean}) => void = () => {}
    const self: Helper = {
      process: child,
      secret,
      socketPath,
      alive: true,
      listening: false,
      ready: new Promise((resolve, reject) => {
        markReady = resolve
        const timer = setTimeout(() => reject(new Error(`launcher: not ready within ${STARTUP_TIMEOUT_MS} ms`)), STARTUP_TIMEOUT_MS)
        timer.unref()
        child.once('error', (error) => reject(new Error(`launcher: ${pythonPath}: ${error.message}`)))
        child.once('exit', (code) => reject(new Error(`launcher: ${pythonPath} exited with ${code} before it was ready`)))
      }),
    }
    self.ready.catch(() => {})
    let buffered = ''
    child.stdout!.setEncoding('utf8')
    child.stdout!.on('data', (chunk: string) => {
      buffered += chunk
      let newline
      while ((newline = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, newline)
        buffered = buffered.slice(newline + 1)
        let message: Record<string, unknown>
        try {
          message = JSON.parse(line) as Record<string, unknown>
        } catch {
          opts.onWarning?.(`launcher: unreadable line ${JSON.stringify(line.slice(0, 200))}`)
          continue
        }
        if (message.ready === true) {
          self.listening = true
          markReady({python: String(message.python), subreaper: message.subreaper === true})
        }
        else if (typeof message.fatal === 'string') opts.onWarning?.(`launcher: ${message.fatal}`)
        else if (typeof message.warning === 'string') opts.onWarning?.(`launcher: ${message.warning}`)
        else handleMessage(self, table, message)
      }
    })
    child.once('exit', () => {
      self.alive = false
      fs.rmSync(path.join(opts.socketDir, socketName), {force: true})
      // Runs whose end can no longer be reported: the launcher killed their process groups as it went.
      for (const [id, run] of table) {
        if (run.owner === self) finishRun(table, id, {code: null, signal: 'SIGKILL', failure: run.failure, warm: run.warm})
      }
    })
    return self
  }

  function handleMessage(owner: Helper, table: Map<number, PendingRun>, message: Record<string, unknown>): void {
    const id = message.id as number
    const run = table.get(id)
    if (!run || run.owner !== owner) return
    if (typeof message.pid === 'number') {
      run.pid = message.pid
      run.warm = message.warm === true
      run.resolvePid(message.pid)
      if (run.pendingSignal !== null) sendControl(owner, {kill: id, signal: constants.signals[run.pendingSignal]})
    } else if (typeof message.error === 'string') {
      run.failure = {stage: message.stage === 'exec' ? 'exec' : 'setup', message: message.error}
    } else if ('exit' in message) {
      const signal = typeof message.signal === 'number' ? signalName(message.signal) : null
      finishRun(table, id, {code: typeof message.exit === 'number' ? message.exit : null, signal, failure: run.failure, warm: run.warm})
    }
  }
}

function finishRun(runs: Map<number, PendingRun>, id: number, exit: LaunchExit): void {
  const run = runs.get(id)
  if (!run) return
  runs.delete(id)
  run.resolvePid(run.pid)
  if (exit.failure !== null && run.pid === null) {
    for (const socket of run.sockets) socket.destroy()
  }
  run.resolveExit(exit)
}
