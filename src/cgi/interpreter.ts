// Decides the argv that runs a script: a location's program, the TypeScript runner (.ts/.mts), the script itself by
// its `#!` line when it is executable (as Apache, lighttpd and Python's http.server do), else an interpreter from
// config.interpreters by extension. It never spawns anything and never reads the query.
import fs from 'node:fs/promises'
import path from 'node:path'
import type {Config} from '../config.js'
import {isExecutableFile} from '../executable.js'
import {BadGatewayError, ForbiddenError, ScriptSetupError} from '../errors.js'
import type {WarmPython} from '../process/run-plan.js'
import type {ScriptRoute} from '../route.js'
import {createTsRunner, type TsRunner} from './ts-runner.js'

/** Interpreters are looked up here only, never on the PATH cgibox itself was started with. */
export const SAFE_PATH = '/usr/local/bin:/usr/bin:/bin'
/** The pseudo-command of config.interpreters that means "transpile with cgibox's TypeScript runner, run with node". */
export const TS_RUNNER_COMMAND = 'cgibox-ts'
/** A missing interpreter is looked up again at most this often (someone may be installing it). */
const DEFAULT_MISSING_RECHECK_MS = 5_000

/** The first line of a script is read up to this many bytes (Linux reads 256 for `#!`). */
const SHEBANG_BYTES = 256

// How a script is run.
export interface Command {
  /** The full argv: interpreter (if any), then the script; no word of it comes from the request. */
  readonly argv: string[]
  /** Files the run must see besides its argv and directory (a `#!` interpreter, bound under bwrap). */
  readonly readPaths: string[]
  /** Set when argv is exactly `python3 script` (by the map or the #! line): the run may start in a warm zygote. */
  readonly warm?: WarmPython | null
}

// What run-cgi asks for a script's argv.
export interface CommandResolver {
  commandFor(script: ScriptRoute): Promise<Command>
}

// Replaceable parts of a resolver, for tests and benchmarks.
export interface CommandResolverOptions {
  /** Transpiles .ts pages. Default: a runner caching in `config.cacheDir`. */
  readonly tsRunner?: TsRunner
  /** How long a failed interpreter lookup is trusted before it is repeated. Default: `5_000`. */
  readonly missingRecheckMs?: number
}

interface Lookup {
  readonly found: string | null
  readonly checkedAtMs: number
}

