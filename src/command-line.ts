// The command line of cgibox (DESIGN.md): flags, the JSON config file beneath them, help and version text.
// Pure parsing only; cli.ts starts the server.
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {parseArgs} from 'node:util'
import {LOCATION_PATH_KEYS, PATH_KEYS, type RawConfig} from './config.js'

export const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {version: string}).version

// Flag → config key; `int` flags must be non-negative integers.
const FLAGS = {
  'host': {key: 'host', kind: 'string'},
  'port': {key: 'port', kind: 'int'},
  'htdocs': {key: 'htdocs', kind: 'string'},
  'cgi-bin': {key: 'cgiBin', kind: 'string'},
  'sandbox': {key: 'sandbox', kind: 'string'},
  'timeout': {key: 'timeoutMs', kind: 'int'},
  'kill-grace': {key: 'killGraceMs', kind: 'int'},
  'max-output': {key: 'maxOutputBytes', kind: 'int'},
  'max-body': {key: 'maxBodyBytes', kind: 'int'},
  'max-header': {key: 'maxHeaderBytes', kind: 'int'},
  'max-concurrent': {key: 'maxConcurrent', kind: 'int'},
  'max-queued': {key: 'maxQueued', kind: 'int'},
  'queue-timeout': {key: 'queueTimeoutMs', kind: 'int'},
  'cpu-seconds': {key: 'cpuSeconds', kind: 'int'},
  'memory': {key: 'memoryBytes', kind: 'int'},
  'max-processes': {key: 'maxProcesses', kind: 'int'},
  'max-file-size': {key: 'maxFileBytes', kind: 'int'},
  'max-open-files': {key: 'maxOpenFiles', kind: 'int'},
  'tmp-size': {key: 'tmpBytes', kind: 'int'},
  'user': {key: 'user', kind: 'string'},
  'upload': {key: 'upload', kind: 'boolean'},
  'max-upload': {key: 'maxUploadBytes', kind: 'int'},
  'pass-authorization': {key: 'passAuthorization', kind: 'boolean'},
  'access-log': {key: 'accessLog', kind: 'string'},
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
  --max-output <bytes>    response bytes per run (default 134217728)
  --max-body <bytes>      request body bytes (default 67108864)
  --max-header <bytes>    script header block bytes (default 65536)
  --max-concurrent <n>    scripts running at once (default 2 × cores)
  --max-queued <n>        scripts waiting for a slot (default 100)
  --queue-timeout <ms>    longest wait for a slot before 503 (default 10000)
  --cpu-seconds <n>       CPU seconds per process (default 30)
  --memory <bytes>        memory per run (default 536870912)
  --max-processes <n>     processes per run (default 64)
  --max-file-size <bytes> largest file a script may write (default 16777216)
  --max-open-files <n>    open files per process (default 256)
  --tmp-size <bytes>      private /tmp size under bwrap (default 16777216)
  --user <name>           user scripts run as when cgibox is root (default nobody)
  --upload                accept file uploads into listed directories
  --max-upload <bytes>    largest upload (default 67108864)
  --pass-authorization    export the Authorization header to scripts
  --access-log <format>   combined | common | off (default combined)
  --help                  show this help
  --version               show the version
`

// Turns argv into raw settings: the config file's (paths relative to the file) with flags on top.
export function parseCommandLine(argv: readonly string[], cwd = process.cwd()): {help: boolean; version: boolean; raw: RawConfig; baseDir: string} {
  const options: Record<string, {type: 'string' | 'boolean'}> = {config: {type: 'string'}, help: {type: 'boolean'}, version: {type: 'boolean'}}
  for (const [flag, {kind}] of Object.entries(FLAGS)) options[flag] = {type: kind === 'boolean' ? 'boolean' : 'string'}
  let values: Record<string, string | boolean | undefined>
  try {
    ({values} = parseArgs({args: [...argv], options, strict: true, allowPositionals: false}))
  } catch (error) {
    throw new TypeError((error as Error).message.split('\n')[0])
  }
  let raw: RawConfig = {}
  if (typeof values.config === 'string') raw = readConfigFile(path.resolve(cwd, values.config), cwd)
  for (const [flag, {key, kind}] of Object.entries(FLAGS)) {
    const value = values[flag]
    if (value === undefined) continue
    if (kind === 'int') {
      if (typeof value !== 'string' || !/^\d+$/.test(value)) {
        throw new TypeError(`Expected the \`--${flag}\` option to be a non-negative integer, got \`${String(value)}\``)
      }
      raw[key] = Number(value)
    } else if (kind === 'string' && (key === 'htdocs' || key === 'cgiBin') && value !== '') {
      raw[key] = path.resolve(cwd, value as string)
    } else {
      raw[key] = value
    }
  }
  return {help: values.help === true, version: values.version === true, raw, baseDir: cwd}
}

function readConfigFile(file: string, cwd: string): RawConfig {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'))
  } catch (error) {
    throw new TypeError(`Expected the \`--config\` option to name a readable JSON file, got \`${path.relative(cwd, file) || file}\`: ${(error as Error).message}`)
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
