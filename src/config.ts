// The settings of one cgibox server: defaults in one place, validated once at startup (execa normalizeOptions).
// Nothing here is validated per request; every other module reads a frozen Config with no optional fields.
import os, {availableParallelism} from 'node:os'
import fs from 'node:fs'
import path from 'node:path'
import bytes from 'bytes'
import {createAddressList} from './address-list.js'

export type SandboxLevel = 'none' | 'rlimit' | 'bwrap'
export type SandboxSetting = SandboxLevel | 'auto'
export const SANDBOX_SETTINGS: readonly SandboxSetting[] = ['auto', 'none', 'rlimit', 'bwrap']

// Limits of one script run. Each is global and can be overridden per mount.
export interface Limits {
  /** Wall-clock deadline of a run. Default: `30_000`. */
  readonly timeoutMs: number
  /** Delay between SIGTERM and SIGKILL for trusted levels (none, rlimit). Default: `2_000`. */
  readonly killGraceMs: number
  /** Response body bytes a script may write. Default: `128 MiB`. */
  readonly maxOutputBytes: number
  /** Request body bytes a script may receive (413 past it). Default: `64 MiB`. */
  readonly maxBodyBytes: number
  /** Size of the script's CGI header block. Default: `64 KiB`. */
  readonly maxHeaderBytes: number
  /** CPU seconds per process (RLIMIT_CPU). Default: `30`. */
  readonly cpuSeconds: number
  /** Memory of a run: cgroup memory limit when available, else the data segment per process. Default: `512 MiB`. */
  readonly memoryBytes: number
  /** Processes and threads of a run (cgroup pids.max, else RLIMIT_NPROC on a per-run uid). Default: `64`. */
  readonly maxProcesses: number
  /** Largest file a script may write (RLIMIT_FSIZE). Default: `16 MiB`. */
  readonly maxFileBytes: number
  /** Open files per process (RLIMIT_NOFILE). Default: `256`. */
  readonly maxOpenFiles: number
  /** Size of the private /tmp of a bwrap run. Default: `16 MiB`. */
  readonly tmpBytes: number
  /** stderr bytes kept for the log per run; the rest is read and dropped. Default: `64 KiB`. */
  readonly maxStderrBytes: number
}

/** HTTP Basic authentication of a location (Apache AuthType Basic + AuthUserFile). */
export interface AuthSettings {
  /** Shown by the browser's password prompt; also the realm of WWW-Authenticate. */
  readonly realm: string
  /** Absolute path of an htpasswd file (bcrypt `$2y$`, APR1 `$apr1$` or SHA1 `{SHA}` hashes). */
  readonly htpasswd: string
}

// The policy of every request under a URL prefix (nginx `location`, Apache `<Location>`); the longest prefix wins.
export interface Location {
  /** Where it was configured, for messages: `locations[2]` or `mounts[0]`. */
  readonly option: string
  /** URL path prefix, matched by whole segments, starting with `/`, e.g. `/cgi-bin/guestbook/`. */
  readonly prefix: string
  /** An executable that serves every request under the prefix (Apache ScriptAlias); null: the usual routing. */
  readonly program: string | null
  /** The sandbox level of runs here; null: the server's level. */
  readonly sandbox: SandboxLevel | null
  /** A fixed user for every run here, instead of a uid of the pool (cgibox must be root); null: the default. */
  readonly user: string | null
  /** Extra paths runs here may read (bwrap: bound read-only at their host paths). Default: `[]`. */
  readonly readPaths: readonly string[]
  /** Paths runs here may write (bwrap: bound read-write; other levels: plain access). Default: `[]`. */
  readonly writePaths: readonly string[]
  /** Extra environment of runs here, applied after the global `env`. */
  readonly env: Readonly<Record<string, string>>
  /** Export the Authorization header as HTTP_AUTHORIZATION. Default: the global setting. */
  readonly passAuthorization: boolean
  /** The sandbox level this location needs at least; cgibox refuses to start without it. Default: none. */
  readonly requireSandbox: SandboxLevel | null
  /** Basic authentication for every request here (scripts and files); null: none. */
  readonly auth: AuthSettings | null
  /** Limits of runs here (global limits with this location's overrides). */
  readonly limits: Limits
  /** Run Python scripts here in a warm zygote where it is safe. Default: the global `warmPython`. */
  readonly warmPython: boolean
  /** Accept uploads into the listed directories here. Default: the global `upload`. */
  readonly upload: boolean
}

