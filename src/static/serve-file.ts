// Serves one regular file that router.ts has already resolved, through send (pillarjs): MIME type, ETag and
// Last-Modified, 304/412, single byte ranges (206/416), HEAD; uploads (static/upload-manifest.ts) sandboxed.
// No path policy here; errors go to app.ts as HttpErrors.
import type {IncomingMessage, ServerResponse} from 'node:http'
import {finished} from 'node:stream'
import send from 'send'
import {
  BadRequestError,
  ForbiddenError,
  HttpError,
  InternalServerError,
  MethodNotAllowedError,
  NotFoundError,
  PreconditionFailedError,
  RangeNotSatisfiableError,
} from '../errors.js'
import {isUpload} from './upload-manifest.js'

/** The Allow header of everything static. */
export const STATIC_METHODS = 'GET, HEAD'

/**
 * Options for send. The file is passed as `root` with an empty URL path (see serveFile), so send's URL checks
 * (decoding, `..`, dotfiles) have nothing to look at; `dotfiles: 'allow'` and `index: false` say so explicitly.
 * Cache-Control stays send's default, `public, max-age=0`: caches may store, but revalidate every time.
 * send passes its options on to fs.createReadStream: reads of 512 KiB instead of the default 64 KiB. Server CPU per
 * 16 MiB response (wrk -t2 -c16, 2 busy cores, noisy): 64 KiB 20–35 ms, 256 KiB 20–30, 512 KiB 16–25, 1 MiB ~14.5.
 * Each connection streaming a file holds up to one read buffer: 512 KiB takes much of the gain at half of 1 MiB.
 */
const SEND_OPTIONS: send.SendOptions & {readonly highWaterMark: number} = {dotfiles: 'allow', index: false, highWaterMark: 512 * 1024}

/**
 * Headers of an uploaded file (static/upload.ts): its HTML or SVG runs no script and reaches nothing of the site's
 * origin (CSP sandbox: an opaque origin, no scripts, forms or popups), and is never sniffed into something active.
 */
const UPLOAD_HEADERS = {'Content-Security-Policy': 'sandbox', 'X-Content-Type-Options': 'nosniff'}

/** Headers send sets on the response before it decides on 412/416; removed so sendError starts from a clean slate. */
const SEND_HEADERS = ['Accept-Ranges', 'Cache-Control', 'Content-Length', 'Content-Range', 'Content-Type', 'ETag', 'Last-Modified']

/** The size in send's 416 `Content-Range: bytes *\/9`. */
const UNSATISFIED_RANGE_REGEXP = /^bytes \*\/(\d+)$/

// Streams filePath to res; resolves when the response has finished or the client has gone, rejects with an HttpError.
// `method` is what the request is served as: a local redirect serves a POST as a GET (RFC 3875 §6.2.2). `uploaded`
// is looked up in the upload manifest unless the caller has just done so (an index file is never an upload).
export async function serveFile(req: IncomingMessage, res: ServerResponse, filePath: string, method = req.method,
  uploaded?: boolean): Promise<void> {
  if (!isReadMethod(method)) throw new MethodNotAllowedError(STATIC_METHODS)
  const sandboxed = uploaded ?? await isUpload(filePath)
  await new Promise<void>((resolve, reject) => {
    let settled = false
    const settle = (error?: HttpError): void => {
      if (settled) return
      settled = true
      if (error === undefined) resolve()
      else reject(error)
    }
    // Also settles when the client went away before this call (stream.finished reports a closed response at once).
    finished(res, () => settle())

    // send joins root and path. The router has already turned the URL into this real file, so the whole file path
    // is the root and the URL part is empty: a file named `100%.txt`, `%41.txt` or `..\x` is served as it is,
    // instead of being decoded again (400 or the wrong file) or taken for an up-path (403).
    const stream = send(req, '', {...SEND_OPTIONS, root: filePath})
    stream.on('error', (error: unknown) => {
      if (settled) return
      if (!res.headersSent) for (const name of SEND_HEADERS) res.removeHeader(name)
      settle(toHttpError(error, filePath))
    })
    // Only when the file became a directory after routing; without a listener send would redirect to `/`.
    stream.on('directory', () => settle(new NotFoundError(`static: ${filePath} is a directory now`)))
    res.setHeader('X-Content-Type-Options', 'nosniff')
    if (sandboxed) for (const [name, value] of Object.entries(UPLOAD_HEADERS)) res.setHeader(name, value)
    stream.pipe(res)
  })
}

// True for the methods a static resource answers (GET and HEAD).
export function isReadMethod(method: string | undefined): boolean {
  return method === 'GET' || method === 'HEAD'
}

// Maps an error send emitted (an http-errors object with `status`, wrapping an fs error when there is one) to ours.
function toHttpError(error: unknown, filePath: string): HttpError {
  const {status, headers} = error as {status?: unknown; headers?: Record<string, unknown>}
  const options = {cause: error}
  switch (status) {
    case 400:
      return new BadRequestError(`static: send refused the path of ${filePath}`, options)
    case 403:
      return new ForbiddenError(`static: send refused ${filePath}`, options)
    case 404:
      return new NotFoundError(`static: ${filePath} not found`, options)
    case 412:
      return new PreconditionFailedError(`static: precondition failed for ${filePath}`, options)
    case 416: {
      const size = UNSATISFIED_RANGE_REGEXP.exec(String(headers?.['Content-Range']))?.[1]
      if (size !== undefined) return new RangeNotSatisfiableError(Number(size), `static: range not satisfiable for ${filePath}`, options)
      return new InternalServerError(`static: send gave 416 without Content-Range for ${filePath}`, options)
    }
    default:
      return new InternalServerError(`static: sending ${filePath} failed with ${String(status)}`, options)
  }
}
