// Starts a real cgibox on 127.0.0.1:0 over the fixture tree, with a logger that records what it is told.
// The server is closed when the test finishes (fastify t.after(() => fastify.close())).
import {readFileSync} from 'node:fs'
import {fileURLToPath} from 'node:url'
import {onTestFinished} from 'vitest'
import {normalizeConfig, type RawConfig} from '../../src/config.js'
import type {AccessRecord, Logger, RunRecord} from '../../src/log.js'
import {startServer, type RunningServer} from '../../src/server.js'

export const FIXTURES = fileURLToPath(new URL('../fixtures/', import.meta.url))

export interface LogSink extends Logger {
  readonly runs: RunRecord[]
  readonly accesses: AccessRecord[]
  readonly errors: Array<{message: string; fields?: Record<string, unknown>}>
  readonly stderrs: Array<{requestId: string; script: string; text: string}>
}

// A Logger that keeps everything in arrays for assertions.
export function createLogSink(): LogSink {
  const sink: LogSink = {
    runs: [], accesses: [], errors: [], stderrs: [],
    access: (record) => void sink.accesses.push(record),
    run: (record) => void sink.runs.push(record),
    stderr: (requestId, script, text) => void sink.stderrs.push({requestId, script, text}),
    error: (message, fields) => void sink.errors.push({message, fields}),
    info: () => {},
  }
  return sink
}

export interface TestServer extends RunningServer {
  readonly log: LogSink
}

// Starts a server with the fixture htdocs and cgi-bin and the given settings on top.
export async function startTestServer(settings: RawConfig = {}): Promise<TestServer> {
  const config = normalizeConfig({
    port: 0,
    htdocs: `${FIXTURES}htdocs`,
    cgiBin: `${FIXTURES}cgi-bin`,
    sandbox: 'none',
    ...settings,
  })
  const log = createLogSink()
  const running = await startServer(config, {logger: log})
  onTestFinished(() => running.close())
  return Object.assign(running, {log})
}

// Parses the env-KEY=value lines printed by env.py into a map.
export function parseEnvDump(text: string): Record<string, string> {
  const env: Record<string, string> = {}
  for (const line of text.split('\n')) {
    const match = /^(env-[A-Z0-9_]+|argv-\d+|cwd)=(.*)$/i.exec(line)
    if (match) env[match[1]!.replace(/^env-/, '')] = match[2]!
  }
  return env
}

// Fetches a URL served by env.py (init as for fetch) and returns the status and the map it printed.
export async function cgiEnv(url: string, init?: RequestInit): Promise<{status: number; env: Record<string, string>}> {
  const response = await fetch(url, init)
  return {status: response.status, env: parseEnvDump(await response.text())}
}

// True while a process with this pid exists (and is not a zombie).
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch {
    return false
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}
