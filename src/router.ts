// Maps a request path to what serves it (script, static file, directory, redirect), with the path policy in one
// place: decode once, refuse NUL, `..`, encoded separators and dotfiles, and keep real paths inside their root.
// Deciding happens here; doing happens in cgi/run-cgi.ts and static/ (lighttpd cgi_is_handled vs the subrequest).
import {realpath, stat} from 'node:fs/promises'
import type {Stats} from 'node:fs'
import path from 'node:path'
import {prefixSegments, type Config, type Location} from './config.js'
import {BadRequestError, ForbiddenError, NotFoundError} from './errors.js'
import {isExecutableFile} from './executable.js'
import type {Route, ScriptRoute} from './route.js'

// The URL prefixes of the script directory (Python http.server's cgi_directories).
export const CGI_PREFIXES: readonly string[] = ['cgi-bin', 'htbin']

export interface Router {
  resolveRoute(rawPath: string): Promise<Route>
  /** The location a request path falls under (longest prefix, whole segments), or null; throws on a bad path. */
  locationOf(rawPath: string): Location | null
  /** Whether any location asks for authentication (else locationOf need not be asked before the static cache). */
  readonly hasAuth: boolean
  /** The real (symlink-resolved) document root: DOCUMENT_ROOT, so SCRIPT_FILENAME lies under it. */
  readonly documentRoot: string
}

interface Roots {
  readonly htdocs: string
  /** Null when the site has no script directory: /cgi-bin/ is then not found. */
  readonly cgiBin: string | null
}

// Splits the raw (undecoded) path of a request into decoded segments, enforcing the path policy.
// Returns the segments and whether the path ended with a slash. Pure; throws HttpErrors.
export function splitUrlPath(rawPath: string): {segments: string[]; trailingSlash: boolean} {
  if (!rawPath.startsWith('/')) throw new BadRequestError(`path: not an absolute path: ${JSON.stringify(rawPath)}`)
  const segments: string[] = []
  for (const raw of rawPath.split('/')) {
    if (raw === '') continue // `//` collapses, as every server does
    let segment: string
    try {
      segment = decodeURIComponent(raw) // decoded exactly once: %252e stays the literal `%2e`
    } catch (error) {
      throw new BadRequestError(`path: bad percent-encoding in ${JSON.stringify(raw)}`, {cause: error})
    }
    if (segment.includes('\0')) throw new BadRequestError('path: NUL byte')
    if (segment === '..' || segment === '.') throw new ForbiddenError(`path: dot segment in ${JSON.stringify(rawPath)}`)
    // %2f and backslashes never act as separators: such a segment names nothing we serve.
    if (segment.includes('/') || segment.includes('\\')) throw new NotFoundError(`path: separator inside a segment: ${JSON.stringify(raw)}`)
    if (segment.startsWith('.')) throw new NotFoundError(`path: dotfile ${JSON.stringify(segment)}`)
    segments.push(segment)
  }
  return {segments, trailingSlash: rawPath.endsWith('/') && segments.length > 0}
}

// True when `child` is `root` or lies inside it (both absolute, normalised).
export function isInside(root: string, child: string): boolean {
  return child === root || child.startsWith(root.endsWith(path.sep) ? root : root + path.sep)
}

// Builds the router over the real (symlink-resolved) roots; call once at startup. `onWarning` hears of a missing
// script directory (the site then serves files and pages only).
export async function createRouter(config: Config, onWarning: (message: string) => void = () => {}): Promise<Router> {
  const cgiBin = await realpath(config.cgiBin).catch(() => null)
  if (cgiBin === null) onWarning(`warning: no script directory at ${config.cgiBin}: /cgi-bin/ and /htbin/ are not found (files and pages are served)`)
  const roots: Roots = {htdocs: await realpath(config.htdocs), cgiBin}
  const locations = config.locations.map((location) => ({location, segments: prefixSegments(location.prefix)}))
    .sort((a, b) => b.segments.length - a.segments.length)
  const scriptExtensions = new Set(config.pageExtensions)
  await Promise.all(config.locations.map(validateProgram))
  const entryOf = (segments: readonly string[]) =>
    locations.find((entry) => entry.segments.every((part, index) => segments[index] === part))
  return {
    documentRoot: roots.htdocs,
    hasAuth: config.locations.some((location) => location.auth !== null),
    locationOf: (rawPath) => entryOf(splitUrlPath(rawPath).segments)?.location ?? null,
    async resolveRoute(rawPath) {
      const {segments, trailingSlash} = splitUrlPath(rawPath)
      const entry = entryOf(segments)
      const location = entry?.location ?? null
      if (entry?.location.program) return programRoute(entry.location, entry.location.program, entry.segments.length, segments, trailingSlash)
      if (segments.length > 0 && CGI_PREFIXES.includes(segments[0]!)) {
        return cgiBinRoute(roots, location, segments, trailingSlash)
      }
      return htdocsRoute(roots, location, scriptExtensions, segments, trailingSlash)
    },
  }
}

