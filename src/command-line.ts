// The command line of cgibox (docs/architecture.md §5): flags, the JSON config file beneath them, help and version
// text. Pure parsing only; cli.ts starts the server.
import {readFileSync, statSync} from 'node:fs'
import path from 'node:path'
import {parseArgs} from 'node:util'
import {parse as parseJsonc, type ParseError} from 'jsonc-parser'
import {LOCATION_PATH_KEYS, PATH_KEYS, type Config, type OptionNames, type RawConfig} from './config.js'

export {VERSION} from './version.js'

// Flag → config key; `int` flags must be non-negative integers, `size` flags byte counts with an optional unit.
const FLAGS = {
  'host': {key: 'host', kind: 'string'},
  'port': {key: 'port', kind: 'int'},
  'htdocs': {key: 'htdocs', kind: 'string'},
  'cgi-bin': {key: 'cgiBin', kind: 'string'},
  'sandbox': {key: 'sandbox', kind: 'string'},
  'timeout': {key: 'timeoutMs', kind: 'int'},
  'kill-grace': {key: 'killGraceMs', kind: 'int'},
  'max-output': {key: 'maxOutputBytes', kind: 'size'},
  'max-body': {key: 'maxBodyBytes', kind: 'size'},
  'max-header': {key: 'maxHeaderBytes', kind: 'size'},
  'max-concurrent': {key: 'maxConcurrent', kind: 'int'},
  'max-queued': {key: 'maxQueued', kind: 'int'},
  'queue-timeout': {key: 'queueTimeoutMs', kind: 'int'},
  'cpu-seconds': {key: 'cpuSeconds', kind: 'int'},
  'memory': {key: 'memoryBytes', kind: 'size'},
  'max-processes': {key: 'maxProcesses', kind: 'int'},
  'max-file-size': {key: 'maxFileBytes', kind: 'size'},
  'max-open-files': {key: 'maxOpenFiles', kind: 'int'},
  'tmp-size': {key: 'tmpBytes', kind: 'size'},
  'user': {key: 'user', kind: 'string'},
  'upload': {key: 'upload', kind: 'boolean'},
  'max-upload': {key: 'maxUploadBytes', kind: 'size'},
  'pass-authorization': {key: 'passAuthorization', kind: 'boolean'},
  'access-log': {key: 'accessLog', kind: 'string'},
  'log-format': {key: 'logFormat', kind: 'string'},
} as const

export const HELP = `Usage: cgibox [options]

Serves CGI scripts (RFC 3875) from --cgi-bin at /cgi-bin/ and /htbin/, script pages (.py, .ts, …)
anywhere under --htdocs, and everything else under --htdocs as static files.

  --host <addr>           address to listen on (default 127.0.0.1)
  --port <n>              port; 0 picks a free one (default 8080)
  --htdocs <dir>          document root (default ./htdocs)
  --cgi-bin <dir>         script directory (default ./cgi-bin)
  --config <file>         JSON config file; flags override it
  --sandbox <level>       auto | none | rlimit | bwrap (default auto)
  --timeout <ms>          wall-clock deadline per run (default 30000)
  --kill-grace <ms>       SIGTERM → SIGKILL delay for trusted levels (default 2000)
  --max-output <size>     response bytes per run (default 128M; sizes take K, M, G)
  --max-body <size>       request body bytes (default 64M)
  --max-header <size>     script header block bytes (default 64K)
  --max-concurrent <n>    scripts running at once (default 2 × cores)
  --max-queued <n>        scripts waiting for a slot (default 100)
  --queue-timeout <ms>    longest wait for a slot before 503 (default 10000)
  --cpu-seconds <n>       CPU seconds per process (default 30)
  --memory <size>         memory per run (default 512M)
  --max-processes <n>     processes per run (default 64)
  --max-file-size <size>  largest file a script may write (default 16M)
  --max-open-files <n>    open files per process (default 256)
  --tmp-size <size>       private /tmp size under bwrap (default 16M)
  --user <name>           user scripts run as when cgibox is root (default nobody)
  --upload                accept file uploads into listed directories
  --max-upload <size>     largest upload (default 64M)
  --pass-authorization    export the Authorization header to scripts
  --access-log <format>   combined | common | off (default combined)
  --log-format <format>   text | json (JSON lines through pino; default text)
  -h, --help              show this help
  -v, --version           show the version
`

export interface CommandLine {
  readonly help: boolean
  readonly version: boolean
  /** The config file's settings (paths relative to the file) with the flags' on top. */
  readonly raw: RawConfig
  readonly baseDir: string
  /** Config keys set by a flag → that flag, so messages name what the user typed. */
  readonly names: OptionNames
  /** Path options given explicitly (flag or file): these must exist; a missing default cgi-bin is only a warning. */
  readonly explicitPaths: ReadonlySet<'htdocs' | 'cgiBin'>
}

