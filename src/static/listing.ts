// Answers a directory URL (already ending in `/`): its index.html or index.htm through serveFile (never an upload),
// else an HTML listing of what lies inside the document root. No path policy here (router.ts); POST uploads into a
// listed directory belong to static/upload.ts.
import {readdir, realpath, stat} from 'node:fs/promises'
import type {IncomingMessage, ServerResponse} from 'node:http'
import path from 'node:path'
import {finished} from 'node:stream'
import {HttpError, InternalServerError, MethodNotAllowedError, NotFoundError} from '../errors.js'
import {escapeHtml} from '../html.js'
import type {Route} from '../route.js'
import {isInside} from '../router.js'
import {isReadMethod, serveFile, STATIC_METHODS} from './serve-file.js'
import {isUpload} from './upload-manifest.js'

// What serveDirectory needs of a directory route: the real dirPath, and the decoded urlPath ending in `/` (shown in the
// title only; links are relative, so the listing never builds URLs from it).
export type DirectoryRoute = Pick<Extract<Route, {kind: 'directory'}>, 'dirPath' | 'urlPath'>

export interface ListingOptions {
  /** Render an upload form (its POSTs go to static/upload.ts); app.ts passes `config.upload`. */
  readonly upload: boolean
  /**
   * The real document root; entries whose real path lies outside it (a symlink to /etc/shadow) are not listed, as the
   * router would not serve them either. app.ts passes `router.documentRoot`.
   */
  readonly documentRoot: string
}

export interface ListingEntry {
  readonly name: string
  readonly isDirectory: boolean
  readonly size: number
  readonly mtime: Date
}

/** Index files, in order of preference (Apache DirectoryIndex, nginx `index`). */
const INDEX_FILES = ['index.html', 'index.htm']

/** The listing runs no script and loads nothing; only its own inline style. */
const LISTING_CSP = "default-src 'none'; style-src 'unsafe-inline'"

/** Stat errors that mean the directory is gone (send `onStatError`); any other one is a 500. */
const NOT_FOUND_CODES = new Set(['ENAMETOOLONG', 'ENOENT', 'ENOTDIR'])

/** Characters escaped in HTML text and attribute values (escape-html's set). */
/** The page's only style, inline (allowed by LISTING_CSP). */
const LISTING_STYLE = 'body{font-family:system-ui,sans-serif;margin:2em}th,td{padding:.1em 1.5em .1em 0;text-align:left}' +
  'td.size{text-align:right;font-variant-numeric:tabular-nums}form{margin-top:1.5em}'

// Serves the directory's index file if it has one, else its listing; resolves when the response has finished or the client has gone.
export async function serveDirectory(
  req: IncomingMessage,
  res: ServerResponse,
  route: DirectoryRoute,
  options: ListingOptions,
  method = req.method,
): Promise<void> {
  // ── Upload hook ── When uploads are on, app.ts (dispatch) sends a POST to a directory to static/upload.ts
  // (receiveUpload) and never here; so every method but GET and HEAD is a 405 here.
  if (!isReadMethod(method)) throw new MethodNotAllowedError(STATIC_METHODS)

  const indexFile = await findIndexFile(route.dirPath)
  if (indexFile !== null) return serveFile(req, res, indexFile, method, false) // findIndexFile skips uploads

  const body = Buffer.from(renderListing(route.urlPath, await readEntries(route.dirPath, options.documentRoot), options))
  res.statusCode = 200
  res.setHeader('Content-Type', 'text/html; charset=utf-8')
  res.setHeader('Content-Length', body.length)
  res.setHeader('Content-Security-Policy', LISTING_CSP)
  res.setHeader('X-Content-Type-Options', 'nosniff')
  res.setHeader('Cache-Control', 'no-cache')
  await new Promise<void>((resolve) => {
    finished(res, () => resolve())
    res.end(req.method === 'HEAD' ? undefined : body)
  })
}

