// The HTTP server: one request handler that routes, dispatches to scripts or static files, logs each request,
// and is the only place that turns errors into responses (sendError). Also graceful shutdown.
import http, {type IncomingMessage, type ServerResponse} from 'node:http'
import type {AddressInfo, Socket} from 'node:net'
import type {Config} from './config.js'
import {createCommandResolver} from './cgi/interpreter.js'
import {runCgi} from './cgi/run-cgi.js'
import type {CgiContext, RequestLine, RunSpec} from './cgi/context.js'
import {HttpError, MethodNotAllowedError} from './errors.js'
import {createGate} from './limits/concurrency.js'
import {createConsoleLogger, type Logger} from './log.js'
import {createSandbox, validateSandboxRequirements} from './process/sandbox.js'
import {spawnScript} from './process/spawn-script.js'
import {createSpawner} from './process/spawner.js'
import {createRouter} from './router.js'
import {serveDirectory} from './static/listing.js'
import {createFileCache} from './static/file-cache.js'
import {serveFile} from './static/serve-file.js'
import {receiveUpload} from './static/upload.js'

export interface RunningServer {
  /** `http://HOST:PORT/` with the real port. */
  readonly url: string
  readonly port: number
  readonly server: http.Server
  /** The active sandbox level and what it enforces, one line. */
  readonly sandbox: string
  /** Stops accepting, lets running scripts finish for shutdownGraceMs, then kills what is left. */
  close(): Promise<void>
}

export interface ServerOptions {
  readonly logger?: Logger
}