// Turns argv into raw settings: the config file's (paths relative to the file) with flags on top.
export function parseCommandLine(argv: readonly string[], cwd = process.cwd()): CommandLine {
  const options: Record<string, {type: 'string' | 'boolean'; short?: string}> = {
    config: {type: 'string'}, help: {type: 'boolean', short: 'h'}, version: {type: 'boolean', short: 'v'},
  }
  for (const [flag, {kind}] of Object.entries(FLAGS)) options[flag] = {type: kind === 'boolean' ? 'boolean' : 'string'}
  let values: Record<string, string | boolean | undefined>
  try {
    ({values} = parseArgs({args: joinNegativeValues(argv, options), options, strict: true, allowPositionals: false}))
  } catch (error) {
    throw new TypeError(`${(error as Error).message.split('\n')[0]}; see cgibox --help`)
  }
  let raw: RawConfig = {}
  if (typeof values.config === 'string') raw = readConfigFile(path.resolve(cwd, values.config), cwd)
  const explicitPaths = new Set<'htdocs' | 'cgiBin'>((['htdocs', 'cgiBin'] as const).filter((key) => raw[key] !== undefined))
  const names: Record<string, string> = {}
  for (const [flag, {key, kind}] of Object.entries(FLAGS)) {
    const value = values[flag]
    if (value === undefined) continue
    names[key] = `--${flag}`
    if (kind === 'int') {
      if (typeof value !== 'string' || !/^\d+$/.test(value)) {
        throw new TypeError(`Expected the \`--${flag}\` option to be a non-negative integer, got \`${String(value)}\``)
      }
      raw[key] = Number(value)
    } else if (kind === 'string' && (key === 'htdocs' || key === 'cgiBin') && value !== '') {
      raw[key] = path.resolve(cwd, value as string)
      explicitPaths.add(key)
    } else {
      raw[key] = value
    }
  }
  return {help: values.help === true, version: values.version === true, raw, baseDir: cwd, names, explicitPaths}
}

// `--timeout -5` would make parseArgs say "argument is ambiguous"; a value flag followed by a word that starts with a
// dash and a digit is joined to it (`--timeout=-5`), so validation can say what was expected instead.
function joinNegativeValues(argv: readonly string[], options: Record<string, {type: string}>): string[] {
  const args: string[] = []
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index]!
    const next = argv[index + 1]
    const name = arg.startsWith('--') ? arg.slice(2) : null
    if (name !== null && options[name]?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      args.push(`${arg}=${next}`)
      index++
    } else {
      args.push(arg)
    }
  }
  return args
}

// Checks the document root and script directory exist: one line naming the option that points elsewhere. A missing
// cgi-bin is an error only when it was asked for; by default a site without one serves files and pages.
export function validateDirectories(config: Config, commandLine: Pick<CommandLine, 'names' | 'explicitPaths'>): void {
  for (const key of ['htdocs', 'cgiBin'] as const) {
    const dir = config[key]
    const stats = statSync(dir, {throwIfNoEntry: false})
    if (stats?.isDirectory()) continue
    if (key === 'cgiBin' && !commandLine.explicitPaths.has(key) && stats === undefined) continue
    const name = commandLine.names[key] ?? key
    throw new TypeError(`Expected the \`${name}\` option to name a directory, got \`${dir}\` (${stats === undefined ? 'it does not exist' : 'not a directory'})`)
  }
}

function readConfigFile(file: string, cwd: string): RawConfig {
  const shown = path.relative(cwd, file) || file
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw new TypeError(`Expected the \`--config\` option to name a readable JSON file, got \`${shown}\`: ${(error as Error).message}`)
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (error) {
    throw new TypeError(`Expected the \`--config\` file to be JSON: ${shown}:${locateJsonError(text)}: ${(error as Error).message}`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new TypeError(`Expected the \`--config\` file to hold a JSON object, got ${JSON.stringify(parsed)}`)
  }
  // Paths in a config file are relative to the file, as in Apache and lighttpd configs.
  const dir = path.dirname(file)
  const raw = {...parsed} as RawConfig
  for (const key of PATH_KEYS) {
    if (typeof raw[key] === 'string' && raw[key] !== '') raw[key] = path.resolve(dir, raw[key] as string)
  }
  for (const list of ['mounts', 'locations']) {
    if (Array.isArray(raw[list])) raw[list] = (raw[list] as unknown[]).map((entry) => resolveLocationPaths(entry, dir))
  }
  return raw
}


// Line:column (1-based) of the first JSON syntax error in text (jsonc-parser's offsets; JSON.parse does not always say).
export function locateJsonError(text: string): string {
  const errors: ParseError[] = []
  parseJsonc(text, errors, {disallowComments: true, allowTrailingComma: false, allowEmptyContent: false})
  const offset = errors[0]?.offset ?? text.length
  const before = text.slice(0, offset).split('\n')
  return `${before.length}:${before.at(-1)!.length + 1}`
}

// A location's program, readPaths, writePaths and auth.htpasswd, resolved against the config file's directory.
function resolveLocationPaths(entry: unknown, dir: string): unknown {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return entry
  const location = {...entry} as RawConfig
  const resolve = (value: unknown) => typeof value === 'string' && value !== '' ? path.resolve(dir, value) : value
  for (const key of LOCATION_PATH_KEYS) {
    const value = location[key]
    location[key] = Array.isArray(value) ? value.map(resolve) : resolve(value)
    if (value === undefined) delete location[key]
  }
  const auth = location.auth
  if (typeof auth === 'object' && auth !== null && !Array.isArray(auth)) location.auth = {...auth, htpasswd: resolve((auth as RawConfig).htpasswd)}
  return location
}