export interface Config {
  /** Default: `127.0.0.1`. */
  readonly host: string
  /** Default: `8080`; 0 picks a free port. */
  readonly port: number
  /** Document root, absolute. Default: `./htdocs`. */
  readonly htdocs: string
  /** Script directory mounted at /cgi-bin/ and /htbin/, absolute. Default: `./cgi-bin`. */
  readonly cgiBin: string
  /** Default: `auto`. */
  readonly sandbox: SandboxSetting
  readonly limits: Limits
  /** Scripts running at once. Default: `2 × cores`. */
  readonly maxConcurrent: number
  /** Scripts waiting for a slot; past it, 503 at once. Default: `100`. */
  readonly maxQueued: number
  /** How long a script waits for a slot before 503. Default: `10_000`. */
  readonly queueTimeoutMs: number
  /** How long running scripts may finish after SIGINT/SIGTERM. Default: `5_000`. */
  readonly shutdownGraceMs: number
  /** Connections open at once; past it the oldest idle one is closed (or the new one). Default: `min(10 000, open files / 4)`. */
  readonly maxConnections: number
  /** How long a connection may take to send a request's headers, or stay silent before its first. Default: `10_000`. */
  readonly headersTimeoutMs: number
  /** How long an idle keep-alive connection stays open after a response. Default: `5_000`. */
  readonly keepAliveTimeoutMs: number
  /** How long the whole request (headers and body) may take to arrive; 0 = no limit. Default: `300_000`. */
  readonly requestTimeoutMs: number
  /** A request body (to a script or an upload) that sends nothing for this long is dropped with 408. Default: `30_000`. */
  readonly bodyIdleTimeoutMs: number
  /** Bytes all spooled (chunked) bodies and uploads in progress may hold on disk at once; 503 past it. Default: `512 MiB`. */
  readonly maxSpoolBytes: number
  /** Per-prefix policy, in config order; `mounts` entries come first, as locations with a program. */
  readonly locations: readonly Location[]
  /** Extension (lower case, with dot) → command that runs a script with it. */
  readonly interpreters: Readonly<Record<string, readonly string[]>>
  /** Extensions that run as scripts anywhere under htdocs (never `.js`: those are browser assets there).
   * Default: `['.py', '.ts', '.mts', '.pl', '.php', '.rb', '.sh', '.cgi']`. */
  readonly pageExtensions: readonly string[]
  /** Extra environment for every script. Default: `{}`. */
  readonly env: Readonly<Record<string, string>>
  /** Export the Authorization header to scripts (HTTP_AUTHORIZATION). Default: `false`. */
  readonly passAuthorization: boolean
  /**
   * Run `python3 script.py` scripts in a warm zygote (a python3 past its start-up that forks per run) at the none and
   * rlimit levels; bwrap runs are always exec'd. Default: `true`.
   */
  readonly warmPython: boolean
  /** User scripts run as when cgibox runs as root at the `none` level (and with uidPoolSize 0). Default: `nobody`. */
  readonly user: string
  /** First uid of the per-run uid pool: when cgibox is root, each rlimit/bwrap run gets a uid of its own. Default: `61000`. */
  readonly uidPoolStart: number
  /** Size of that pool; 0 runs every script as `user` instead. Default: `1000`. */
  readonly uidPoolSize: number
  /** Accept uploads into listed directories. Default: `false`. */
  readonly upload: boolean
  /** Largest upload. Default: `64 MiB`. */
  readonly maxUploadBytes: number
  /** Where cgibox keeps its run-time directories. Default: `/run/cgibox` as root, else `$XDG_RUNTIME_DIR/cgibox`, else `<tmpdir>/cgibox-<uid>`. */
  readonly runtimeDir: string
  /** Where transpiled .ts pages are cached. Default: `<runtimeDir>/ts-cache`. */
  readonly cacheDir: string
  /** `combined`, `common` or `off`. Default: `combined`. */
  readonly accessLog: 'combined' | 'common' | 'off'
  /** `text` (access lines in Combined Log Format, records as key=value) or `json` (pino JSON lines). Default: `text`. */
  readonly logFormat: 'text' | 'json'
  /** Addresses and CIDR ranges besides loopback that may use /.cgibox/ (health, metrics, status). Default: `[]`. */
  readonly adminAllow: readonly string[]
  /**
   * Proxies whose X-Forwarded-For is believed: REMOTE_ADDR is then the client it names (the last address not itself a
   * trusted proxy), and the access log and status page show it. Default: `[]` (REMOTE_ADDR is always the peer).
   */
  readonly trustProxy: readonly string[]
  /** On SIGTERM, how long health answers 503 while new connections are still accepted, before they are refused. Default: `0`. */
  readonly drainMs: number
  /** How long a small static file (≤ 4 MiB) is served from memory before the disk is checked again; 0 = never. Default: `1_000`. */
  readonly staticCacheMs: number
}

