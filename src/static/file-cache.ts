// A hot path for static files up to a few MiB: the body and the headers send produced for it, kept in memory once per
// real file and trusted for `validMs` after the last check (nginx open_file_cache_valid). Request paths reach a body
// through a bounded alias map, so `//a.txt`, `/%61.txt` and `/a.txt` share one body; an alias is trusted for `validMs`
// after routing too (a retargeted symlink is seen then). Plain GET/HEAD and conditional GETs (If-None-Match,
// If-Modified-Since → 304) are answered here; ranges and other preconditions go to send.
// Measured (wrk -t2 -c16): small index.html, send alone ~4 300 req/s, from here ~20 000–33 000 (README
// "Performance"); a 1 MiB file, streamed by send ~360–550 req/s, from here ~1 300–2 000 (bench/static-files.js).
import {readFile, stat} from 'node:fs/promises'
import type {IncomingMessage, OutgoingHttpHeaders, ServerResponse} from 'node:http'
import fresh from 'fresh'

export interface FileCacheOptions {
  /** How long an entry is served without looking at the disk again; 0 turns the cache off. */
  readonly validMs: number
  /** Largest file kept. Default: `4 * 1024 * 1024`. */
  readonly maxFileBytes?: number
  /** Counted bytes in all (bodies, their headers and paths, alias paths); the oldest files go first. Default: `64 * 1024 * 1024`. */
  readonly maxTotalBytes?: number
  /** Files (bodies) kept at once; the oldest go first. Default: `4_096`. */
  readonly maxFiles?: number
  /** Request paths remembered at once; the oldest go first. Default: `10_000`. */
  readonly maxAliases?: number
}

export interface FileCacheStats {
  /** Bodies held: one per real file. */
  readonly files: number
  /** Request paths that lead to a body. */
  readonly aliases: number
  /** What the cache counts against maxTotalBytes: bodies, replayed headers, paths, and a fixed overhead per entry. */
  readonly bytes: number
}

export interface FileCache {
  /** Answers the request from memory when it can; false when the caller must route and serve it itself. */
  serve(req: IncomingMessage, res: ServerResponse, pathname: string): boolean
  /** Remembers a file that send has just served whole with 200, with the headers it set, under the request path. */
  remember(pathname: string, filePath: string, res: ServerResponse): void
  /** Sizes, for tests and diagnostics. */
  stats(): FileCacheStats
}

interface Alias {
  /** The real path the router gave: the key of `files` (the entry's own string, one copy however many aliases). */
  readonly filePath: string
  readonly routedAt: number
}

interface Entry {
  /** The real path: the key of `files` and the value of every alias that leads here. */
  readonly filePath: string
  readonly body: Buffer
  /** REPLAYED_HEADERS that send set, as [canonical name, value]. */
  readonly headers: ReadonlyArray<readonly [string, string]>
  readonly etag: string | undefined
  readonly lastModified: string | undefined
  readonly mtimeMs: number
  readonly ino: number
  readonly countedBytes: number
  checkedAt: number
  revalidating: boolean
}

// Headers that describe the representation; replayed on hits (send sets them, serve-file adds nosniff and, for
// uploads, the CSP sandbox).
const REPLAYED_HEADERS = ['Accept-Ranges', 'Cache-Control', 'Content-Security-Policy', 'Content-Type', 'ETag', 'Last-Modified', 'X-Content-Type-Options']
// Requests the cache leaves to send: ranges and the preconditions it does not evaluate.
const SEND_ONLY_HEADERS = ['range', 'if-match', 'if-unmodified-since', 'if-range']

const DEFAULT_MAX_FILE_BYTES = 4 * 1024 * 1024
const DEFAULT_MAX_TOTAL_BYTES = 64 * 1024 * 1024
const DEFAULT_MAX_FILES = 4_096
const DEFAULT_MAX_ALIASES = 10_000
/** Longer request paths are served, but never remembered: 10 000 aliases stay within ~10 MiB of keys. */
const MAX_ALIAS_PATH_BYTES = 1_024
/** What a Map slot, its key's string header and an Entry object cost beyond the bytes counted (an estimate). */
const ENTRY_OVERHEAD_BYTES = 128

