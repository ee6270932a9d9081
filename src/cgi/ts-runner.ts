// TypeScript pages: transpiles a .ts/.mts file with esbuild once per change of any of its inputs and caches the
// JavaScript (.mjs with an inline source map) in config.cacheDir. It does not type-check and does not run anything.
import {createHash, randomBytes} from 'node:crypto'
import {isBuiltin} from 'node:module'
import fs from 'node:fs/promises'
import path from 'node:path'
import {pathToFileURL} from 'node:url'
import * as esbuild from 'esbuild'
import {ScriptSetupError} from '../errors.js'
import {isInside} from '../router.js'

/** Bumped when the build options change, so caches written by an older cgibox are rebuilt. */
const CACHE_FORMAT_VERSION = 1
/** An input whose mtime falls within this window of a build may have changed while esbuild read it. */
const RACY_MTIME_SLACK_MS = 50
/** esbuild errors quoted in the log per failed build. */
const MAX_REPORTED_ERRORS = 5
const CACHE_DIR_MODE = 0o755
const CACHE_FILE_MODE = 0o644
/** Marks a resolve call made by the external-packages plugin itself, so it does not recurse. */
const RESOLVING_EXTERNAL = Symbol('cgibox-resolving-external')

// The stat fingerprint of one file that went into a build.
export interface TsInput {
  readonly path: string
  readonly mtimeMs: number
  readonly size: number
}

// What one transpiled page consists of; also the on-disk manifest next to the output.
interface CacheEntry {
  readonly version: number
  readonly source: string
  readonly outputPath: string
  readonly inputs: readonly TsInput[]
}

// Counters for tests and benchmarks.
export interface TsRunnerStats {
  /** esbuild builds started. */
  builds: number
  /** Requests answered from the in-memory entry after stat() checks only. */
  hits: number
  /** Entries adopted from an on-disk manifest (a restart with an unchanged page). */
  diskHits: number
}

// Compiles pages on demand; one per server, shared by all requests.
export interface TsRunner {
  /** Directory the cached .mjs files live in; a sandbox must bind it (read-only) for the scripts to load. */
  readonly cacheDir: string
  readonly stats: TsRunnerStats
  /** Returns the absolute path of the up-to-date .mjs for a .ts/.mts file; throws ScriptSetupError on a syntax error. */
  compile(sourcePath: string): Promise<string>
}

// Creates a runner that caches its output in cacheDir (created 0755 and owned by this user, files 0644).
// allowedRoots: the only directories a page may import from (packages stay external); default: the page's own.
export function createTsRunner(cacheDir: string, allowedRoots: readonly string[] = []): TsRunner {
  const root = path.resolve(cacheDir)
  const entries = new Map<string, CacheEntry>()
  const inflight = new Map<string, Promise<CacheEntry>>()
  const stats: TsRunnerStats = {builds: 0, hits: 0, diskHits: 0}
  let cacheDirReady: Promise<void> | undefined

  async function compile(sourcePath: string): Promise<string> {
    const source = path.resolve(sourcePath)
    for (;;) {
      const entry = entries.get(source)
      if (entry === undefined) break
      if (await isFresh(entry)) {
        stats.hits++
        return entry.outputPath
      }
      // Another request replaced the entry while we were checking it: check the newer one.
      if (entries.get(source) === entry) break
    }
    let pending = inflight.get(source)
    if (pending === undefined) {
      // Concurrent first requests (and requests right after an edit) share one build.
      pending = refresh(source).finally(() => inflight.delete(source))
      inflight.set(source, pending)
    }
    return (await pending).outputPath
  }

  async function refresh(source: string): Promise<CacheEntry> {
    cacheDirReady ??= prepareCacheDir(root)
    try {
      await cacheDirReady
    } catch (error) {
      cacheDirReady = undefined
      throw error
    }
    const outputPath = path.join(root, outputName(source))
    const remembered = entries.get(source)
    const known = remembered ?? await readManifest(outputPath, source)
    if (known !== undefined && await isFresh(known)) {
      // Usually a restart with an unchanged page: reuse the build of the previous process.
      if (remembered === undefined) stats.diskHits++
      else stats.hits++
      entries.set(source, known)
      return known
    }
    stats.builds++
    const entry = await build(source, outputPath, allowedRoots)
    if (!entry.inputs.some((input) => input.mtimeMs < 0)) {
      entries.set(source, entry)
      await writeAtomically(manifestPath(outputPath), JSON.stringify(entry))
    } else {
      // An input changed while esbuild read it; serve this build once and rebuild on the next request.
      entries.delete(source)
    }
    return entry
  }

  return {cacheDir: root, stats, compile}
}