const MIB = 1024 * 1024
/** Limits and settings counted in bytes: they accept sizes with units (`512M`, `1G`, `64KiB`). */
const SIZE_KEYS = new Set(['maxOutputBytes', 'maxBodyBytes', 'maxHeaderBytes', 'memoryBytes', 'maxFileBytes', 'tmpBytes', 'maxStderrBytes', 'maxUploadBytes', 'maxSpoolBytes'])

export const DEFAULT_LIMITS: Limits = Object.freeze({
  timeoutMs: 30_000,
  killGraceMs: 2_000,
  maxOutputBytes: 128 * MIB,
  maxBodyBytes: 64 * MIB,
  maxHeaderBytes: 64 * 1024,
  cpuSeconds: 30,
  memoryBytes: 512 * MIB,
  maxProcesses: 64,
  maxFileBytes: 16 * MIB,
  maxOpenFiles: 256,
  tmpBytes: 16 * MIB,
  maxStderrBytes: 64 * 1024,
})

export const DEFAULT_INTERPRETERS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  '.py': ['python3'],
  '.ts': ['cgibox-ts'],
  '.mts': ['cgibox-ts'],
  '.js': ['node'],
  '.mjs': ['node'],
  '.pl': ['perl'],
  '.rb': ['ruby'],
  '.php': ['php-cgi'],
  '.sh': ['sh'],
})

const LIMIT_KEYS = Object.keys(DEFAULT_LIMITS) as (keyof Limits)[]
const TOP_KEYS = [
  'host', 'port', 'htdocs', 'cgiBin', 'sandbox', 'maxConcurrent', 'maxQueued', 'queueTimeoutMs', 'shutdownGraceMs',
  'maxConnections', 'headersTimeoutMs', 'keepAliveTimeoutMs', 'requestTimeoutMs', 'bodyIdleTimeoutMs', 'maxSpoolBytes',
  'mounts', 'locations', 'interpreters', 'pageExtensions', 'env', 'passAuthorization', 'user', 'uidPoolStart',
  'uidPoolSize', 'upload', 'maxUploadBytes', 'runtimeDir', 'cacheDir', 'accessLog', 'logFormat', 'adminAllow', 'trustProxy', 'drainMs', 'staticCacheMs',
  'warmPython', 'limits',
  ...LIMIT_KEYS,
]
const LOCATION_KEYS = [
  'prefix', 'program', 'sandbox', 'user', 'readPaths', 'writePaths', 'env', 'passAuthorization', 'requireSandbox',
  'auth', 'warmPython', 'upload', 'limits', ...LIMIT_KEYS,
]
/** Keys whose values are paths, resolved against the config file's directory (command-line.ts) or baseDir. */
export const PATH_KEYS = ['htdocs', 'cgiBin', 'runtimeDir', 'cacheDir'] as const
export const LOCATION_PATH_KEYS = ['program', 'readPaths', 'writePaths'] as const

