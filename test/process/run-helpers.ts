// Helpers for the process-layer tests: sandboxes per level, a run whose output is collected, and the checks
// that nothing of a run is left (processes by marker, per-run cgroups).
import {randomUUID} from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {PassThrough} from 'node:stream'
import {fileURLToPath} from 'node:url'
import {onTestFinished} from 'vitest'
import {normalizeConfig, type Limits, type RawConfig} from '../../src/config.js'
import {findOwnCgroupDir} from '../../src/process/cgroup.js'
import {startLauncher, type Launcher} from '../../src/process/launcher.js'
import {startRun as startSupervisedRun, type Run} from '../../src/process/run.js'
import type {ResourceLimit} from '../../src/process/run-plan.js'
import {createRuntimeDir, type RuntimeDir} from '../../src/process/runtime-dir.js'
import {createSandbox, type Sandbox, type SandboxOptions} from '../../src/process/sandbox.js'

export const HOSTILE = fileURLToPath(new URL('../fixtures/hostile/', import.meta.url)).replace(/\/$/, '')
export const IS_ROOT = process.getuid?.() === 0
/** Tiny limits so the hostile fixtures hit them fast. */
export const TEST_LIMITS: Partial<Limits> = {
  killGraceMs: 300,
  maxProcesses: 24,
  memoryBytes: 192 * 1024 * 1024,
  maxFileBytes: 4 * 1024 * 1024,
  tmpBytes: 1024 * 1024,
  cpuSeconds: 20,
}
/** The environment every test run gets (the sandbox adds nothing of the server's). */
export const RUN_ENV = {PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8'}

/** A sandbox with what it runs on: its own run-time directory and launcher. */
export interface Box {
  readonly sandbox: Sandbox
  readonly launcher: Launcher
  readonly runtime: RuntimeDir
  readonly level: Sandbox['level']
  readonly bwrapUnavailableReason: string | null
  describe(): string
  close(): Promise<void>
}

export interface ExitStatus {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly resourceLimit: ResourceLimit | null
}

export interface FinishedRun {
  readonly status: ExitStatus
  readonly stdout: string
  readonly stderr: string
  readonly killReason: string | null
  readonly failure: {readonly stage: string; readonly message: string} | null
}

export interface StartedRun {
  readonly child: Run
  /** The run's stdin, when started with `stdin: 'keep-open'`. */
  readonly stdin: PassThrough
  /** Resolves with everything once the run has exited; rejects if that takes longer than `timeoutMs`. */
  finished(timeoutMs?: number): Promise<FinishedRun>
  /** Resolves once stdout contains `text` (bounded). */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>
}

// Creates a runtime directory, a launcher and a sandbox for `level` with the test limits (close them with close()).
export async function openSandbox(sandbox: RawConfig['sandbox'], options: SandboxOptions = {}, raw: RawConfig = {}): Promise<Box> {
  const config = normalizeConfig({sandbox, ...TEST_LIMITS, ...raw})
  const runtime = createRuntimeDir(config.runtimeDir)
  let launcher: Launcher | null = null
  try {
    launcher = await startLauncher({socketDir: runtime.launcherDir})
    const created = await createSandbox(config, {launcher, runtime}, options)
    const box: Box = {
      sandbox: created, launcher, runtime, level: created.level, bwrapUnavailableReason: created.bwrapUnavailableReason,
      describe: () => created.describe(),
      async close() {
        await created.close()
        await launcher!.close()
        runtime.remove()
      },
    }
    return box
  } catch (error) {
    await launcher?.close()
    runtime.remove()
    throw error
  }
}

// Starts argv in the sandbox with the test limits; cwd defaults to the hostile fixtures directory.
export function startRun(box: Box, argv: readonly string[], options: {
  cwd?: string; env?: Record<string, string>; limits?: Partial<Limits>; readPaths?: string[]; writePaths?: string[]
  /** `keep-open`: the test writes to `stdin` itself. Default: stdin is empty. */
  stdin?: 'end' | 'keep-open'
} = {}): StartedRun {
  const limits = normalizeConfig({...TEST_LIMITS, ...options.limits}).limits
  const stdin = new PassThrough()
  const location = options.writePaths === undefined ? null : normalizeConfig({
    locations: [{prefix: '/', writePaths: options.writePaths}],
  }).locations[0]!
  const planned = box.sandbox.plan({
    argv, env: options.env ?? RUN_ENV, cwd: options.cwd ?? HOSTILE, limits, location, readPaths: options.readPaths ?? [],
  })
  const child = startSupervisedRun(box.launcher, planned, {limits, body: options.stdin === 'keep-open' ? stdin : null})
  let stdout = ''
  const waiters: {text: string; resolve: () => void}[] = []
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk
    for (const waiter of waiters) if (stdout.includes(waiter.text)) waiter.resolve()
  })
  child.stdout.on('error', () => {})
  // A test that fails half-way still ends its run and waits for its cleanup (processes, cgroups).
  onTestFinished(async () => {
    child.kill('shutdown')
    await withTimeout(child.finished, 10_000, `run ${argv.join(' ')} did not end after kill`)
  })
  const streamClosed = new Promise((resolve) => child.stdout.once('close', resolve))
  return {
    child,
    stdin,
    async finished(timeoutMs = 20_000) {
      const outcome = await withTimeout(child.finished, timeoutMs, `run ${argv.join(' ')} did not exit; stdout: ${stdout}`)
      await withTimeout(streamClosed, timeoutMs, 'stdout did not close after the run ended')
      return {
        status: {code: outcome.code, signal: outcome.signal, resourceLimit: outcome.limitHit},
        stdout, stderr: outcome.stderr, killReason: outcome.killReason, failure: outcome.failure,
      }
    },
    waitForOutput(text, timeoutMs = 15_000) {
      if (stdout.includes(text)) return Promise.resolve()
      return withTimeout(new Promise<void>((resolve) => waiters.push({text, resolve})), timeoutMs,
        `no "${text}" in stdout: ${stdout}`)
    },
  }
}