async function build(source: string, outputPath: string, allowedRoots: readonly string[]): Promise<CacheEntry> {
  const buildStartMs = Date.now()
  const workingDir = process.cwd()
  let result: esbuild.BuildResult<{write: false; metafile: true}>
  try {
    result = await esbuild.build({
      entryPoints: [source],
      absWorkingDir: workingDir,
      outfile: outputPath,
      write: false,
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      // Inline, so the single atomically-renamed file always carries its own map; node --enable-source-maps then
      // reports the .ts file and line (sources are relative to the output, which node resolves).
      sourcemap: 'inline',
      sourcesContent: false,
      // Node's own conditions (no "module"), so an external package resolves to what node would load.
      conditions: [],
      metafile: true,
      logLevel: 'silent',
      plugins: [externalPackagesPlugin, confinePlugin(allowedRoots.length > 0 ? allowedRoots : [path.dirname(source)])],
    })
  } catch (error) {
    throw new ScriptSetupError(`cgi: cannot transpile ${source}: ${describeBuildFailure(error, workingDir)}`, {cause: error})
  }
  const output = result.outputFiles.find((file) => file.path === outputPath) ?? result.outputFiles[0]
  if (output === undefined) throw new ScriptSetupError(`cgi: esbuild wrote no output for ${source}`)
  await writeAtomically(outputPath, output.contents)
  const inputs = await Promise.all(Object.entries(result.metafile.inputs).map(async ([name, meta]) => {
    const file = path.resolve(workingDir, name) // metafile input paths are relative to absWorkingDir
    // Deleted since esbuild read it: keep this build for this request only.
    const stat = await fs.stat(file).catch(() => ({mtimeMs: -1, size: -1}))
    return {path: file, mtimeMs: stat.mtimeMs, size: stat.size, bytesRead: meta.bytes}
  }))
  const checkedMs = Date.now()
  // Racy inputs (git's "racy clean" problem): modified during the build, so the stat may not describe what
  // esbuild read. Such an input is recorded with mtime -1, which never matches, and the next request rebuilds.
  const isRacy = (input: (typeof inputs)[number]): boolean => input.size !== input.bytesRead ||
    (input.mtimeMs >= buildStartMs - RACY_MTIME_SLACK_MS && input.mtimeMs <= checkedMs + RACY_MTIME_SLACK_MS)
  return {
    version: CACHE_FORMAT_VERSION,
    source,
    outputPath,
    inputs: inputs.map((input) => ({path: input.path, mtimeMs: isRacy(input) ? -1 : input.mtimeMs, size: input.size})),
  }
}

// packages: 'external' would leave `import 'pkg'` bare, and node would then look for node_modules next to the
// cache file. Instead each package is resolved from the importing file and kept external as an absolute file URL.
// The build runs in the server, as the server's user, before any sandbox: without this a page could bundle any
// file the server can read (`import s from '/etc/shadow' with {type: 'text'}`) and print it from inside bwrap.
function confinePlugin(roots: readonly string[]): esbuild.Plugin {
  return {
    name: 'cgibox-confine',
    setup(build) {
      const realRoots = Promise.all(roots.map((root) => fs.realpath(root).catch(() => path.resolve(root))))
      build.onLoad({filter: /.*/, namespace: 'file'}, async (args) => {
        const real = await fs.realpath(args.path).catch(() => args.path)
        if ((await realRoots).some((root) => isInside(root, real))) return undefined
        return {errors: [{text: `${args.path} lies outside the page's roots (${roots.join(', ')})`}]}
      })
    },
  }
}