// Where cgibox keeps its run-time directories by default: shared with the runs' uids when root (/run/cgibox), private
// to the user otherwise ($XDG_RUNTIME_DIR/cgibox, else <tmpdir>/cgibox-<uid>).
export function defaultRuntimeBase(): string {
  if (process.getuid?.() === 0) return '/run/cgibox'
  const xdg = process.env.XDG_RUNTIME_DIR
  if (xdg && path.isAbsolute(xdg)) return path.join(xdg, 'cgibox')
  return path.join(os.tmpdir(), `cgibox-${process.getuid?.() ?? 0}`)
}

// A connection cap below the open-files limit: a quarter of it (each run also holds descriptors), at most 10 000.
function defaultMaxConnections(): number {
  let openFiles = 1024
  try {
    const match = /^Max open files\s+(\d+)/m.exec(fs.readFileSync('/proc/self/limits', 'utf8'))
    if (match) openFiles = Number(match[1])
  } catch {
    // no /proc: the usual default of 1024
  }
  return Math.max(64, Math.min(10_000, Math.floor(openFiles / 4)))
}

// Raw settings as they come from a JSON file or the command line; limits may sit at the top level or under `limits`.
export type RawConfig = Record<string, unknown>

/** How an option is named in messages: a top-level key may be shown as the flag that set it (`--timeout`). */
export type OptionNames = Readonly<Record<string, string>>

// Turns raw settings (file, then flags) into a frozen Config; throws a TypeError naming option, value and expectation.
// `names` renames top-level keys in messages (command-line.ts passes the flags that were given).
export function normalizeConfig(raw: RawConfig, baseDir = process.cwd(), names: OptionNames = {}): Config {
  optionNames = names
  try {
    return normalize(raw, baseDir)
  } finally {
    optionNames = {}
  }
}

let optionNames: OptionNames = {}

