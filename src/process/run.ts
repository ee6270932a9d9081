// One run's life, in one place: start it through the launcher, feed its stdin, cap its stdout, keep its stderr for
// the log, end it at the deadline, at the output cap, when the client leaves or at shutdown (the first reason wins),
// reap it, clean up after it, and produce its record. What the output means (CGI headers) is cgi/'s business.
import type {Readable} from 'node:stream'
import type {Limits} from '../config.js'
import {createByteCap} from '../limits/output-cap.js'
import {signalGroup, signalName} from './kill-tree.js'
import type {LaunchFailure, Launcher} from './launcher.js'
import type {PlannedRun, ResourceLimit} from './run-plan.js'

export type KillReason = 'deadline' | 'output-cap' | 'client-gone' | 'body-idle' | 'shutdown' | 'error'

export interface RunExit {
  readonly code: number | null
  /** The signal the program died of; bwrap's exit code 128 + N is read as signal N. */
  readonly signal: NodeJS.Signals | null
}

// What is known about a run once it is over and cleaned up.
export interface RunOutcome extends RunExit {
  readonly pid: number
  /** Why cgibox ended the run, or null when it ended by itself. */
  readonly killReason: KillReason | null
  /** The limit the kernel enforced (memory, processes, cpu, file-size), or null. */
  readonly limitHit: ResourceLimit | null
  /** Set when the program never started: the launcher's setup (cgibox's fault) or exec failed. */
  readonly failure: LaunchFailure | null
  readonly ms: number
  readonly bytesIn: number
  readonly bytesOut: number
  /** At most maxStderrBytes of the run's stderr, with a note of what was dropped. */
  readonly stderr: string
  /** Whether it ran in a warm Python zygote. */
  readonly warm: boolean
}

export interface RunOptions {
  readonly limits: Limits
  /** The request body, fed to stdin as the run reads it; null: stdin is empty. If it errors, the run is killed for body-idle. */
  readonly body: Readable | null
  /** Aborted when the client goes away: the run is killed for client-gone. */
  readonly clientGone?: AbortSignal
}

export interface Run {
  /** The direct child's pid, -1 until the launcher forked it. */
  readonly pid: number
  /**
   * stdout, capped: past maxOutputBytes the run is killed for output-cap and this stream errors. It ends cleanly only
   * when the run was not ended by cgibox and did not die of a signal (a crash, the memory limit): else it errors, so a
   * response it feeds is cut off, never completed.
   */
  readonly stdout: Readable
  /** The first reason cgibox ended the run for, or null. */
  readonly killReason: KillReason | null
  /** Ends the whole run; idempotent, the first reason wins. Trusted levels: SIGTERM, SIGKILL after the grace. */
  kill(reason: KillReason): void
  /** Resolves once the direct child has exited, before the run is cleaned up (never rejects). */
  readonly ended: Promise<RunExit>
  /** Resolves once every process of the run is gone and cleaned up: its slot may be reused (never rejects). */
  readonly released: Promise<void>
  /**
   * Resolves with the outcome once the run is released and its stdout has been read to its end (or dropped), so
   * the byte count is final: a slow client may read after the run is gone (never rejects).
   */
  readonly finished: Promise<RunOutcome>
  /** Bytes of stdout so far. */
  readonly bytesOut: number
}

/**
 * After stdout ends, how long to wait for the exit status before ending the stream cleanly anyway: a script that
 * closed its stdout and lingers has finished its output, and is killed at the deadline.
 */
const EXIT_WAIT_MS = 50
/** Hard kills of the live runs, for the process exit hook. */
const LIVE_RUNS = new Set<() => void>()
let exitHookInstalled = false