// Starts cgibox on config.host:config.port and resolves once it is listening.
export async function startServer(config: Config, options: ServerOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? createConsoleLogger(config.accessLog)
  const router = await createRouter(config)
  const sandbox = await createSandbox(config)
  // A helper that forks runs, so this process is not forked per request; without python3, fork as before.
  const spawner = config.spawner === 'helper'
    ? await createSpawner().catch((error: unknown) => {
      logger.error(`spawner: ${(error as Error).message}; runs are forked by the server`)
      return null
    })
    : null
  try {
    validateSandboxRequirements(sandbox, config.mounts)
  } catch (error) {
    await spawner?.close()
    await sandbox.close()
    throw error
  }
  const gate = createGate(config)
  const fileCache = createFileCache({validMs: config.staticCacheMs})
  let nextRequestId = 1
  const ctx: CgiContext = {
    config,
    documentRoot: router.documentRoot,
    gate,
    commands: createCommandResolver(config),
    logger,
    runs: new Set(),
    // The sandbox sees the document root, the .ts cache and a mount's extra paths read-only; cwd and absolute
    // argv entries (interpreter, script, cached page) are bound by the sandbox itself.
    spawn: (spec: RunSpec) => spawnScript({
      argv: spec.argv, env: spec.env, cwd: spec.cwd, limits: spec.limits, sandbox, spawner,
      readOnlyPaths: [router.documentRoot, config.cacheDir, ...spec.script.mount?.readPaths ?? []],
    }),
    dispatch,
  }

  async function dispatch(req: IncomingMessage, res: ServerResponse, line: RequestLine): Promise<void> {
    const query = line.url.indexOf('?')
    const pathname = query === -1 ? line.url : line.url.slice(0, query)
    if (line.redirects === 0 && fileCache.serve(req, res, pathname)) return
    const route = await router.resolveRoute(pathname)
    switch (route.kind) {
      case 'script':
        return runCgi(req, res, line, route.script, ctx)
      case 'redirect': {
        assertReadMethod(line.method)
        const location = route.location + (query === -1 ? '' : line.url.slice(query))
        res.writeHead(301, {Location: location, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': '0'})
        res.end()
        return
      }
      case 'directory':
        if (line.method === 'POST' && config.upload) {
          return receiveUpload(req, res, route.dirPath, {
            urlPath: route.urlPath,
            maxUploadBytes: config.maxUploadBytes,
            cgiBin: config.cgiBin,
            pageExtensions: config.pageExtensions,
            interpreters: config.interpreters,
          })
        }
        return serveDirectory(req, res, {dirPath: route.dirPath, urlPath: route.urlPath}, {upload: config.upload, documentRoot: router.documentRoot}, line.method)
      case 'static':
        await serveFile(req, res, route.filePath, line.method)
        fileCache.remember(pathname, route.filePath, res)
        return
    }
  }

  const server = http.createServer({requestTimeout: 0, headersTimeout: 60_000}, (req, res) => {
    const requestId = nextRequestId++
    const started = new Date()
    const socket = req.socket
    const remoteAddress = socket.remoteAddress ?? '-'
    const bytesBefore = socket.bytesWritten
    res.once('close', () => logger.access({
      remoteAddress,
      time: started,
      method: req.method ?? '-',
      url: req.url ?? '-',
      httpVersion: req.httpVersion,
      status: res.statusCode,
      bytes: socket.bytesWritten - bytesBefore,
      referer: req.headers.referer,
      userAgent: req.headers['user-agent'],
    }))
    const line: RequestLine = {method: req.method ?? 'GET', url: req.url ?? '/', redirects: 0, requestId}
    dispatch(req, res, line).catch((error: unknown) => sendError(req, res, error, logger, requestId))
  })
  const sockets = new Set<Socket>()
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(config.port, config.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (error) {
    await spawner?.close()
    await sandbox.close()
    throw error
  }
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  let closing: Promise<void> | null = null
  return {
    url: `http://${host}:${address.port}/`,
    port: address.port,
    server,
    sandbox: `${sandbox.describe()}; runs started by ${spawner ? 'the spawner helper' : 'fork of the server'}`,
    close() {
      closing ??= shutdown(server, sockets, ctx, config.shutdownGraceMs)
        .finally(async () => {
          await spawner?.close()
          await sandbox.close()
        })
      return closing
    },
  }
}

async function shutdown(server: http.Server, sockets: Set<Socket>, ctx: CgiContext, graceMs: number): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  server.closeIdleConnections()
  const deadline = Date.now() + graceMs
  while (ctx.runs.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25))
  for (const run of ctx.runs) run.kill('shutdown')
  // Killed runs reap within the kill grace; the last connections then close.
  const reapDeadline = Date.now() + ctx.config.limits.killGraceMs + 1_000
  while (ctx.runs.size > 0 && Date.now() < reapDeadline) await new Promise((resolve) => setTimeout(resolve, 25))
  for (const socket of sockets) socket.destroy()
  await closed
}

function assertReadMethod(method: string): void {
  if (method !== 'GET' && method !== 'HEAD') throw new MethodNotAllowedError('GET, HEAD')
}

// The one place errors become responses: the status text only, never stderr, paths or causes (send error()).
export function sendError(req: IncomingMessage, res: ServerResponse, error: unknown, logger: Logger, requestId: number): void {
  const status = error instanceof HttpError ? error.status : 500
  if (status >= 500 || !(error instanceof HttpError)) {
    logger.error(error instanceof Error ? error.message : String(error), {
      requestId, url: req.url, status, code: error instanceof HttpError ? error.code : undefined,
      ...(error instanceof HttpError ? {} : {stack: (error as Error)?.stack}),
    })
  }
  if (res.headersSent || res.destroyed) {
    res.destroy() // truncated: the client must not take a partial body for a whole one
    return
  }
  const body = `${status} ${http.STATUS_CODES[status] ?? 'Error'}\n`
  for (const name of res.getHeaderNames()) res.removeHeader(name)
  res.statusCode = status
  res.setHeader('Content-Type', 'text/plain; charset=utf-8')
  res.setHeader('Content-Length', Buffer.byteLength(body))
  res.setHeader('X-Content-Type-Options', 'nosniff')
  res.setHeader('Content-Security-Policy', "default-src 'none'")
  if (error instanceof HttpError) for (const [name, value] of Object.entries(error.headers)) res.setHeader(name, value)
  // An unread or refused body is not worth reading: close instead of keeping the connection alive.
  if (!req.complete || status === 413) res.setHeader('Connection', 'close')
  res.end(req.method === 'HEAD' ? undefined : body)
}
