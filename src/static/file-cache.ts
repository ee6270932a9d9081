// A hot path for small static files: the body and the exact headers send produced for it, kept in memory and
// trusted for `validMs` after the last check (nginx open_file_cache_valid). Plain GET/HEAD, conditional GETs
// (If-None-Match, If-Modified-Since → 304) are answered here; ranges and other preconditions go to send.
// Measured (wrk -t2 -c16, small index.html, same run): send alone ~4 300 req/s; see README "Performance".
import {readFile, stat} from 'node:fs/promises'
import type {IncomingMessage, OutgoingHttpHeaders, ServerResponse} from 'node:http'
import fresh from 'fresh'

export interface FileCacheOptions {
  /** How long an entry is served without looking at the disk again; 0 turns the cache off. */
  readonly validMs: number
  /** Largest file kept. */
  readonly maxFileBytes: number
  /** Bytes of bodies kept in all; the oldest entries go first. */
  readonly maxTotalBytes: number
}

interface Entry {
  readonly filePath: string
  readonly body: Buffer
  readonly headers: OutgoingHttpHeaders
  readonly mtimeMs: number
  readonly ino: number
  checkedAt: number
}

export interface FileCache {
  /** Answers the request from memory when it can; false when the caller must route and serve it itself. */
  serve(req: IncomingMessage, res: ServerResponse, pathname: string): boolean
  /** Remembers a file that send has just served whole with 200, with the headers it set. */
  remember(pathname: string, filePath: string, res: ServerResponse): void
}

// Headers that describe the representation; replayed on hits (send sets them, serve-file adds nosniff).
const REPLAYED_HEADERS = ['Accept-Ranges', 'Cache-Control', 'Content-Type', 'ETag', 'Last-Modified', 'X-Content-Type-Options']
// Requests the cache leaves to send: ranges and the preconditions it does not evaluate.
const SEND_ONLY_HEADERS = ['range', 'if-match', 'if-unmodified-since', 'if-range']

// Creates the cache; every lookup is synchronous, every fill and revalidation happens off the request.
export function createFileCache({validMs, maxFileBytes, maxTotalBytes}: FileCacheOptions): FileCache {
  const entries = new Map<string, Entry>()
  let totalBytes = 0
  const revalidating = new Set<string>()

  const forget = (pathname: string) => {
    const entry = entries.get(pathname)
    if (!entry) return
    entries.delete(pathname)
    totalBytes -= entry.body.length
  }

  // Re-checks an expired entry in the background; the request that found it expired goes the slow way.
  const revalidate = (pathname: string, entry: Entry) => {
    if (revalidating.has(pathname)) return
    revalidating.add(pathname)
    stat(entry.filePath).then((stats) => {
      if (stats.mtimeMs === entry.mtimeMs && stats.ino === entry.ino && stats.size === entry.body.length) {
        entry.checkedAt = Date.now()
      } else {
        forget(pathname)
      }
    }, () => forget(pathname)).finally(() => revalidating.delete(pathname))
  }

  return {
    serve(req, res, pathname) {
      if (validMs === 0 || (req.method !== 'GET' && req.method !== 'HEAD')) return false
      const entry = entries.get(pathname)
      if (!entry) return false
      if (Date.now() - entry.checkedAt > validMs) {
        // Expired: drop it from the fast path until the check says it is unchanged (or it is filled again).
        forget(pathname)
        revalidate(pathname, entry)
        return false
      }
      if (SEND_ONLY_HEADERS.some((name) => req.headers[name] !== undefined)) return false
      res.statusCode = 200
      for (const name of REPLAYED_HEADERS) {
        const value = entry.headers[name.toLowerCase()]
        if (value !== undefined) res.setHeader(name, value)
      }
      const conditional = req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined
      if (conditional && fresh(req.headers, {'etag': entry.headers.etag, 'last-modified': entry.headers['last-modified']})) {
        // send's 304: no body and no content headers.
        res.statusCode = 304
        res.removeHeader('Content-Type')
        res.end()
        return true
      }
      res.setHeader('Content-Length', entry.body.length)
      res.end(req.method === 'HEAD' ? undefined : entry.body)
      return true
    },
    remember(pathname, filePath, res) {
      if (validMs === 0 || entries.has(pathname) || res.statusCode !== 200) return
      const headers = res.getHeaders()
      const length = Number(headers['content-length'])
      if (!(length <= maxFileBytes) || headers['content-range'] !== undefined) return
      void Promise.all([readFile(filePath), stat(filePath)]).then(([body, stats]) => {
        // The file may have changed since send read it: keep it only if it still matches what was served.
        if (body.length !== length || stats.size !== length || entries.has(pathname)) return
        if (String(headers['last-modified']) !== stats.mtime.toUTCString()) return
        entries.set(pathname, {filePath, body, headers, mtimeMs: stats.mtimeMs, ino: stats.ino, checkedAt: Date.now()})
        totalBytes += body.length
        for (const [oldest] of entries) {
          if (totalBytes <= maxTotalBytes) break
          forget(oldest)
        }
      }, () => {})
    },
  }
}