// Renders a listing page: dotfiles left out, sorted by compareNames, names HTML-escaped, hrefs one encoded segment each.
export function renderListing(urlPath: string, entries: readonly ListingEntry[], options: Pick<ListingOptions, 'upload'>): string {
  const title = `Index of ${escapeHtml(urlPath)}`
  const rows = entries
    .filter((entry) => !isDotfile(entry.name))
    .sort((a, b) => compareNames(a.name, b.name))
    .map(renderRow)
  if (urlPath !== '/') rows.unshift('<tr><td><a href="../">../</a></td><td class="size"></td><td></td></tr>')
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width">',
    `<title>${title}</title>`,
    `<style>${LISTING_STYLE}</style>`,
    '</head>',
    '<body>',
    `<h1>${title}</h1>`,
    '<table>',
    '<thead><tr><th>Name</th><th>Size</th><th>Modified (UTC)</th></tr></thead>',
    '<tbody>',
    ...rows,
    '</tbody>',
    '</table>',
    ...(options.upload ? [renderUploadForm()] : []),
    '</body>',
    '</html>',
    '',
  ].join('\n')
}

// The first index file that is a regular file inside the directory itself (a symlink out of it is not followed) and
// not an upload (an uploaded index.html would replace the listing with the uploader's page), else null.
async function findIndexFile(dirPath: string): Promise<string | null> {
  const realDir = await realpath(dirPath).catch((error: unknown) => {
    throw toHttpError(error, dirPath)
  })
  for (const name of INDEX_FILES) {
    const candidate = await realpath(path.join(dirPath, name)).catch(() => null)
    if (candidate === null || candidate === realDir || !isInside(realDir, candidate)) continue
    const stats = await stat(candidate).catch(() => null)
    if (stats?.isFile() && !await isUpload(candidate)) return candidate
  }
  return null
}

// The directory's visible regular files and directories whose real path lies inside documentRoot (symlinks followed;
// dangling ones, ones leaving the root, FIFOs, sockets left out).
async function readEntries(dirPath: string, documentRoot: string): Promise<ListingEntry[]> {
  const dirents = await readdir(dirPath, {withFileTypes: true}).catch((error: unknown) => {
    throw toHttpError(error, dirPath)
  })
  const entries = await Promise.all(dirents
    .filter((dirent) => !isDotfile(dirent.name))
    .map(async (dirent): Promise<ListingEntry | null> => {
      const realPath = await realpath(path.join(dirPath, dirent.name)).catch(() => null)
      if (realPath === null || !isInside(documentRoot, realPath)) return null
      const stats = await stat(realPath).catch(() => null)
      if (stats === null || !(stats.isFile() || stats.isDirectory())) return null
      return {name: dirent.name, isDirectory: stats.isDirectory(), size: stats.size, mtime: stats.mtime}
    }))
  return entries.filter((entry) => entry !== null)
}

// Plain case-sensitive order of UTF-16 code units (no locale, so the same on every machine): `B` < `_` < `a`.
// Directories are not grouped first; they sort by their name and are shown with a trailing `/`.
function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function formatMtime(mtime: Date): string {
  return Number.isNaN(mtime.getTime()) ? '' : mtime.toISOString().slice(0, 16).replace('T', ' ')
}

function isDotfile(name: string): boolean {
  return name.startsWith('.')
}

function renderRow(entry: ListingEntry): string {
  const suffix = entry.isDirectory ? '/' : ''
  const href = escapeHtml(encodeURIComponent(entry.name) + suffix)
  const size = entry.isDirectory ? '-' : String(entry.size)
  return `<tr><td><a href="${href}">${escapeHtml(entry.name + suffix)}</a></td>` +
    `<td class="size">${size}</td><td>${formatMtime(entry.mtime)}</td></tr>`
}

function renderUploadForm(): string {
  return '<form method="post" enctype="multipart/form-data">' +
    '<input type="file" name="file" multiple required> <button type="submit">Upload</button></form>'
}

function toHttpError(error: unknown, dirPath: string): HttpError {
  const code = (error as {code?: unknown}).code
  return typeof code === 'string' && NOT_FOUND_CODES.has(code)
    ? new NotFoundError(`static: directory ${dirPath} not found`, {cause: error})
    : new InternalServerError(`static: reading directory ${dirPath} failed`, {cause: error})
}