// Creates the resolver for one server; interpreter lookups are cached for the life of the server.
export function createCommandResolver(config: Config, options: CommandResolverOptions = {}): CommandResolver {
  // .ts pages may import only from the document root and the script directory (the build runs unsandboxed).
  const {tsRunner = createTsRunner(config.cacheDir, [config.htdocs, config.cgiBin]), missingRecheckMs = DEFAULT_MISSING_RECHECK_MS} = options
  const lookups = new Map<string, Promise<Lookup>>()
  // What an executable script runs as by its #! line (null: it has none), per script version (mtime, size, inode),
  // trusted for missingRecheckMs as interpreter lookups are: the first line is not read, and its interpreter not
  // checked (stat, access, the PATH walk of `env name`), on every request.
  const shebangCommands = new Map<string, {readonly key: string; readonly checkedAtMs: number; readonly command: Promise<Command | null>}>()

  async function commandFor(script: ScriptRoute): Promise<Command> {
    // A location's program is the executable itself (Apache ScriptAlias); config validated its path at startup.
    if (script.isProgram) return {argv: [script.scriptFilename], readPaths: []}
    const extension = path.extname(script.scriptFilename).toLowerCase()
    const interpreter = Object.hasOwn(config.interpreters, extension) ? config.interpreters[extension] : undefined
    if (interpreter?.[0] === TS_RUNNER_COMMAND) {
      const compiled = await tsRunner.compile(script.scriptFilename)
      return {argv: [process.execPath, '--enable-source-maps', ...interpreter.slice(1), compiled], readPaths: []}
    }
    const stats = await fs.stat(script.scriptFilename)
    if (isExecutableMode(stats.mode)) {
      // An executable file runs by its own `#!` line (`#!/usr/bin/perl -wT`, `#!/bin/bash`), or as the binary it is.
      const command = await commandByShebang(script.scriptFilename, `${stats.mtimeMs}:${stats.size}:${stats.ino}`)
      if (command !== null) return command
      if (interpreter === undefined) return {argv: [script.scriptFilename], readPaths: []}
    }
    if (interpreter === undefined) {
      // No known extension and not executable: nothing could run it (lighttpd cgi.execute-x-only).
      throw new ForbiddenError('cgi: script is not executable')
    }
    const argv = await interpreterCommand(interpreter, extension, script.scriptFilename)
    return {argv, readPaths: [], warm: warmPythonOf(argv, script.scriptFilename)}
  }

  // The argv of the map's interpreter for a script.
  async function interpreterCommand(interpreter: readonly string[], extension: string, scriptFilename: string): Promise<string[]> {
    const [command, ...args] = interpreter
    if (command === undefined) throw new ScriptSetupError(`cgi: empty interpreter for ${extension}`)
    const program = await findProgram(command, extension)
    // php-cgi gets no arguments: it finds the script in SCRIPT_FILENAME and runs only when REDIRECT_STATUS is
    // set (force-cgi-redirect), both set by the env builder. Verified with /usr/bin/php-cgi 8.2:
    //   env -i SCRIPT_FILENAME=/tmp/t.php REDIRECT_STATUS=200 REQUEST_METHOD=GET php-cgi      → runs t.php
    //   without REDIRECT_STATUS → "Security Alert! The PHP CGI cannot be accessed directly.", exit 255
    //   `php-cgi -s` shows the source instead of running it: a script path or any word on the command line is
    //   how CVE-2012-1823 / CVE-2024-4577 (query string turned into php-cgi options) arise, so there are none,
    //   and QUERY_STRING=-s with no arguments just runs the script.
    if (isPhpCgi(program)) return [program, ...args]
    return [program, ...args, scriptFilename]
  }

  // The script itself, after checking what its `#!` line names: a CRLF line or a missing interpreter is a 502 whose
  // log line says so, not a bare "No such file". php-cgi named there still gets no argument at all.
  async function shebangCommand(scriptFilename: string, line: string): Promise<Command> {
    const words = line.slice(2).trim().split(/[ \t]+/)
    const interpreter = words[0] ?? ''
    if (line.endsWith('\r')) {
      throw new BadGatewayError(`cgi: bad interpreter ${JSON.stringify((words.at(-1) ?? '') + '\r')}: CRLF line endings in ${scriptFilename}`)
    }
    if (!path.isAbsolute(interpreter)) throw new BadGatewayError(`cgi: bad interpreter ${JSON.stringify(interpreter)} in the #! line of ${scriptFilename}`)
    if (!await isExecutableFile(interpreter)) {
      throw new BadGatewayError(`cgi: bad interpreter ${JSON.stringify(interpreter)} (not an executable file) in the #! line of ${scriptFilename}`)
    }
    // `#!/usr/bin/env name`: env looks name up on the run's PATH, so it must be there.
    let envTarget: string | null = null
    if (path.basename(interpreter) === 'env' && words[1] !== undefined && !words[1].startsWith('-')) {
      envTarget = await lookUpProgram(words[1])
      if (envTarget === null) {
        throw new BadGatewayError(`cgi: bad interpreter "${words[1]}" (not found on PATH ${SAFE_PATH}) in the #! line of ${scriptFilename}`)
      }
    }
    if (isPhpCgi(interpreter)) return {argv: [interpreter], readPaths: []}
    // `#!/usr/bin/python3` or `#!/usr/bin/env python3`, no flags: what a zygote of that python reproduces.
    const viaEnv = path.basename(interpreter) === 'env' && words.length === 2
    const python = words.length === 1 ? interpreter : viaEnv ? envTarget : null
    const warm = python !== null ? warmPythonOf([python, scriptFilename], scriptFilename, viaEnv ? words[1]! : python) : null
    return {argv: [scriptFilename], readPaths: [interpreter], warm}
  }

  function commandByShebang(scriptFilename: string, key: string): Promise<Command | null> {
    const cached = shebangCommands.get(scriptFilename)
    if (cached?.key === key && Date.now() - cached.checkedAtMs < missingRecheckMs) return cached.command
    const command = readFirstLine(scriptFilename).then((line) => line === null ? null : shebangCommand(scriptFilename, line))
    shebangCommands.set(scriptFilename, {key, checkedAtMs: Date.now(), command})
    command.catch(() => shebangCommands.delete(scriptFilename)) // a bad line is checked (and logged) every time
    return command
  }

  // Resolves a command once; a missing one is looked up again after missingRecheckMs.
  async function findProgram(command: string, extension: string): Promise<string> {
    let pending = lookups.get(command)
    if (pending !== undefined) {
      const lookup = await pending
      if (lookup.found === null && Date.now() - lookup.checkedAtMs >= missingRecheckMs && lookups.get(command) === pending) {
        lookups.delete(command)
      }
    }
    pending = lookups.get(command)
    if (pending === undefined) {
      pending = lookUpProgram(command).then((found) => ({found, checkedAtMs: Date.now()}))
      lookups.set(command, pending)
    }
    const {found} = await pending
    if (found === null) {
      const where = command.includes('/') ? 'is not an executable file' : `not found on PATH ${SAFE_PATH}`
      throw new ScriptSetupError(`cgi: interpreter "${command}" for ${extension} ${where}`)
    }
    return found
  }

  return {commandFor}
}

async function readFirstLine(file: string): Promise<string | null> {
  const handle = await fs.open(file, 'r')
  try {
    const buffer = Buffer.alloc(SHEBANG_BYTES)
    const {bytesRead} = await handle.read(buffer, 0, SHEBANG_BYTES, 0)
    if (bytesRead < 2 || buffer[0] !== 0x23 || buffer[1] !== 0x21) return null
    const end = buffer.indexOf(0x0a)
    return buffer.subarray(0, end === -1 ? bytesRead : end).toString('latin1')
  } finally {
    await handle.close()
  }
}

function isExecutableMode(mode: number): boolean {
  return (mode & 0o111) !== 0
}

// `python3 script` exactly (python3 or python3.N, no flags): the warm zygote's case.
function warmPythonOf(argv: readonly string[], scriptFilename: string, argv0 = argv[0]!): WarmPython | null {
  if (argv.length !== 2 || argv[1] !== scriptFilename || !/^python3(\.\d+)?$/.test(path.basename(argv[0]!))) return null
  return {interpreter: argv[0]!, script: scriptFilename, argv0}
}

function isPhpCgi(program: string): boolean {
  return /^php-cgi[\d.]*$/.test(path.basename(program))
}

// A command with a slash is used as given (relative to cgibox's cwd); a bare name is searched on SAFE_PATH.
async function lookUpProgram(command: string): Promise<string | null> {
  if (command.includes('/')) {
    const file = path.resolve(command)
    return await isExecutableFile(file) ? file : null
  }
  for (const dir of SAFE_PATH.split(':')) {
    const file = path.join(dir, command)
    if (await isExecutableFile(file)) return file
  }
  return null
}