const externalPackagesPlugin: esbuild.Plugin = {
  name: 'cgibox-external-packages',
  setup(build) {
    build.onResolve({filter: /^[^./]/}, async (args) => {
      if (args.pluginData === RESOLVING_EXTERNAL || isBuiltin(args.path) || path.isAbsolute(args.path)) return undefined
      const resolved = await build.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: RESOLVING_EXTERNAL,
      })
      // Unresolvable: leave it to node at run time, as packages: 'external' would (e.g. an optional import()).
      if (resolved.errors.length > 0 || resolved.path === '') return {path: args.path, external: true}
      if (resolved.external) return {path: resolved.path, external: true}
      return {path: pathToFileURL(resolved.path).href, external: true}
    })
  },
}

// One log line: `file:line:column: text` per error (at most MAX_REPORTED_ERRORS), columns 1-based like tsc and node.
function describeBuildFailure(error: unknown, workingDir: string): string {
  const messages = (error as Partial<esbuild.BuildFailure>).errors
  if (!Array.isArray(messages) || messages.length === 0) return String(error)
  const lines = messages.slice(0, MAX_REPORTED_ERRORS).map(({location, text}) => location === null
    ? text
    : `${path.resolve(workingDir, location.file)}:${location.line}:${location.column + 1}: ${text}`)
  if (messages.length > MAX_REPORTED_ERRORS) lines.push(`(${messages.length - MAX_REPORTED_ERRORS} more errors)`)
  return lines.join('; ')
}

async function isFresh(entry: CacheEntry): Promise<boolean> {
  const checks = entry.inputs.map(async (input) => {
    const stat = await fs.stat(input.path)
    return stat.mtimeMs === input.mtimeMs && stat.size === input.size
  })
  checks.push(fs.stat(entry.outputPath).then(() => true)) // a cleaned-up cache file is rebuilt
  try {
    return (await Promise.all(checks)).every(Boolean)
  } catch {
    return false // an input or the output is gone
  }
}

function manifestPath(outputPath: string): string {
  return outputPath.replace(/\.mjs$/, '.json')
}

// One output per source path: a hash of the path, plus the file name for people reading the cache directory.
function outputName(source: string): string {
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 24)
  const stem = path.basename(source).replace(/\.m?ts$/i, '').replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40)
  return `${stem}-${hash}.mjs`
}

// The cache holds code that cgibox runs: refuse a directory someone else could have planted (it may sit in /tmp).
async function prepareCacheDir(dir: string): Promise<void> {
  await fs.mkdir(dir, {recursive: true, mode: CACHE_DIR_MODE})
  const stat = await fs.lstat(dir)
  const uid = process.getuid?.()
  if (!stat.isDirectory() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o022) !== 0) {
    throw new ScriptSetupError(
      `cgi: TypeScript cache directory ${dir} must be a directory owned by uid ${uid} and writable only by it`)
  }
  // mkdir's mode is masked by the umask; sandboxed scripts running as another user must be able to read the cache.
  if ((stat.mode & 0o777) !== CACHE_DIR_MODE) await fs.chmod(dir, CACHE_DIR_MODE)
}

async function readManifest(outputPath: string, source: string): Promise<CacheEntry | undefined> {
  try {
    const entry = JSON.parse(await fs.readFile(manifestPath(outputPath), 'utf8')) as CacheEntry
    const valid = entry.version === CACHE_FORMAT_VERSION && entry.source === source && entry.outputPath === outputPath &&
      Array.isArray(entry.inputs) && entry.inputs.length > 0
    return valid ? entry : undefined
  } catch {
    return undefined
  }
}

// Temp file + rename: a script starting meanwhile reads either the old or the new file, never half of one.
async function writeAtomically(file: string, contents: string | Uint8Array): Promise<void> {
  const temp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`
  try {
    const handle = await fs.open(temp, 'wx', CACHE_FILE_MODE)
    try {
      await handle.writeFile(contents)
      await handle.chmod(CACHE_FILE_MODE) // the open mode is masked by the umask
    } finally {
      await handle.close()
    }
    await fs.rename(temp, file)
  } catch (error) {
    await fs.rm(temp, {force: true})
    throw error
  }
}
