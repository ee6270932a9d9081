// The HTTP server: one request handler that routes, dispatches to scripts or static files, logs each request,
// and is the only place that turns errors into responses (sendError). Startup creates everything runs need (the
// run-time directories, the launcher, the sandbox) and fails naming the path when it cannot; close drains.
import fs from 'node:fs'
import http, {type IncomingMessage, type ServerResponse} from 'node:http'
import type {AddressInfo, Socket} from 'node:net'
import path from 'node:path'
import {createBasicAuth, type BasicAuth} from './auth/basic-auth.js'
import type {Config, Location} from './config.js'
import {createCommandResolver} from './cgi/interpreter.js'
import {runCgi} from './cgi/run-cgi.js'
import type {CgiContext, RequestLine} from './cgi/context.js'
import {HttpError, MethodNotAllowedError, UnauthorizedError} from './errors.js'
import {createBodySpooler} from './limits/body-limit.js'
import {createGate} from './limits/concurrency.js'
import {createConsoleLogger, type Logger} from './log.js'
import {createLaunch} from './process/launch.js'
import {startLauncher, type Launcher} from './process/launcher.js'
import {blockingDirectory} from './process/reachable.js'
import {createRuntimeDir, ensureOwnDir, type RuntimeDir} from './process/runtime-dir.js'
import {createSandbox, type Sandbox, type SandboxOptions} from './process/sandbox.js'
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
  /** The active sandbox level and what it enforces, one line (plus one per other level a location uses). */
  readonly sandbox: string
  /** Stops accepting, lets running scripts finish for shutdownGraceMs, then kills what is left. */
  close(): Promise<void>
}

export interface ServerOptions {
  readonly logger?: Logger
  /** Sandbox probing options (tests point bwrap elsewhere or switch cgroups off). */
  readonly sandbox?: SandboxOptions
}

/** How often Node checks the header and request timeouts (its default is 30 s, which lets a silent socket live on). */
const CONNECTIONS_CHECKING_INTERVAL_MS = 1_000

// Starts cgibox on config.host:config.port and resolves once it is listening.
export async function startServer(config: Config, options: ServerOptions = {}): Promise<RunningServer> {
  const logger = options.logger ?? createConsoleLogger(config.accessLog)
  const closers: (() => Promise<void> | void)[] = []
  const closeAll = async () => {
    for (const close of closers.reverse()) await close()
    closers.length = 0
  }
  let runtime: RuntimeDir
  let launcher: Launcher
  let sandbox: Sandbox
  try {
    runtime = createRuntimeDir(config.runtimeDir)
    closers.push(() => runtime.remove())
    ensureOwnDir(config.cacheDir, 0o755)
    launcher = await startLauncher({socketDir: runtime.launcherDir, onWarning: (message) => logger.error(message)})
    closers.push(() => launcher.close())
    sandbox = await createSandbox(config, {launcher, runtime}, options.sandbox)
    closers.push(() => sandbox.close())
  } catch (error) {
    await closeAll()
    throw error
  }
  const spoolDir = path.join(runtime.path, 'spool')
  fs.mkdirSync(spoolDir, {mode: 0o700})
  const router = await createRouter(config, (message) => logger.info(message)).catch(async (error: unknown) => {
    await closeAll()
    throw error
  })
  warnUnreachable(config, sandbox, logger)
  let auths: Map<Location, BasicAuth>
  try {
    auths = await createAuths(config, logger)
  } catch (error) {
    await closeAll()
    throw error
  }
  closers.push(() => {
    for (const auth of auths.values()) auth.close()
  })
  const {launch, runs} = createLaunch(launcher, sandbox)
  const gate = createGate(config)
  const spooler = createBodySpooler({dir: spoolDir, maxSpoolBytes: config.maxSpoolBytes, bodyIdleTimeoutMs: config.bodyIdleTimeoutMs})
  const fileCache = createFileCache({validMs: config.staticCacheMs})
  let nextRequestId = 1
  const ctx: CgiContext = {
    config,
    documentRoot: router.documentRoot,
    gate,
    commands: createCommandResolver(config),
    logger,
    spooler,
    launch,
    dispatch,
  }

  async function dispatch(req: IncomingMessage, res: ServerResponse, line: RequestLine): Promise<void> {
    const query = line.url.indexOf('?')
    const pathname = query === -1 ? line.url : line.url.slice(0, query)
    // Basic auth comes before anything is served, files from memory included; the script never starts without it.
    const remoteUser = router.hasAuth ? await authenticate(req, router.locationOf(pathname)) : null
    if (line.redirects === 0 && remoteUser === null && fileCache.serve(req, res, pathname)) return
    const route = await router.resolveRoute(pathname)
    switch (route.kind) {
      case 'script':
        return runCgi(req, res, {...line, remoteUser}, route.script, ctx)
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
            meter: spooler.meter,
          })
        }
        return serveDirectory(req, res, {dirPath: route.dirPath, urlPath: route.urlPath}, {upload: config.upload, documentRoot: router.documentRoot}, line.method)
      case 'static':
        await serveFile(req, res, route.filePath, line.method)
        fileCache.remember(pathname, route.filePath, res)
        return
    }
  }

  // The user a location's Basic auth lets in; null where no auth applies; 401 without valid credentials.
  async function authenticate(req: IncomingMessage, location: Location | null): Promise<string | null> {
    const auth = location === null ? undefined : auths.get(location)
    if (auth === undefined) return null
    const user = await auth.authenticate(req.headers.authorization)
    if (user === null) throw new UnauthorizedError(auth.challenge, `auth: no valid credentials for ${location!.prefix}`)
    return user
  }

  const server = http.createServer({
    requestTimeout: config.requestTimeoutMs,
    headersTimeout: config.headersTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS,
  }, (req, res) => {
    const requestId = nextRequestId++
    connections.busy(req.socket)
    const started = new Date()
    const socket = req.socket
    const remoteAddress = socket.remoteAddress ?? '-'
    const bytesBefore = socket.bytesWritten
    const clientGone = new AbortController()
    res.once('close', () => {
      connections.idle(socket)
      if (!res.writableFinished) clientGone.abort(new Error('client went away'))
      logger.access({
        remoteAddress,
        time: started,
        method: req.method ?? '-',
        url: req.url ?? '-',
        httpVersion: req.httpVersion,
        status: res.statusCode,
        bytes: socket.bytesWritten - bytesBefore,
        referer: req.headers.referer,
        userAgent: req.headers['user-agent'],
      })
    })
    const line: RequestLine = {
      method: req.method ?? 'GET', url: req.url ?? '/', redirects: 0, requestId, clientGone: clientGone.signal, remoteUser: null,
    }
    dispatch(req, res, line).catch((error: unknown) => sendError(req, res, error, logger, requestId))
  })
  const connections = trackConnections(server, config.maxConnections)
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(config.port, config.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (error) {
    await closeAll()
    throw error
  }
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const otherLevels = [...new Set(config.locations.map((location) => sandbox.levelOf(location)))].filter((level) => level !== sandbox.level)
  let closing: Promise<void> | null = null
  return {
    url: `http://${host}:${address.port}/`,
    port: address.port,
    server,
    sandbox: [sandbox.describe(), ...otherLevels.map((level) => `  also ${sandbox.describe(level)}`)].join('\n'),
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()))
        server.closeIdleConnections()
        if (!await runs.whenIdle(config.shutdownGraceMs)) {
          runs.killAll('shutdown')
          // Killed runs end within the kill grace; the last connections then close.
          await runs.whenIdle(config.limits.killGraceMs + 1_000)
        }
        connections.destroyAll()
        await closed
      })().finally(closeAll)
      return closing
    },
  }
}

