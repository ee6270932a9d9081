// Receives a multipart/form-data POST into a listed directory (the upload form of static/listing.ts), storing each
// file under a safe, new name and recording it in the directory's upload manifest (static/upload-manifest.ts), so it
// is served sandboxed and never as an index. No path policy here (router.ts); no fields are kept; nothing is ever
// overwritten.
import {randomBytes} from 'node:crypto'
import {link, lstat, open, realpath, rename, unlink} from 'node:fs/promises'
import type {IncomingMessage, ServerResponse} from 'node:http'
import path from 'node:path'
import {finished, type Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import busboy from 'busboy'
import type {Config} from '../config.js'
import type {BodySpooler} from '../limits/body-limit.js'
import {BadUploadError, ForbiddenError, PayloadTooLargeError} from '../errors.js'
import {isInside} from '../router.js'
import {recordUpload} from './upload-manifest.js'

export interface UploadOptions {
  /** Decoded URL path of the directory, ending in `/`; the 303 points back to it. */
  readonly urlPath: string
  /** Largest request body of one upload, multipart framing included (413 past it). */
  readonly maxUploadBytes: Config['maxUploadBytes']
  /** The script directory; uploads into it or below it are refused (403). */
  readonly cgiBin: Config['cgiBin']
  /** Extensions that run as pages under htdocs; such uploads get `.txt` appended. */
  readonly pageExtensions: Config['pageExtensions']
  /** Extensions with an interpreter; such uploads get `.txt` appended too. */
  readonly interpreters: Config['interpreters']
  /**
   * Counts the body against the server's spool budget and idle timeout (body-limit.ts): 503 past the budget, 408 when
   * the client stalls, and the partial files are removed at once; 413 past maxUploadBytes.
   */
  readonly meter: BodySpooler['meter']
}

/** Hidden (dotfiles are never routed or listed) name prefix of a file still being received. */
export const UPLOAD_TEMP_PREFIX = '.cgibox-upload-'

/** Longest stored name in bytes of UTF-8 (NAME_MAX of ext4, xfs, btrfs). */
const MAX_NAME_BYTES = 255

/** Longer "extensions" are not kept when a name is shortened: they are part of the name. */
const MAX_EXTENSION_BYTES = 32

/** Name of a file whose name had nothing usable left. */
const FALLBACK_NAME = 'upload'

/** Appended to a name that would run as a script, so that it is served as text instead. */
const SAFE_EXTENSION = '.txt'

/** Created files are world-readable, like anything else the static server serves. */
const FILE_MODE = 0o644

/** `a.txt` → `a-1.txt` … `a-999.txt`, then a 500 rather than an endless search. */
const MAX_SUFFIX = 999

/** Busboy's limits per request; past files, fields or parts the upload is refused with 413 (never silently cut). */
const UPLOAD_LIMITS: busboy.Limits = {files: 100, fields: 100, parts: 200, headerPairs: 20, fieldNameSize: 200, fieldSize: 64 * 1024}

/** C0, DEL and C1 controls (NUL among them), and the bidi controls that can make `x.txt` of `x\u202Etxt.py`. */
const CONTROL_CHARS_REGEXP = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g

/** One file part of the request, on its way from the hidden temp name to its final name. */
interface PendingFile {
  /** The sanitised client name, before a suffix. */
  readonly name: string
  readonly tempPath: string
  /** The temp file's inode, which its final name keeps (link and rename); set once the file is open. */
  ino: bigint | null
  /** Settles when the temp file is complete (or failed); never rejects. */
  written: Promise<unknown>
}

// Stores the files of a multipart POST in dirPath (real, routed), then answers 303 See Other to the directory
// (Post/Redirect/Get: a browser shows the listing, a reload does not post again) with the stored names, one a line.
// Rejects with an HttpError and leaves no file behind (neither temp nor final) when anything fails.
export async function receiveUpload(
  req: IncomingMessage,
  res: ServerResponse,
  dirPath: string,
  options: UploadOptions,
): Promise<void> {
  // The router never routes into cgi-bin from htdocs; checked again because a stored file there would run.
  const cgiBin = await realpath(options.cgiBin).catch(() => path.resolve(options.cgiBin))
  if (isInside(cgiBin, dirPath)) throw new ForbiddenError(`upload: ${dirPath} is inside the script directory`)
  const declared = req.headers['content-length']
  if (declared !== undefined && Number(declared) > options.maxUploadBytes) {
    throw new PayloadTooLargeError(`upload: Content-Length ${declared} bytes, the limit is ${options.maxUploadBytes} bytes`)
  }
  const files: PendingFile[] = []
  try {
    await receiveFiles(req, dirPath, options, files)
    if (files.length === 0) throw new BadUploadError('upload: the form holds no file')
    const stored = await placeFiles(dirPath, files, scriptExtensionsOf(options))
    sendStored(res, options.urlPath, stored)
  } finally {
    // Whatever was not linked into place (all of it on failure) goes; the temp names are ours alone.
    await Promise.all(files.map(async (file) => {
      await file.written
      await unlink(file.tempPath).catch(() => {})
    }))
  }
}

// Normalises a client-supplied file name to one safe to create in a served directory, `suffix` (0: none) and the
// script check included: `../x` → `x`, `.htaccess` → `htaccess`, `x.py` → `x.py.txt`, `''` → `upload`.
// Never longer than 255 bytes of UTF-8; the extension survives shortening.
export function normalizeUploadName(raw: string | undefined, suffix: number, scriptExtensions: ReadonlySet<string>): string {
  const clean = cleanName(raw ?? '')
  const name = fitName(clean, suffix)
  if (!isRunnableName(name, scriptExtensions)) return name
  // Renamed rather than refused: the upload still succeeds, and the file is served as plain text (`x.py.txt`).
  return fitName(clean + SAFE_EXTENSION, suffix)
}

// True when a file of this name could run as a script: a page or interpreter extension (any case), or `nph-`.
function isRunnableName(name: string, scriptExtensions: ReadonlySet<string>): boolean {
  return scriptExtensions.has(path.extname(name).toLowerCase()) || name.toLowerCase().startsWith('nph-')
}

function scriptExtensionsOf(options: UploadOptions): Set<string> {
  return new Set([...options.pageExtensions, ...Object.keys(options.interpreters)].map((extension) => extension.toLowerCase()))
}

// Parses the body, writing each file part to its own hidden temp file in dirPath; resolves when the whole form was
// read and every temp file is complete. Pushes to `files` as parts start, so the caller can clean up on failure.
async function receiveFiles(req: IncomingMessage, dirPath: string, options: UploadOptions, files: PendingFile[]): Promise<void> {
  let parser: busboy.Busboy
  try {
    // preservePath: the client's name arrives whole and cleanName decides (busboy's basename keeps `..\\` pieces
    // in some cases and maps `..` to ''). UTF-8 is what browsers send in filename="…".
    parser = busboy({headers: req.headers, preservePath: true, defParamCharset: 'utf8', limits: UPLOAD_LIMITS})
  } catch (error) {
    throw new BadUploadError(`upload: not a multipart/form-data body (${String(req.headers['content-type'])})`, {cause: error})
  }
  const metered = options.meter(req, options.maxUploadBytes)
  const counter = metered.stream
  counter.once('close', () => metered.release())

  // Aborted on failure: every write, begun or not, then settles, so the caller can unlink its temp file.
  const abort = new AbortController()
  await new Promise<void>((resolve, reject) => {
    let settled = false
    // First cause wins (execa's `??=`): later errors are consequences of the first.
    const fail = (error: unknown): void => {
      if (settled) return
      settled = true
      req.unpipe(counter)
      counter.unpipe(parser)
      abort.abort()
      reject(error)
    }
    parser.on('file', (_field, stream, info) => {
      // busboy also fails the part stream when the form breaks off, possibly after pipeline stopped listening;
      // the cause reaches us through the parser's own 'error'.
      stream.on('error', () => {})
      if (settled) {
        stream.resume()
        return
      }
      const tempPath = path.join(dirPath, UPLOAD_TEMP_PREFIX + randomBytes(12).toString('hex'))
      const file: PendingFile = {name: cleanName(info.filename ?? ''), tempPath, ino: null, written: Promise.resolve()}
      // When the form breaks off, busboy fails itself (errored is set at once) and then the part stream: a 400, the
      // client's fault. Any other write failure (ENOSPC, EACCES) is ours: a 500.
      file.written = writeTempFile(stream, tempPath, abort.signal, (ino) => (file.ino = ino)).catch((error: unknown) => fail(parser.errored === null
        ? error
        : new BadUploadError(`upload: malformed form: ${parser.errored.message}`, {cause: parser.errored})))
      files.push(file)
    })
    parser.on('filesLimit', () => fail(new PayloadTooLargeError(`upload: more than ${UPLOAD_LIMITS.files} files`)))
    parser.on('fieldsLimit', () => fail(new PayloadTooLargeError(`upload: more than ${UPLOAD_LIMITS.fields} fields`)))
    parser.on('partsLimit', () => fail(new PayloadTooLargeError(`upload: more than ${UPLOAD_LIMITS.parts} parts`)))
    parser.on('error', (error: Error) => fail(new BadUploadError(`upload: malformed form: ${error.message}`, {cause: error})))
    parser.on('close', () => {
      void Promise.all(files.map((file) => file.written)).then(() => {
        if (settled) return
        settled = true
        resolve()
      })
    })
    counter.on('error', fail)
    req.on('error', (error) => fail(new BadUploadError('upload: client connection failed', {cause: error})))
    // A client that goes away mid-body: no 'end' ever reaches the parser, so nothing would settle without this.
    finished(req, {writable: false}, (error) => {
      if (error !== undefined && error !== null) fail(new BadUploadError('upload: client disconnected mid-body', {cause: error}))
    })
    // Piped, not a pipeline: an error must not destroy the socket before sendError's 413 goes out (body-limit.ts).
    req.pipe(counter).pipe(parser)
  })
}

// Writes one file part to a new hidden file (O_EXCL, mode 0o644 regardless of umask), telling onOpen its inode. The
// signal is passed to pipeline, which rejects at once when it was aborted before the file was open (a destroyed part
// stream alone can leave pipeline waiting forever on Node 20).
async function writeTempFile(stream: Readable, tempPath: string, signal: AbortSignal, onOpen: (ino: bigint) => void): Promise<void> {
  const handle = await open(tempPath, 'wx', FILE_MODE)
  try {
    await handle.chmod(FILE_MODE)
    onOpen((await handle.stat({bigint: true})).ino)
  } catch (error) {
    await handle.close()
    throw error
  }
  await pipeline(stream, handle.createWriteStream(), {signal})
}

// Gives every temp file its final name, in order; all or nothing: on failure the ones already placed are removed.
async function placeFiles(dirPath: string, files: readonly PendingFile[], scriptExtensions: ReadonlySet<string>): Promise<string[]> {
  const placed: string[] = []
  try {
    for (const file of files) placed.push(await placeFile(dirPath, file, scriptExtensions))
  } catch (error) {
    await Promise.all(placed.map((name) => unlink(path.join(dirPath, name)).catch(() => {})))
    throw error
  }
  return placed
}

// Links the temp file to the first free name (`a.txt`, `a-1.txt`, …). link(2) fails with EEXIST instead of
// replacing, so an existing file, a file another upload just took, or a symlink is never overwritten or followed.
// The manifest line goes first: the name never shows the upload unsandboxed, not even between link and append (a
// GET there would be served, and cached, as the site's own active content).
async function placeFile(dirPath: string, file: PendingFile, scriptExtensions: ReadonlySet<string>): Promise<string> {
  if (file.ino === null) throw new Error(`upload: no inode for ${file.tempPath}`)
  for (let suffix = 0; suffix <= MAX_SUFFIX; suffix++) {
    const name = normalizeUploadName(file.name, suffix, scriptExtensions)
    // Only if the operator made `.txt` itself a script extension can this hold; refuse rather than store a script.
    // (An `nph-` prefix stays, but only matters in cgi-bin, where uploads never go; `.txt` keeps it from running.)
    if (scriptExtensions.has(path.extname(name).toLowerCase())) throw new ForbiddenError(`upload: ${JSON.stringify(name)} would run as a script`)
    const target = path.join(dirPath, name)
    // Taken names are skipped without a manifest line; one taken in a race only leaves a line whose inode matches nothing.
    if (await lstat(target).then(() => true, () => false)) continue
    await recordUpload(dirPath, name, file.ino)
    try {
      await linkExclusive(file.tempPath, target)
      return name
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
    }
  }
  throw new Error(`upload: no free name for ${JSON.stringify(file.name)} after ${MAX_SUFFIX} suffixes`)
}

// link(2), or where hard links are unsupported: claim the name with O_EXCL, then rename over the claim.
async function linkExclusive(tempPath: string, target: string): Promise<void> {
  try {
    await link(tempPath, target)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error
    await (await open(target, 'wx', FILE_MODE)).close()
    await rename(tempPath, target).catch(async (renameError: unknown) => {
      await unlink(target).catch(() => {}) // our own empty claim
      throw renameError
    })
    return
  }
  await unlink(tempPath).catch(() => {}) // else receiveUpload's cleanup retries; the file is in place either way
}

function sendStored(res: ServerResponse, urlPath: string, names: readonly string[]): void {
  const body = Buffer.from(names.map((name) => name + '\n').join(''))
  res.statusCode = 303
  res.setHeader('Location', urlPath.split('/').map(encodeURIComponent).join('/'))
  res.setHeader('Content-Type', 'text/plain; charset=utf-8')
  res.setHeader('Content-Length', body.length)
  res.setHeader('X-Content-Type-Options', 'nosniff')
  res.setHeader('Cache-Control', 'no-store')
  res.end(body)
}

// The last path part (both `/` and `\` separate), without controls or leading dots; `upload` when nothing is left.
function cleanName(raw: string): string {
  const withoutControls = raw.replace(CONTROL_CHARS_REGEXP, '')
  const lastPart = withoutControls.slice(Math.max(withoutControls.lastIndexOf('/'), withoutControls.lastIndexOf('\\')) + 1)
  const name = lastPart.replace(/^\.+/, '')
  return name === '' ? FALLBACK_NAME : name
}

// `stem-suffix.ext`, shortened at a character boundary to MAX_NAME_BYTES, keeping a short extension whole.
function fitName(name: string, suffix: number): string {
  const extension = path.extname(name)
  const keep = extension !== '' && Buffer.byteLength(extension) <= MAX_EXTENSION_BYTES ? extension : ''
  const stem = name.slice(0, name.length - keep.length)
  const tail = (suffix === 0 ? '' : `-${suffix}`) + keep
  return truncateUtf8(stem, MAX_NAME_BYTES - Buffer.byteLength(tail)) + tail
}

function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text
  let bytes = 0
  let result = ''
  for (const char of text) {
    bytes += Buffer.byteLength(char)
    if (bytes > maxBytes) break
    result += char
  }
  return result
}