// A unique word to put into a run's cmdline.
export function newMarker(): string {
  return `cgibox-t-${randomUUID()}`
}

// Live (non-zombie) processes whose cmdline contains marker.
export function processesWithMarker(marker: string): number[] {
  const found: number[] = []
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    try {
      if (fs.readFileSync(`/proc/${entry}/cmdline`, 'latin1').includes(marker)) found.push(Number(entry))
    } catch {
      // exited meanwhile
    }
  }
  return found
}

// The per-run cgroup directories of every sandbox of this test process (empty when every run was cleaned up).
export function liveRunCgroups(): string[] {
  return instanceCgroupDirs().flatMap((dir) => fs.readdirSync(dir).filter((name) => name.startsWith('run-')).map((name) => path.join(dir, name)))
}

// The instance cgroup directories (cgibox-<pid namespace>-<this pid>-<hex>) of this test process.
export function instanceCgroupDirs(): string[] {
  const dirs: string[] = []
  for (const controller of ['pids', 'memory'] as const) {
    const own = findOwnCgroupDir(controller)
    if (own === null || !fs.existsSync(own)) continue
    const mine = new RegExp(`^cgibox-\\d+-${process.pid}-[0-9a-f]+$`)
    for (const name of fs.readdirSync(own)) if (mine.test(name)) dirs.push(path.join(own, name))
  }
  return dirs
}

// Kills stray processes found by marker (cleanup for negative controls that are expected to leave one behind).
export function killMarked(marker: string): void {
  for (const pid of processesWithMarker(marker)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // gone
    }
  }
}

export function parseLines(text: string): Record<string, string> {
  const result: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const index = line.indexOf(': ')
    if (index > 0) result[line.slice(0, index)] = line.slice(index + 2).trim()
  }
  return result
}

function withTimeout<T>(promise: Promise<T>, timeoutMs: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(message)), timeoutMs) }),
  ])
}