// The Basic auth of every location that has one; an htpasswd file that cannot be read or parsed stops startup.
async function createAuths(config: Config, logger: Logger): Promise<Map<Location, BasicAuth>> {
  const auths = new Map<Location, BasicAuth>()
  try {
    for (const location of config.locations) {
      if (location.auth === null) continue
      auths.set(location, await createBasicAuth({
        realm: location.auth.realm,
        htpasswd: location.auth.htpasswd,
        onError: (message) => logger.error(`auth: ${location.prefix}: ${message}; the last good version stays in use`),
      }).catch((error: unknown) => {
        throw new TypeError(`\`${location.option}.auth.htpasswd\`: ${(error as Error).message}`)
      }))
    }
  } catch (error) {
    for (const auth of auths.values()) auth.close()
    throw error
  }
  return auths
}

// A line per directory the scripts' users cannot reach (a site under /root, a 0700 home): every run there would fail.
function warnUnreachable(config: Config, sandbox: Sandbox, logger: Logger): void {
  if (process.getuid?.() !== 0) return
  const probes: {uid: number; gid: number; who: string}[] = []
  if (config.uidPoolSize > 0) probes.push({uid: config.uidPoolStart, gid: config.uidPoolStart, who: `the uid pool (${config.uidPoolStart}-…)`})
  void sandbox
  const paths = [config.htdocs, config.cgiBin, config.cacheDir, ...config.locations.flatMap((location) =>
    [...location.program === null ? [] : [location.program], ...location.readPaths, ...location.writePaths])]
  for (const probe of probes) {
    for (const target of paths) {
      const blocked = blockingDirectory(target, probe.uid, [probe.gid])
      if (blocked !== null) logger.info(`warning: scripts running as ${probe.who} cannot reach ${target}: ${blocked} is not searchable by them`)
    }
  }
}

// Every open connection and whether a request is in flight on it. Past maxConnections, a new connection makes room
// by closing the oldest idle one (a silent socket, one between requests, one still sending its headers); when every
// connection has a request in flight, the new one is closed instead. Service goes on at the cap.
function trackConnections(server: http.Server, maxConnections: number) {
  const sockets = new Map<Socket, number>() // socket → requests in flight; insertion order = oldest first
  server.on('connection', (socket: Socket) => {
    if (sockets.size >= maxConnections) {
      const oldestIdle = [...sockets].find(([, busy]) => busy === 0)?.[0]
      if (oldestIdle === undefined) {
        socket.destroy()
        return
      }
      sockets.delete(oldestIdle)
      oldestIdle.destroy()
    }
    sockets.set(socket, 0)
    socket.once('close', () => sockets.delete(socket))
  })
  return {
    get size() { return sockets.size },
    busy(socket: Socket) {
      if (sockets.has(socket)) sockets.set(socket, sockets.get(socket)! + 1)
    },
    idle(socket: Socket) {
      const busy = sockets.get(socket)
      if (busy !== undefined) sockets.set(socket, Math.max(0, busy - 1))
    },
    destroyAll() {
      for (const socket of sockets.keys()) socket.destroy()
    },
  }
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