function normalize(raw: RawConfig, baseDir: string): Config {
  validateKnownKeys(raw, TOP_KEYS, 'config')
  const {
    host = '127.0.0.1',
    port = 8080,
    htdocs = 'htdocs',
    cgiBin = 'cgi-bin',
    sandbox = 'auto',
    maxConcurrent = 2 * availableParallelism(),
    maxQueued = 100,
    queueTimeoutMs = 10_000,
    shutdownGraceMs = 5_000,
    maxConnections = defaultMaxConnections(),
    headersTimeoutMs = 10_000,
    keepAliveTimeoutMs = 5_000,
    requestTimeoutMs = 300_000,
    bodyIdleTimeoutMs = 30_000,
    maxSpoolBytes = 512 * MIB,
    mounts = [],
    locations = [],
    interpreters = {},
    pageExtensions = ['.py', '.ts', '.mts', '.pl', '.php', '.rb', '.sh', '.cgi'],
    env = {},
    passAuthorization = false,
    user = 'nobody',
    uidPoolStart = 61_000,
    uidPoolSize = 1_000,
    upload = false,
    maxUploadBytes = 64 * MIB,
    runtimeDir = defaultRuntimeBase(),
    accessLog = 'combined',
    logFormat = 'text',
    adminAllow = [],
    trustProxy = [],
    drainMs = 0,
    staticCacheMs = 1_000,
    warmPython = true,
  } = raw
  const normalizedWarmPython = expectBoolean('warmPython', warmPython)
  const normalizedUpload = expectBoolean('upload', upload)
  const normalizedRuntimeDir = path.resolve(baseDir, expectString('runtimeDir', runtimeDir))
  const cacheDir = raw.cacheDir ?? path.join(normalizedRuntimeDir, 'ts-cache')
  const limits = normalizeLimits(raw, DEFAULT_LIMITS, '')
  const normalizedPassAuthorization = expectBoolean('passAuthorization', passAuthorization)
  const config: Config = {
    host: expectString('host', host),
    port: expectInteger('port', port, 0, 65_535),
    htdocs: path.resolve(baseDir, expectString('htdocs', htdocs)),
    cgiBin: path.resolve(baseDir, expectString('cgiBin', cgiBin)),
    sandbox: expectOneOf('sandbox', sandbox, SANDBOX_SETTINGS),
    limits,
    maxConcurrent: expectInteger('maxConcurrent', maxConcurrent, 1),
    maxQueued: expectInteger('maxQueued', maxQueued, 0),
    queueTimeoutMs: expectInteger('queueTimeoutMs', queueTimeoutMs, 0),
    shutdownGraceMs: expectInteger('shutdownGraceMs', shutdownGraceMs, 0),
    maxConnections: expectInteger('maxConnections', maxConnections, 1),
    headersTimeoutMs: expectInteger('headersTimeoutMs', headersTimeoutMs, 1),
    keepAliveTimeoutMs: expectInteger('keepAliveTimeoutMs', keepAliveTimeoutMs, 1),
    requestTimeoutMs: expectInteger('requestTimeoutMs', requestTimeoutMs, 0),
    bodyIdleTimeoutMs: expectInteger('bodyIdleTimeoutMs', bodyIdleTimeoutMs, 1),
    maxSpoolBytes: expectSize('maxSpoolBytes', maxSpoolBytes, 0),
    locations: [
      ...expectArray('mounts', mounts).map((mount, index) =>
        normalizeLocation(mount, `mounts[${index}]`, {limits, passAuthorization: normalizedPassAuthorization, warmPython: normalizedWarmPython, upload: normalizedUpload}, baseDir, true)),
      ...expectArray('locations', locations).map((location, index) =>
        normalizeLocation(location, `locations[${index}]`, {limits, passAuthorization: normalizedPassAuthorization, warmPython: normalizedWarmPython, upload: normalizedUpload}, baseDir, false)),
    ],
    interpreters: normalizeInterpreters(interpreters),
    pageExtensions: expectStringArray('pageExtensions', pageExtensions).map((extension) =>
      normalizeExtension('pageExtensions', extension)),
    env: expectEnv('env', env),
    passAuthorization: normalizedPassAuthorization,
    user: expectString('user', user),
    uidPoolStart: expectInteger('uidPoolStart', uidPoolStart, 1),
    uidPoolSize: expectInteger('uidPoolSize', uidPoolSize, 0),
    upload: normalizedUpload,
    maxUploadBytes: expectSize('maxUploadBytes', maxUploadBytes, 0),
    runtimeDir: normalizedRuntimeDir,
    cacheDir: path.resolve(baseDir, expectString('cacheDir', cacheDir)),
    accessLog: expectOneOf('accessLog', accessLog, ['combined', 'common', 'off'] as const),
    logFormat: expectOneOf('logFormat', logFormat, ['text', 'json'] as const),
    adminAllow: expectAddressList('adminAllow', adminAllow),
    trustProxy: expectAddressList('trustProxy', trustProxy),
    drainMs: expectInteger('drainMs', drainMs, 0),
    staticCacheMs: expectInteger('staticCacheMs', staticCacheMs, 0),
    warmPython: normalizedWarmPython,
  }
  validateUniquePrefixes(config.locations)
  return deepFreeze(config)
}

function normalizeLimits(raw: RawConfig, base: Limits, scope: string): Limits {
  const nested = raw.limits === undefined ? {} : expectObject(`${scope}limits`, raw.limits)
  validateKnownKeys(nested, LIMIT_KEYS, `${scope}limits`)
  const merged: Record<string, unknown> = {...base, ...nested}
  for (const key of LIMIT_KEYS) if (raw[key] !== undefined) merged[key] = raw[key]
  const min: Partial<Record<keyof Limits, number>> = {timeoutMs: 1, maxHeaderBytes: 256, cpuSeconds: 1, maxProcesses: 1, maxOpenFiles: 16}
  const limits = {} as Record<keyof Limits, number>
  for (const key of LIMIT_KEYS) {
    limits[key] = SIZE_KEYS.has(key)
      ? expectSize(`${scope}${key}`, merged[key], min[key] ?? 0)
      : expectInteger(`${scope}${key}`, merged[key], min[key] ?? 0)
  }
  return limits
}

