// The server side of spawner.py: a long-lived helper that forks script runs, so the big Node process is not forked
// per request (Apache mod_cgid's design; fork of the server was 40% of its main thread under load). A run looks
// like a ChildProcess subset: pid (after 'spawn'), stdio sockets, 'spawn' / 'exit' / 'error' events.
import {spawn} from 'node:child_process'
import {EventEmitter} from 'node:events'
import {mkdtempSync, rmSync} from 'node:fs'
import net from 'node:net'
import {constants, tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import type {Rlimits} from './rlimits.js'

const SPAWNER_SOURCE = fileURLToPath(new URL('spawner.py', import.meta.url))
const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, number]) => [number, name as NodeJS.Signals]))
const STARTUP_TIMEOUT_MS = 5_000

// What the child does between fork and exec, in this order: session, stdio, cgroups, rlimits, gid, uid, cwd.
export interface SpawnerRequest {
  readonly argv: readonly string[]
  readonly env: Readonly<Record<string, string>>
  readonly cwd: string
  readonly uid: number | undefined
  readonly gid: number | undefined
  /** cgroup.procs files to join before exec. */
  readonly cgroups: readonly string[]
  readonly rlimits: Rlimits
  /** 3: the stdout socket goes to fd 3 and fd 1 is /dev/null (bwrap). */
  readonly stdoutFd: 1 | 3
}

// One run started through the spawner.
export interface SpawnedRun extends EventEmitter {
  /** Undefined until the spawner has forked the run ('spawn'). */
  readonly pid: number | undefined
  readonly stdin: net.Socket
  readonly stdout: net.Socket
  readonly stderr: net.Socket
}

export interface Spawner {
  /** False once the helper has exited; runs then go through child_process again. */
  readonly alive: boolean
  spawn(request: SpawnerRequest): SpawnedRun
  /** Stops the helper; its live runs are killed with it. */
  close(): Promise<void>
}

class Run extends EventEmitter implements SpawnedRun {
  pid: number | undefined
  constructor(readonly stdin: net.Socket, readonly stdout: net.Socket, readonly stderr: net.Socket) {
    super()
  }
}

// Starts spawner.py with python3 and resolves once it listens; rejects when python3 cannot run it.
export async function createSpawner(python = '/usr/bin/python3'): Promise<Spawner> {
  const dir = mkdtempSync(path.join(tmpdir(), 'cgibox-spawner-')) // 0700: only this user can connect
  const socketPath = path.join(dir, 'socket')
  // Nothing of the server's environment: runs get theirs whole from each request, and the helper needs none.
  const helper = spawn(python, ['-I', '-S', SPAWNER_SOURCE, socketPath], {
    stdio: ['pipe', 'pipe', 'inherit'], env: {PATH: '/usr/bin:/bin', LANG: 'C.UTF-8'},
  })
  const runs = new Map<number, Run>()
  let nextId = 1
  let buffered = ''
  let alive = true
  let markReady: () => void = () => {}
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve
    setTimeout(() => reject(new Error(`spawner: not ready within ${STARTUP_TIMEOUT_MS} ms`)), STARTUP_TIMEOUT_MS).unref()
    helper.once('error', reject)
    helper.once('exit', (code) => reject(new Error(`spawner: exited with ${code} before it was ready`)))
  })
  helper.stdout!.setEncoding('utf8')
  helper.stdout!.on('data', (chunk: string) => {
    buffered += chunk
    let newline
    while ((newline = buffered.indexOf('\n')) !== -1) {
      const message = JSON.parse(buffered.slice(0, newline)) as Record<string, unknown>
      buffered = buffered.slice(newline + 1)
      if (message.ready === true) markReady()
      else handleMessage(runs, message)
    }
  })
  helper.stdin!.on('error', () => {})
  helper.once('exit', () => {
    alive = false
    rmSync(dir, {recursive: true, force: true})
    // Runs whose end can no longer be reported: the helper killed their process groups as it went.
    for (const run of runs.values()) run.emit('exit', null, 'SIGKILL')
    runs.clear()
  })
  try {
    await ready
  } catch (error) {
    helper.kill('SIGKILL')
    rmSync(dir, {recursive: true, force: true})
    throw error
  }
  return {
    get alive() { return alive },
    spawn(request) {
      if (!alive) throw new Error('spawner: not running')
      const id = nextId++
      const run = new Run(connect(socketPath, id, 0), connect(socketPath, id, 1), connect(socketPath, id, 2))
      runs.set(id, run)
      // A stream that cannot connect means the run never starts: report it instead of waiting forever.
      for (const socket of [run.stdin, run.stdout, run.stderr]) {
        socket.once('error', (error) => {
          if (run.pid !== undefined || !runs.delete(id)) return
          for (const other of [run.stdin, run.stdout, run.stderr]) other.destroy()
          run.emit('error', error)
        })
      }
      helper.stdin!.write(JSON.stringify({...request, id}) + '\n')
      return run
    },
    close() {
      if (!alive) return Promise.resolve()
      return new Promise((resolve) => {
        helper.once('exit', () => resolve())
        helper.stdin!.end() // EOF: the helper kills what is left of its runs and exits
      })
    },
  }
}

function connect(socketPath: string, id: number, stream: number): net.Socket {
  const socket = net.connect(socketPath)
  const header = Buffer.alloc(5)
  header.writeUInt32BE(id)
  header.writeUInt8(stream, 4)
  socket.write(header)
  return socket
}

function handleMessage(runs: Map<number, Run>, message: Record<string, unknown>): void {
  const id = message.id as number
  const run = runs.get(id)
  if (!run) return
  if (typeof message.pid === 'number') {
    run.pid = message.pid
    run.emit('spawn')
  } else if (typeof message.error === 'string') {
    runs.delete(id)
    for (const socket of [run.stdin, run.stdout, run.stderr]) socket.destroy()
    run.emit('error', new Error(`spawner: fork failed: ${message.error}`))
  } else if ('exit' in message) {
    runs.delete(id)
    const signal = typeof message.signal === 'number' ? SIGNAL_NAMES.get(message.signal) ?? null : null
    run.emit('exit', typeof message.exit === 'number' ? message.exit : null, signal)
  }
}