// A location's program must be an executable regular file when cgibox starts, not a 502 on every request.
async function validateProgram(location: Location): Promise<void> {
  const program = location.program
  if (program === null) return
  if (!await isExecutableFile(program)) throw new TypeError(`Expected the \`${location.option}.program\` option to be an executable file, got \`${program}\``)
}

function programRoute(location: Location, program: string, depth: number, segments: readonly string[], trailingSlash: boolean): Route {
  const script: ScriptRoute = {
    scriptName: '/' + segments.slice(0, depth).join('/'),
    pathInfo: joinPathInfo(segments.slice(depth), trailingSlash),
    scriptFilename: program,
    nph: path.basename(program).startsWith('nph-'),
    location,
    isProgram: true,
  }
  return {kind: 'script', script}
}

async function cgiBinRoute(roots: Roots, location: Location | null, segments: readonly string[], trailingSlash: boolean): Promise<Route> {
  if (roots.cgiBin === null) throw new NotFoundError('path: this site has no script directory')
  const found = await findFirstFile(roots.cgiBin, segments, 1)
  // The script directory is never listed and nothing in it is served as a file.
  if (found === null) throw new ForbiddenError('path: directory listing of the script directory')
  return {kind: 'script', script: scriptRoute(found, location, segments, trailingSlash)}
}

async function htdocsRoute(
  roots: Roots, location: Location | null, scriptExtensions: ReadonlySet<string>, segments: readonly string[], trailingSlash: boolean,
): Promise<Route> {
  const found = await findFirstFile(roots.htdocs, segments, 0)
  if (found === null) {
    const dirPath = await realpathInside(roots.htdocs, path.join(roots.htdocs, ...segments))
    if (roots.cgiBin !== null && isInside(roots.cgiBin, dirPath)) throw new NotFoundError('path: the script directory is not served from htdocs')
    const urlPath = '/' + segments.map(encodeURIComponent).join('/') + (segments.length > 0 ? '/' : '')
    if (segments.length > 0 && !trailingSlash) return {kind: 'redirect', location: urlPath}
    return {kind: 'directory', dirPath, urlPath: segments.length > 0 ? '/' + segments.join('/') + '/' : '/', location}
  }
  if (roots.cgiBin !== null && isInside(roots.cgiBin, found.realPath)) throw new NotFoundError('path: script sources are never served')
  if (scriptExtensions.has(path.extname(found.realPath).toLowerCase())) {
    return {kind: 'script', script: scriptRoute(found, location, segments, trailingSlash)}
  }
  // Static files take no PATH_INFO: /file.txt/extra is not found.
  if (found.depth !== segments.length || trailingSlash) throw new NotFoundError('path: trailing path after a static file')
  return {kind: 'static', filePath: found.realPath}
}

interface FoundFile {
  readonly realPath: string
  /** Number of segments that name the file (the rest is PATH_INFO). */
  readonly depth: number
}

// Walks the segments below `root` (skipping `skip` prefix segments) until the first regular file.
// Returns null when every segment is a directory; throws NotFoundError when something is missing.
async function findFirstFile(root: string, segments: readonly string[], skip: number): Promise<FoundFile | null> {
  let current = root
  for (let index = skip; index < segments.length; index++) {
    current = path.join(current, segments[index]!)
    const stats = await statOrNotFound(current)
    if (stats.isDirectory()) continue
    if (!stats.isFile()) throw new NotFoundError(`path: not a regular file: ${current}`)
    return {realPath: await realpathInside(root, current), depth: index + 1}
  }
  await realpathInside(root, current)
  return null
}

async function realpathInside(root: string, candidate: string): Promise<string> {
  const real = await realpath(candidate).catch((error: unknown) => {
    throw new NotFoundError(`path: ${candidate} cannot be resolved`, {cause: error})
  })
  // Symlinks may point anywhere; what they resolve to must stay inside the root.
  if (!isInside(root, real)) throw new NotFoundError(`path: ${candidate} resolves outside its root to ${real}`)
  return real
}

function scriptRoute(found: FoundFile, location: Location | null, segments: readonly string[], trailingSlash: boolean): ScriptRoute {
  return {
    scriptName: '/' + segments.slice(0, found.depth).join('/'),
    pathInfo: joinPathInfo(segments.slice(found.depth), trailingSlash),
    scriptFilename: found.realPath,
    nph: path.basename(found.realPath).startsWith('nph-'),
    location,
    isProgram: false,
  }
}

// RFC 3875 §4.1.5: PATH_INFO is decoded ("not URL-encoded"), unlike REQUEST_URI; '' when there is none.
function joinPathInfo(rest: readonly string[], trailingSlash: boolean): string {
  if (rest.length === 0) return trailingSlash ? '/' : '' // /x/ and /x differ, as in Apache and Go
  return '/' + rest.join('/') + (trailingSlash ? '/' : '')
}

async function statOrNotFound(candidate: string): Promise<Stats> {
  try {
    return await stat(candidate)
  } catch (error) {
    // send onStatError: ENOENT, ENOTDIR, ENAMETOOLONG → 404; anything else is a real failure.
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG' || code === 'ELOOP' || code === 'EACCES') {
      throw new NotFoundError(`path: ${candidate}: ${code}`, {cause: error})
    }
    throw error
  }
}