// Creates the cache; every lookup is synchronous, every fill and revalidation happens off the request.
export function createFileCache({
  validMs,
  maxFileBytes = DEFAULT_MAX_FILE_BYTES,
  maxTotalBytes = DEFAULT_MAX_TOTAL_BYTES,
  maxFiles = DEFAULT_MAX_FILES,
  maxAliases = DEFAULT_MAX_ALIASES,
}: FileCacheOptions): FileCache {
  const files = new Map<string, Entry>()
  // Request path → real path. Dropping a file leaves its aliases dangling (they hold a string, not the body); a
  // dangling alias goes when it is next looked up or when it is the oldest.
  const aliases = new Map<string, Alias>()
  const filling = new Set<string>()
  let bytes = 0

  const dropAlias = (pathname: string) => {
    if (aliases.delete(pathname)) bytes -= aliasBytes(pathname)
  }
  const dropFile = (entry: Entry) => {
    if (files.get(entry.filePath) !== entry) return
    files.delete(entry.filePath)
    bytes -= entry.countedBytes
  }
  const addAlias = (pathname: string, entry: Entry) => {
    dropAlias(pathname)
    aliases.set(pathname, {filePath: entry.filePath, routedAt: Date.now()})
    bytes += aliasBytes(pathname)
  }
  const evict = () => {
    while (aliases.size > maxAliases) dropAlias(first(aliases))
    while (files.size > maxFiles || (bytes > maxTotalBytes && files.size > 0)) dropFile(files.get(first(files))!)
    while (bytes > maxTotalBytes && aliases.size > 0) dropAlias(first(aliases))
  }

  // Re-checks an expired entry in the background; until the check says it is unchanged, requests go the slow way.
  const revalidate = (entry: Entry) => {
    if (entry.revalidating) return
    entry.revalidating = true
    stat(entry.filePath).then((stats) => {
      if (stats.mtimeMs === entry.mtimeMs && stats.ino === entry.ino && stats.size === entry.body.length) {
        entry.checkedAt = Date.now()
      } else {
        dropFile(entry)
      }
    }, () => dropFile(entry)).finally(() => {
      entry.revalidating = false
    })
  }

  // Reads filePath into a new entry if it still is what send served (same length and Last-Modified), then aliases it.
  const fill = (pathname: string, filePath: string, served: Served) => {
    if (filling.has(filePath)) return // the read in flight will do; this path is aliased on a later request
    filling.add(filePath)
    Promise.all([readFile(filePath), stat(filePath)]).then(([body, stats]) => {
      if (body.length !== served.length || stats.size !== served.length) return
      if (served.lastModified !== stats.mtime.toUTCString()) return
      const old = files.get(filePath)
      if (old) dropFile(old)
      const entry: Entry = {
        filePath, body, headers: served.headers, etag: served.etag, lastModified: served.lastModified,
        mtimeMs: stats.mtimeMs, ino: stats.ino, checkedAt: Date.now(), revalidating: false,
        countedBytes: body.length + headerBytes(served.headers) + filePath.length + ENTRY_OVERHEAD_BYTES,
      }
      files.set(filePath, entry)
      bytes += entry.countedBytes
      addAlias(pathname, entry)
      evict()
    }, () => {}).finally(() => filling.delete(filePath))
  }

  return {
    serve(req, res, pathname) {
      if (validMs === 0 || (req.method !== 'GET' && req.method !== 'HEAD')) return false
      const alias = aliases.get(pathname)
      if (alias === undefined) return false
      const now = Date.now()
      const entry = files.get(alias.filePath)
      if (!entry || now - alias.routedAt > validMs) {
        // Gone from memory, or routed too long ago: route it again (remember then aliases it anew, without a read).
        dropAlias(pathname)
        return false
      }
      if (now - entry.checkedAt > validMs) {
        revalidate(entry)
        return false
      }
      if (SEND_ONLY_HEADERS.some((name) => req.headers[name] !== undefined)) return false
      res.statusCode = 200
      for (const [name, value] of entry.headers) res.setHeader(name, value)
      const conditional = req.headers['if-none-match'] !== undefined || req.headers['if-modified-since'] !== undefined
      if (conditional && fresh(req.headers, {'etag': entry.etag, 'last-modified': entry.lastModified})) {
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
      if (validMs === 0 || res.statusCode !== 200 || pathname.length > MAX_ALIAS_PATH_BYTES) return
      const served = toServed(res.getHeaders())
      if (served === null || !(served.length <= maxFileBytes)) return
      const entry = files.get(filePath)
      if (entry && isSameRepresentation(entry, served)) {
        // Another spelling of a file already in memory: only the path is new.
        addAlias(pathname, entry)
        evict()
        return
      }
      fill(pathname, filePath, served)
    },
    stats() {
      return {files: files.size, aliases: aliases.size, bytes}
    },
  }
}

/** What send put on a whole 200 response, reduced to what an entry keeps. */
interface Served {
  readonly length: number
  readonly headers: ReadonlyArray<readonly [string, string]>
  readonly etag: string | undefined
  readonly lastModified: string | undefined
}

// The response's representation headers, or null when it was not a whole body (a range, or no Content-Length).
function toServed(headers: OutgoingHttpHeaders): Served | null {
  if (headers['content-range'] !== undefined || headers['content-length'] === undefined) return null
  const replayed: Array<readonly [string, string]> = []
  for (const name of REPLAYED_HEADERS) {
    const value = headers[name.toLowerCase()]
    if (value !== undefined) replayed.push([name, String(value)])
  }
  const text = (name: string) => (headers[name] === undefined ? undefined : String(headers[name]))
  return {length: Number(headers['content-length']), headers: replayed, etag: text('etag'), lastModified: text('last-modified')}
}

// True when what send just served is what the entry holds: same length and the same replayed headers.
function isSameRepresentation(entry: Entry, served: Served): boolean {
  if (entry.body.length !== served.length || entry.headers.length !== served.headers.length) return false
  return entry.headers.every(([name, value], index) => served.headers[index]![0] === name && served.headers[index]![1] === value)
}

function aliasBytes(pathname: string): number {
  return pathname.length + ENTRY_OVERHEAD_BYTES
}

function first(map: Map<string, unknown>): string {
  return map.keys().next().value!
}

function headerBytes(headers: ReadonlyArray<readonly [string, string]>): number {
  return headers.reduce((sum, [name, value]) => sum + name.length + value.length, 0)
}