// One entry of `locations` (or of `mounts`, the older name of locations with a program, which must have one).
function normalizeLocation(value: unknown, where: string, inherited: {limits: Limits; passAuthorization: boolean; warmPython: boolean; upload: boolean},
  baseDir: string, needsProgram: boolean): Location {
  const {limits, passAuthorization} = inherited
  const scope = `${where}.`
  const raw = expectObject(where, value)
  validateKnownKeys(raw, LOCATION_KEYS, where)
  const prefix = expectString(`${scope}prefix`, raw.prefix)
  if (!/^\/(?:[A-Za-z0-9._~-]+\/?)*$/.test(prefix) || prefix.split('/').some((part) => part === '..' || part === '.')) {
    throw new TypeError(`Expected the \`${scope}prefix\` option to be a URL path starting with /, like /cgi-bin/app/, got \`${prefix}\``)
  }
  const program = needsProgram || raw.program !== undefined ? path.resolve(baseDir, expectString(`${scope}program`, raw.program)) : null
  const levels = ['none', 'rlimit', 'bwrap'] as const
  return {
    option: where,
    prefix,
    program,
    sandbox: raw.sandbox === undefined || raw.sandbox === null ? null : expectOneOf(`${scope}sandbox`, raw.sandbox, levels),
    user: raw.user === undefined || raw.user === null ? null : expectString(`${scope}user`, raw.user),
    readPaths: expectStringArray(`${scope}readPaths`, raw.readPaths ?? []).map((item) => path.resolve(baseDir, item)),
    writePaths: expectStringArray(`${scope}writePaths`, raw.writePaths ?? []).map((item) => path.resolve(baseDir, item)),
    env: expectEnv(`${scope}env`, raw.env ?? {}),
    limits: normalizeLimits(raw, limits, scope),
    requireSandbox: raw.requireSandbox === undefined || raw.requireSandbox === null
      ? null
      : expectOneOf(`${scope}requireSandbox`, raw.requireSandbox, levels),
    passAuthorization: raw.passAuthorization === undefined
      ? passAuthorization
      : expectBoolean(`${scope}passAuthorization`, raw.passAuthorization),
    auth: raw.auth === undefined || raw.auth === null ? null : normalizeAuth(raw.auth, `${scope}auth`, baseDir),
    warmPython: raw.warmPython === undefined ? inherited.warmPython : expectBoolean(`${scope}warmPython`, raw.warmPython),
    upload: raw.upload === undefined ? inherited.upload : expectBoolean(`${scope}upload`, raw.upload),
  }
}

function normalizeAuth(value: unknown, where: string, baseDir: string): AuthSettings {
  const raw = expectObject(where, value)
  validateKnownKeys(raw, ['realm', 'htpasswd'], where)
  const realm = expectString(`${where}.realm`, raw.realm)
  if (/["\\\x00-\x1f\x7f]/.test(realm)) {
    throw new TypeError(`Expected the \`${where}.realm\` option to have no quotes, backslashes or control characters, got \`${realm}\``)
  }
  return {realm, htpasswd: path.resolve(baseDir, expectString(`${where}.htpasswd`, raw.htpasswd))}
}

// Two locations with the same prefix would leave one of them silently unused.
function validateUniquePrefixes(locations: readonly Location[]): void {
  const seen = new Set<string>()
  for (const location of locations) {
    const key = normalizePrefix(location.prefix)
    if (seen.has(key)) throw new TypeError(`Expected every location prefix to be different, got \`${location.prefix}\` twice`)
    seen.add(key)
  }
}

// The segments of a location prefix: `/a/b/` and `/a/b` are the same prefix.
export function prefixSegments(prefix: string): string[] {
  return prefix.split('/').filter(Boolean)
}

function normalizePrefix(prefix: string): string {
  return '/' + prefixSegments(prefix).join('/')
}

function normalizeInterpreters(value: unknown): Record<string, readonly string[]> {
  const raw = expectObject('interpreters', value)
  const result: Record<string, readonly string[]> = {...DEFAULT_INTERPRETERS}
  for (const [extension, command] of Object.entries(raw)) {
    const key = normalizeExtension('interpreters', extension)
    const argv = typeof command === 'string' ? [command] : command
    const list = expectStringArray(`interpreters["${extension}"]`, argv)
    if (list.length === 0) throw new TypeError(`Expected the \`interpreters["${extension}"]\` option to be a non-empty command, got \`[]\``)
    result[key] = list
  }
  return result
}

function normalizeExtension(name: string, extension: string): string {
  if (!/^\.[A-Za-z0-9]+$/.test(extension)) {
    throw new TypeError(`Expected the \`${name}\` option to hold extensions like ".py", got \`${extension}\``)
  }
  return extension.toLowerCase()
}

// The name of an option in a message: the flag that set it, when it came from the command line.
function label(name: string): string {
  return optionNames[name] ?? name
}

function describe(value: unknown): string {
  return `\`${typeof value === 'string' ? value : JSON.stringify(value)}\` (${Array.isArray(value) ? 'array' : typeof value})`
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner)
    Object.freeze(value)
  }
  return value
}