// Starts a planned run and supervises it until it is over.
export function startRun(launcher: Launcher, planned: PlannedRun, options: RunOptions): Run {
  const {limits} = options
  const {control} = planned
  const started = performance.now()
  const launched = launcher.launch(planned.plan)
  let pid = -1
  let killReason: KillReason | null = null
  let running = true
  let graceTimer: NodeJS.Timeout | undefined
  let bytesIn = 0
  const killHard = () => {
    launched.signal('SIGKILL')
    control.sweep()
  }
  const killAtExit = () => {
    if (pid > 0) signalGroup(pid, 'SIGKILL')
    control.sweep()
  }
  installExitHook()
  LIVE_RUNS.add(killAtExit)
  void launched.pid.then((value) => {
    if (value !== null) pid = value
  })

  const stdout = launched.stdout.pipe(createByteCap({
    limit: limits.maxOutputBytes,
    onExceed: () => kill('output-cap'),
    onEnd: async () => {
      const exit = await Promise.race([ended, new Promise<null>((resolve) => setTimeout(resolve, EXIT_WAIT_MS, null).unref())])
      if (killReason !== null) return new Error(`run: ended by cgibox (${killReason})`)
      return exit?.signal != null ? new Error(`run: died of ${exit.signal}`) : null
    },
  }))
  function kill(reason: KillReason): void {
    // A run whose direct child has exited was not killed: its record must not name a reason.
    if (killReason !== null || !running) return
    killReason = reason // recorded before the kill, so whoever sees the exit sees the reason (execa ??=)
    if (control.graceMs === 0) {
      killHard()
      return
    }
    launched.signal('SIGTERM')
    graceTimer = setTimeout(killHard, control.graceMs)
    graceTimer.unref()
  }
  launched.stdout.on('error', (error) => stdout.destroy(error))

  const deadline = setTimeout(() => kill('deadline'), limits.timeoutMs)
  const onClientGone = () => kill('client-gone')
  options.clientGone?.addEventListener('abort', onClientGone, {once: true})
  if (options.clientGone?.aborted) onClientGone()

  // stdin: the body as the run reads it. EPIPE: a script need not read its body; the rest is read and dropped.
  const {body} = options
  if (body !== null) {
    body.on('data', (chunk: Buffer) => { bytesIn += chunk.length })
    body.once('error', () => kill('body-idle')) // the client stopped sending the body it announced
    body.pipe(launched.stdin)
    launched.stdin.on('error', () => {
      body.unpipe(launched.stdin)
      body.resume()
    })
  } else {
    launched.stdin.on('error', () => {})
    launched.stdin.end()
  }
  const stderr = collectStderr(launched.stderr, limits.maxStderrBytes)

  const exited = launched.exit.then((exit) => {
    running = false
    clearTimeout(deadline)
    clearTimeout(graceTimer)
    options.clientGone?.removeEventListener('abort', onClientGone)
    // The leader is gone; whatever is left of the run dies now (no orphans keep running).
    if (pid > 0) signalGroup(pid, 'SIGKILL')
    return {exit, status: planned.exitCodesAreSignals ? signalFromExitCode(exit.code, exit.signal) : {code: exit.code, signal: exit.signal}}
  })
  const ended = exited.then(({status}) => status)
  const stdoutDone = new Promise<void>((resolve) => {
    stdout.once('close', resolve)
    stdout.once('error', () => resolve())
  })
  const cleaned = exited.then(async ({exit, status}) => {
    const limitHit = await control.cleanup(status)
    LIVE_RUNS.delete(killAtExit)
    return {exit, status, limitHit, ms: Math.round(performance.now() - started)}
  })
  const finished = cleaned.then(async ({exit, status, limitHit, ms}): Promise<RunOutcome> => {
    await stdoutDone
    return {
      ...status,
      pid,
      killReason,
      limitHit,
      failure: exit.failure,
      ms,
      bytesIn,
      bytesOut: stdout.bytes,
      stderr: await stderr,
      warm: exit.warm,
    }
  })
  return {
    get pid() { return pid },
    stdout,
    get killReason() { return killReason },
    get bytesOut() { return stdout.bytes },
    kill,
    ended,
    released: cleaned.then(() => {}),
    finished,
  }
}

// Keeps the first `max` bytes of stderr for the log and drains the rest (a flood must not block the script).
function collectStderr(stderr: Readable, max: number): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let kept = 0
    let dropped = 0
    stderr.on('data', (chunk: Buffer) => {
      if (kept < max) {
        const part = chunk.subarray(0, max - kept)
        chunks.push(part)
        kept += part.length
        dropped += chunk.length - part.length
      } else {
        dropped += chunk.length
      }
    })
    const done = () => resolve(Buffer.concat(chunks).toString('utf8') + (dropped ? `\n[${dropped} more bytes of stderr dropped]` : ''))
    stderr.once('end', done)
    stderr.once('error', done)
    stderr.once('close', done)
  })
}

// bwrap exits with 128 + N when its command died of signal N (as shells report it): a crash or an OOM kill of the
// script must read as a death by signal at every level, so that a response it had started is cut off.
function signalFromExitCode(code: number | null, signal: NodeJS.Signals | null): RunExit {
  if (signal !== null || code === null || code <= 128) return {code, signal}
  const name = signalName(code - 128)
  return name === null ? {code, signal} : {code: null, signal: name}
}

// On process exit (normal end, uncaught exception) every live run is SIGKILLed; the launcher, whose stdin closes,
// kills the process groups of its runs too, and bwrap runs die with their parent.
function installExitHook(): void {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    for (const killAtExit of LIVE_RUNS) killAtExit()
  })
}

