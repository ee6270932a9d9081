// One server process of the bench (a peer or cgibox): started in a process group of its own with its output in a
// log file, so Ctrl-C in the terminal reaches only the bench, which stops it; stop() ends the whole group.
import {spawn} from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import {setTimeout as sleep} from 'node:timers/promises'

const STOP_GRACE_MS = 5_000
export const READY_TIMEOUT_MS = 15_000
const LOG_TAIL_BYTES = 2_000

// Spawns command; stdout goes to the log file too unless `pipeStdout` (then the caller must read it).
export function spawnServer(command, args, {cwd, env, logFile, pipeStdout = false}) {
  const log = fs.openSync(logFile, 'a')
  const child = spawn(command, args, {cwd, env, detached: true, stdio: ['ignore', pipeStdout ? 'pipe' : log, log]})
  fs.closeSync(log)
  const exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve(`exited with ${signal ?? code}`))
    child.once('error', (error) => resolve(error.message))
  })
  let gone = false
  void exited.then(() => { gone = true })
  // Should the bench itself crash, its servers (in groups of their own, out of reach of Ctrl-C) die with it.
  const killAtExit = () => { if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL', true) }
  process.once('exit', killAtExit)
  return {
    child,
    exited,
    logTail: () => readTail(logFile),
    // SIGTERM to the leader (Apache, lighttpd and cgibox stop their children themselves), SIGKILL to the group after
    // the grace, and once more for anything of the group that outlived its leader.
    async stop() {
      if (!gone && child.pid !== undefined) {
        signalGroup(child.pid, 'SIGTERM', false)
        const timer = setTimeout(() => signalGroup(child.pid, 'SIGKILL', true), STOP_GRACE_MS)
        await exited
        clearTimeout(timer)
      }
      killAtExit()
      process.removeListener('exit', killAtExit)
    },
  }
}

// Resolves once GET url answers 200; rejects with the server's log when it exits first or takes too long.
export async function waitForHttp(url, server, signal) {
  let exitReason = null
  void server.exited.then((reason) => { exitReason = reason })
  const deadline = Date.now() + READY_TIMEOUT_MS
  while (Date.now() < deadline) {
    signal.throwIfAborted()
    if (exitReason !== null) throw new Error(`${exitReason}: ${server.logTail()}`)
    if (await answers200(url)) return
    await sleep(50)
  }
  throw new Error(`no answer at ${url} within ${READY_TIMEOUT_MS} ms: ${server.logTail()}`)
}

function answers200(url) {
  return new Promise((resolve) => {
    http.get(url, {agent: false}, (response) => {
      response.resume()
      resolve(response.statusCode === 200)
    }).on('error', () => resolve(false))
  })
}

function signalGroup(pid, signal, wholeGroup) {
  try {
    process.kill(wholeGroup ? -pid : pid, signal)
  } catch {
    // already gone
  }
}

// The last lines of a log, on one line, for a message.
function readTail(file) {
  try {
    const text = fs.readFileSync(file, 'utf8')
    return text.slice(-LOG_TAIL_BYTES).trim().split('\n').slice(-5).join(' | ') || '(empty log)'
  } catch {
    return '(no log)'
  }
}