function expectArray(name: string, value: unknown): unknown[] {
  if (!Array.isArray(value)) throw new TypeError(`Expected the \`${label(name)}\` option to be an array, got ${describe(value)}`)
  return value
}

function expectAddressList(name: string, value: unknown): string[] {
  const list = expectStringArray(name, value)
  createAddressList(list, label(name)) // throws naming a bad entry
  return list
}

function expectBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`Expected the \`${label(name)}\` option to be a boolean, got ${describe(value)}`)
  return value
}

function expectEnv(name: string, value: unknown): Record<string, string> {
  const raw = expectObject(name, value)
  for (const [key, inner] of Object.entries(raw)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new TypeError(`Expected the \`${name}\` option to have variable names like FOO_BAR, got \`${key}\``)
    if (typeof inner !== 'string' || inner.includes('\0')) {
      throw new TypeError(`Expected the \`${name}.${key}\` option to be a string without NUL, got ${describe(inner)}`)
    }
  }
  return raw as Record<string, string>
}

function expectInteger(name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`
    throw new TypeError(`Expected the \`${label(name)}\` option to be ${range}, got ${describe(value)}`)
  }
  return value
}

// A byte count: an integer, or a string with a unit (`512M`, `1G`, `64KiB`, `1.5MB`; 1K = 1024, as in the bytes package).
function expectSize(name: string, value: unknown, min: number): number {
  if (typeof value === 'string') {
    const match = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$/i.exec(value.trim())
    // A fraction only with a unit: `1.5M` is whole bytes, `0.1` is not.
    const fractionWithoutUnit = match !== null && match[2] === '' && match[1]!.includes('.')
    const parsed = match === null || fractionWithoutUnit ? null : bytes.parse(`${match[1]}${match[2] ?? ''}b`)
    if (parsed === null || !Number.isSafeInteger(parsed) || parsed < min) {
      throw new TypeError(`Expected the \`${label(name)}\` option to be a size in bytes >= ${min}, like 65536, 512K, 64M or 1G, got ${describe(value)}`)
    }
    return parsed
  }
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min) {
    throw new TypeError(`Expected the \`${label(name)}\` option to be a size in bytes >= ${min}, like 65536, 512K, 64M or 1G, got ${describe(value)}`)
  }
  return value
}

function expectObject(name: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`Expected the \`${label(name)}\` option to be an object, got ${describe(value)}`)
  }
  return value as Record<string, unknown>
}

function expectOneOf<T extends string>(name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw new TypeError(`Expected the \`${label(name)}\` option to be one of ${allowed.join(', ')}, got ${describe(value)}`)
  }
  return value as T
}

function expectString(name: string, value: unknown): string {
  if (typeof value !== 'string' || value === '' || value.includes('\0')) {
    throw new TypeError(`Expected the \`${label(name)}\` option to be a non-empty string, got ${describe(value)}`)
  }
  return value
}

function expectStringArray(name: string, value: unknown): string[] {
  const list = expectArray(name, value)
  for (const item of list) expectString(name, item)
  return list as string[]
}

function validateKnownKeys(raw: Record<string, unknown>, known: readonly string[], scope: string): void {
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) throw new TypeError(`Unknown option \`${key}\` in ${scope}; known options: ${known.join(', ')}`)
  }
}
