// Decides the argv that runs a script: a program mount, an interpreter from config.interpreters by extension,
// the TypeScript runner, or the script itself by its shebang. It never spawns anything and never reads the query.
import {constants} from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import type {Config} from '../config.js'
import {ForbiddenError, ScriptSetupError} from '../errors.js'
import type {ScriptRoute} from '../route.js'
import {createTsRunner, type TsRunner} from './ts-runner.js'

/** Interpreters are looked up here only, never on the PATH cgibox itself was started with. */
export const SAFE_PATH = '/usr/local/bin:/usr/bin:/bin'
/** The pseudo-command of config.interpreters that means "transpile with cgibox's TypeScript runner, run with node". */
export const TS_RUNNER_COMMAND = 'cgibox-ts'
/** A missing interpreter is looked up again at most this often (someone may be installing it). */
const DEFAULT_MISSING_RECHECK_MS = 5_000

// What run-cgi asks for a script's argv (CgiContext.commands).
export interface CommandResolver {
  /** The full argv for a script: interpreter (if any), then the script; no word of it comes from the request. */
  commandFor(script: ScriptRoute): Promise<string[]>
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

  async function commandFor(script: ScriptRoute): Promise<string[]> {
    // A program mount is the executable itself (Apache ScriptAlias); config validated its path at startup.
    if (script.mount !== null) return [script.mount.program]
    const extension = path.extname(script.scriptFilename).toLowerCase()
    const interpreter = Object.hasOwn(config.interpreters, extension) ? config.interpreters[extension] : undefined
    if (interpreter === undefined) {
      // No known extension: run by shebang, like lighttpd with cgi.execute-x-only (a .py file needs no x bit).
      await validateExecutable(script.scriptFilename)
      return [script.scriptFilename]
    }
    const [command, ...args] = interpreter
    if (command === undefined) throw new ScriptSetupError(`cgi: empty interpreter for ${extension}`)
    if (command === TS_RUNNER_COMMAND) {
      const compiled = await tsRunner.compile(script.scriptFilename)
      return [process.execPath, '--enable-source-maps', ...args, compiled]
    }
    const program = await findProgram(command, extension)
    // php-cgi gets no arguments: it finds the script in SCRIPT_FILENAME and runs only when REDIRECT_STATUS is
    // set (force-cgi-redirect), both set by the env builder. Verified with /usr/bin/php-cgi 8.2:
    //   env -i SCRIPT_FILENAME=/tmp/t.php REDIRECT_STATUS=200 REQUEST_METHOD=GET php-cgi      → runs t.php
    //   without REDIRECT_STATUS → "Security Alert! The PHP CGI cannot be accessed directly.", exit 255
    //   `php-cgi -s` shows the source instead of running it: a script path or any word on the command line is
    //   how CVE-2012-1823 / CVE-2024-4577 (query string turned into php-cgi options) arise, so there are none,
    //   and QUERY_STRING=-s with no arguments just runs the script.
    if (isPhpCgi(program)) return [program, ...args]
    return [program, ...args, script.scriptFilename]
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

function isPhpCgi(program: string): boolean {
  return /^php-cgi[\d.]*$/.test(path.basename(program))
}

async function isExecutableFile(file: string): Promise<boolean> {
  try {
    const stat = await fs.stat(file)
    if (!stat.isFile()) return false
    await fs.access(file, constants.X_OK)
    // root passes access(X_OK) when any x bit is set; require one anyway, like execve does.
    return (stat.mode & 0o111) !== 0
  } catch {
    return false
  }
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

async function validateExecutable(file: string): Promise<void> {
  if (!await isExecutableFile(file)) throw new ForbiddenError('cgi: script is not executable')
}
