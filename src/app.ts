// cgibox as a request handler: everything but the listening socket. It creates what runs need (the run-time
// directories, the launcher, the sandbox), routes and serves each request (admin endpoints, Basic auth, static files,
// scripts), logs it with its request id, counts it in the metrics, and is the only place that turns errors into
// responses (sendError). A reload builds the config-dependent parts anew for new requests; running scripts keep theirs.
import {randomUUID} from 'node:crypto'
import fs from 'node:fs'
import http, {type IncomingMessage, type ServerResponse} from 'node:http'
import path from 'node:path'
import {createAddressList, type AddressList} from './address-list.js'
import {ADMIN_PREFIX, createAdminHandler, type AdminHandler} from './admin/endpoints.js'
import type {Status} from './admin/status-page.js'
import {createBasicAuth, type BasicAuth} from './auth/basic-auth.js'
import {createCommandResolver} from './cgi/interpreter.js'
import {runCgi} from './cgi/run-cgi.js'
import type {CgiContext, RequestLine, RequestState} from './cgi/context.js'
import {createTsRunner, type TsRunner} from './cgi/ts-runner.js'
import {VERSION} from './version.js'
import type {Config, Location} from './config.js'
import {HttpError, MethodNotAllowedError, ServiceUnavailableError, SpoolFullError, UnauthorizedError} from './errors.js'
import {createBodySpooler, type BodySpooler} from './limits/body-limit.js'
import {createGate, type Gate} from './limits/concurrency.js'
import {createConsoleLogger, type Logger, type RunRecord} from './log.js'
import {createMetrics, type Metrics} from './metrics.js'
import {createLaunch, createRunTable, type RunTable} from './process/launch.js'
import {startLauncher, type Launcher} from './process/launcher.js'
import {blockingDirectory} from './process/reachable.js'
import {createRuntimeDir, ensureOwnDir, type RuntimeDir} from './process/runtime-dir.js'
import {createSandbox, type Sandbox, type SandboxOptions} from './process/sandbox.js'
import {createRouter, type Router} from './router.js'
import {createFileCache, type FileCache} from './static/file-cache.js'
import {serveDirectory} from './static/listing.js'
import {serveFile} from './static/serve-file.js'
import {receiveUpload} from './static/upload.js'

export interface AppOptions {
  /** Where the log goes. Default: stdout/stderr in config.logFormat. */
  readonly logger?: Logger
  /** Sandbox probing options (tests point bwrap elsewhere or switch cgroups off). */
  readonly sandbox?: SandboxOptions
}

export interface App {
  /** Serves one request (node:http style); never throws. */
  handle(req: IncomingMessage, res: ServerResponse): void
  /** The sandbox levels in use and what they enforce, a line each. */
  readonly sandboxDescription: string
  readonly config: Config
  readonly logger: Logger
  /** Requests being served now. */
  readonly inFlight: number
  /**
   * From now on health answers 503 and responses close their connections (a load balancer moves on), those in flight
   * too unless their head went out already.
   */
  drain(): void
  /** Waits for running scripts and requests up to graceMs, then kills what is left and waits for it to end. */
  finish(graceMs: number): Promise<void>
  /** Swaps in a new config for new requests; throws (the old one stays) when it cannot be set up. */
  reload(config: Config): Promise<void>
  /** Ends everything: runs, the launcher, the sandbox, the run-time directory. */
  close(): Promise<void>
}

/** How many finished runs the status page lists. */
const RECENT_RUNS = 50
/** Request ids cgibox accepts from a client (X-Request-Id); anything else gets an id of cgibox's own. */
const REQUEST_ID_REGEXP = /^[A-Za-z0-9._:-]{1,128}$/

// What depends on the config; rebuilt by a reload.
interface Site {
  readonly config: Config
  readonly router: Router
  readonly sandbox: Sandbox
  readonly gate: Gate
  readonly ctx: CgiContext
  readonly auths: Map<Location, BasicAuth>
  readonly fileCache: FileCache
  readonly admin: AdminHandler
  readonly trustedProxies: AddressList
  /** Runs started under this site's config; a retired site's sandbox closes when the last one ends. */
  readonly runs: Set<object>
  retired: boolean
}

// What outlives a reload.
interface Shared {
  readonly runtime: RuntimeDir
  readonly launcher: Launcher
  readonly logger: Logger
  readonly metrics: Metrics
  readonly table: RunTable
  readonly tsRunner: TsRunner
  readonly recent: (RunRecord & {readonly at: string})[]
  readonly startedAt: Date
  readonly counters: {requests: number; runs: number; rejected: number}
  /** One disk budget for every spooled body and upload, whatever the config of the request. */
  readonly spooler: BodySpooler
}

// Creates everything runs need and resolves once cgibox can serve; throws naming what could not be set up.
export async function createApp(config: Config, options: AppOptions = {}): Promise<App> {
  const baseLogger = options.logger ?? createConsoleLogger(config.accessLog, config.logFormat)
  const closers: (() => Promise<void> | void)[] = []
  const closeAll = async () => {
    for (const close of closers.reverse()) await close()
    closers.length = 0
  }
  const table = createRunTable()
  let site: Site
  let shared: Shared
  let draining = false
  let inFlight = 0
  let inFlightWaiters: (() => void)[] = []
  /** Responses in flight, so that a drain can close their connections too. */
  const responses = new Set<ServerResponse>()
  try {
    const runtime = createRuntimeDir(config.runtimeDir)
    closers.push(() => runtime.remove())
    ensureOwnDir(config.cacheDir, 0o755)
    const launcher = await startLauncher({socketDir: runtime.launcherDir, onWarning: (message) => baseLogger.error(message)})
    closers.push(() => launcher.close())
    const recent: Shared['recent'] = []
    const counters = {requests: 0, runs: 0, rejected: 0}
    // Gauges read the site of the moment, whatever it is when scraped.
    const metrics = createMetrics({queued: () => site.gate.waiting, running: () => table.size, launcherRestarts: () => launcher.info.restarts})
    const logger: Logger = {
      ...baseLogger,
      run(record) {
        recent.push({...record, at: new Date().toISOString()})
        if (recent.length > RECENT_RUNS) recent.shift()
        metrics.runFinished(record)
        baseLogger.run(record)
      },
    }
    // .ts pages may import only from the document root and the script directory (the build runs unsandboxed).
    const tsRunner = createTsRunner(config.cacheDir, [config.htdocs, config.cgiBin])
    const spooler = createBodySpooler({
      dir: makeSpoolDir(runtime), maxSpoolBytes: config.maxSpoolBytes, bodyIdleTimeoutMs: config.bodyIdleTimeoutMs,
    })
    shared = {runtime, launcher, logger, metrics, table, tsRunner, recent, startedAt: new Date(), counters, spooler}
    site = await buildSite(config, shared, options.sandbox)
    closers.push(() => site.sandbox.close())
  } catch (error) {
    await closeAll()
    throw error
  }
  const {logger, metrics, spooler} = shared

  function handle(req: IncomingMessage, res: ServerResponse): void {
    const current = site
    const started = Date.now()
    const incoming = req.headers['x-request-id']
    const requestId = typeof incoming === 'string' && REQUEST_ID_REGEXP.test(incoming) ? incoming : randomUUID()
    res.setHeader('X-Request-Id', requestId)
    if (draining) res.setHeader('Connection', 'close')
    const state: RequestState = {kind: 'error', cut: null}
    const clientGone = new AbortController()
    const client = clientAddress(req, current.trustedProxies)
    let bodyBytes = 0
    countBodyBytes(res, (bytes) => { bodyBytes += bytes })
    inFlight++
    responses.add(res)
    shared.counters.requests++
    res.once('close', () => {
      inFlight--
      if (inFlight === 0) {
        for (const wake of inFlightWaiters) wake()
        inFlightWaiters = []
      }
      responses.delete(res)
      if (!res.writableFinished) {
        clientGone.abort(new Error('client went away'))
        state.cut ??= 'client-gone'
      }
      metrics.request(state.kind, res.statusCode, bodyBytes)
      if (state.kind === 'admin') return
      logger.access({
        requestId, remoteAddress: client, time: new Date(started), method: req.method ?? '-', url: req.url ?? '-',
        httpVersion: req.httpVersion, status: res.statusCode, bytes: bodyBytes, referer: req.headers.referer,
        userAgent: req.headers['user-agent'], ms: Date.now() - started, cut: state.cut,
      })
    })
    const line: RequestLine = {
      method: req.method ?? 'GET', url: req.url ?? '/', redirects: 0, requestId, state, client,
      clientGone: clientGone.signal, remoteUser: null,
    }
    dispatch(current, req, res, line).catch((error: unknown) => {
      if (error instanceof ServiceUnavailableError) {
        shared.counters.rejected++
        metrics.rejected(error instanceof SpoolFullError ? 'spool' : 'busy')
      }
      if (res.headersSent && state.cut === null) state.cut = 'error'
      sendError(req, res, error, logger, requestId)
    })
  }

  async function dispatch(current: Site, req: IncomingMessage, res: ServerResponse, line: RequestLine): Promise<void> {
    const query = line.url.indexOf('?')
    const pathname = query === -1 ? line.url : line.url.slice(0, query)
    if (line.redirects === 0 && pathname.startsWith(ADMIN_PREFIX)) {
      line.state.kind = 'admin'
      if (await current.admin(req, res, line.url, line.client)) return
      line.state.kind = 'error'
    }
    // Basic auth comes before anything is served, files from memory included; the script never starts without it.
    const remoteUser = current.router.hasAuth ? await authenticate(current, req, current.router.locationOf(pathname)) : null
    if (line.redirects === 0 && remoteUser === null && current.fileCache.serve(req, res, pathname)) {
      line.state.kind = 'cache'
      metrics.staticCache(true)
      return
    }
    const route = await current.router.resolveRoute(pathname)
    switch (route.kind) {
      case 'script':
        return runCgi(req, res, {...line, remoteUser}, route.script, current.ctx)
      case 'redirect': {
        line.state.kind = 'redirect'
        assertReadMethod(line.method)
        const location = route.location + (query === -1 ? '' : line.url.slice(query))
        res.writeHead(301, {Location: location, 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': '0'})
        res.end()
        return
      }
      case 'directory': {
        // Uploads where the directory's location (or the server) accepts them.
        const upload = (route.location ?? current.config).upload
        if (line.method === 'POST' && upload) {
          line.state.kind = 'upload'
          return receiveUpload(req, res, route.dirPath, {
            urlPath: route.urlPath,
            maxUploadBytes: current.config.maxUploadBytes,
            cgiBin: current.config.cgiBin,
            pageExtensions: current.config.pageExtensions,
            interpreters: current.config.interpreters,
            meter: spooler.meter,
          })
        }
        line.state.kind = 'directory'
        return serveDirectory(req, res, {dirPath: route.dirPath, urlPath: route.urlPath},
          {upload, documentRoot: current.router.documentRoot}, line.method)
      }
      case 'static':
        line.state.kind = 'static'
        metrics.staticCache(false)
        await serveFile(req, res, route.filePath, line.method)
        current.fileCache.remember(pathname, route.filePath, res)
        return
    }
  }

  async function buildSite(next: Config, parts: Shared, sandboxOptions: SandboxOptions | undefined): Promise<Site> {
    const sandbox = await createSandbox(next, {launcher: parts.launcher, runtime: parts.runtime}, sandboxOptions)
    try {
      const router = await createRouter(next, (message) => parts.logger.info(message))
      warnUnreachable(next, parts.logger)
      const auths = await createAuths(next, parts.logger)
      const gate = createGate(next)
      const runs = new Set<object>()
      const launch = createLaunch(parts.launcher, sandbox, parts.table, (run) => {
        parts.counters.runs++
        parts.metrics.runStarted()
        runs.add(run)
        void run.released.then(() => {
          runs.delete(run)
          // A retired config's sandbox (its cgroups) goes with the last run that used it.
          if (self.retired && runs.size === 0) void sandbox.close()
        })
      })
      const ctx: CgiContext = {
        config: next,
        documentRoot: router.documentRoot,
        gate,
        // The .ts cache survives a reload that keeps the roots a page may import from.
        commands: createCommandResolver(next, {tsRunner: sameRoots(next, config) ? parts.tsRunner : undefined}),
        logger: parts.logger,
        spooler: parts.spooler,
        launch,
        dispatch: (req, res, line) => dispatch(site, req, res, line),
      }
      const self: Site = {
        config: next, router, sandbox, gate, ctx, auths, fileCache: createFileCache({validMs: next.staticCacheMs}), runs, retired: false,
        trustedProxies: createAddressList(next.trustProxy, 'trustProxy'),
        admin: createAdminHandler(next.adminAllow, {accepting: () => !draining, metrics: parts.metrics, status: () => status(self)}),
      }
      return self
    } catch (error) {
      await sandbox.close()
      throw error
    }
  }

  // The status page's data: levels, uptime, the config in short, runs now and lately, counters.
  function status(current: Site): Status {
    const now = Date.now()
    return {
      version: VERSION,
      level: current.sandbox.level,
      levelDescription: current.sandbox.describe(),
      startedAt: shared.startedAt.toISOString(),
      uptimeSeconds: Math.round((now - shared.startedAt.getTime()) / 1000),
      draining,
      config: {
        htdocs: current.config.htdocs, cgiBin: current.config.cgiBin, sandbox: current.config.sandbox,
        timeoutMs: current.config.limits.timeoutMs, maxOutputBytes: current.config.limits.maxOutputBytes,
        memoryBytes: current.config.limits.memoryBytes, maxProcesses: current.config.limits.maxProcesses,
        warmPython: current.config.warmPython, locations: current.config.locations.map((location) => location.prefix),
        upload: current.config.upload, maxConnections: current.config.maxConnections,
      },
      running: shared.table.list().map((entry) => ({
        requestId: entry.requestId, script: entry.script, pid: entry.run.pid, uid: entry.uid, level: entry.level,
        client: entry.client, elapsedMs: now - entry.startedAt, bytesOut: entry.run.bytesOut,
      })),
      queue: {waiting: current.gate.waiting, running: current.gate.running, maxConcurrent: current.config.maxConcurrent, maxQueued: current.config.maxQueued},
      recent: shared.recent.map((record) => ({
        at: record.at, requestId: record.requestId, script: record.script,
        outcome: record.signal ? `signal ${record.signal}` : `exit ${record.code}`, killReason: record.killReason,
        limitHit: record.limitHit, ms: record.ms, bytesOut: record.bytesOut, warm: record.warm === true,
      })).reverse(),
      counters: {
        requests: shared.counters.requests, runsStarted: shared.counters.runs, runsRunning: shared.table.size,
        rejected: shared.counters.rejected, requestsInFlight: inFlight, launcherRestarts: shared.launcher.info.restarts,
      },
    }
  }

  // The user a location's Basic auth lets in; null where no auth applies; 401 without valid credentials.
  async function authenticate(current: Site, req: IncomingMessage, location: Location | null): Promise<string | null> {
    const auth = location === null ? undefined : current.auths.get(location)
    if (auth === undefined) return null
    const user = await auth.authenticate(req.headers.authorization)
    if (user === null) throw new UnauthorizedError(auth.challenge, `auth: no valid credentials for ${location!.prefix}`)
    return user
  }

  const describeLevels = (current: Site) => {
    const others = [...new Set(current.config.locations.map((location) => current.sandbox.levelOf(location)))]
      .filter((level) => level !== current.sandbox.level)
    return [current.sandbox.describe(), ...others.map((level) => `  also ${current.sandbox.describe(level)}`)].join('\n')
  }

  let closing: Promise<void> | null = null
  const retired = new Set<Site>()
  return {
    handle,
    get sandboxDescription() { return describeLevels(site) },
    get config() { return site.config },
    logger,
    get inFlight() { return inFlight },
    drain() {
      draining = true
      // Those in flight too, where the head has not gone out: a proxy must not keep their connections for later.
      for (const res of responses) if (!res.headersSent) res.setHeader('Connection', 'close')
    },
    async finish(graceMs) {
      const deadline = Date.now() + graceMs
      if (!await table.whenIdle(graceMs)) {
        table.killAll('shutdown')
        // Killed runs end within the kill grace.
        await table.whenIdle(site.config.limits.killGraceMs + 1_000)
      }
      // Requests without a run (files, uploads) may finish too, within what is left of the grace.
      if (inFlight > 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))
          inFlightWaiters.push(() => {
            clearTimeout(timer)
            resolve()
          })
        })
      }
    },
    async reload(next) {
      const previous = site
      // Settings of the listener and of objects shared across sites: they take effect at the next start.
      const fixed = (['host', 'port', 'runtimeDir', 'cacheDir', 'logFormat', 'accessLog', 'maxSpoolBytes', 'bodyIdleTimeoutMs',
        'headersTimeoutMs', 'requestTimeoutMs', 'keepAliveTimeoutMs'] as const)
        .filter((key) => JSON.stringify(next[key]) !== JSON.stringify(previous.config[key]))
      if (fixed.length > 0) logger.error(`reload: ${fixed.join(', ')} changed; that needs a restart and keeps its old value until then`)
      const merged: Config = Object.freeze({...next, ...Object.fromEntries(fixed.map((key) => [key, previous.config[key]]))})
      site = await buildSite(merged, shared, options.sandbox)
      // The old sandbox goes once its runs have ended (at once without any); its auths are dropped now.
      previous.retired = true
      for (const auth of previous.auths.values()) auth.close()
      if (previous.runs.size === 0) await previous.sandbox.close()
      else retired.add(previous)
    },
    close() {
      closing ??= (async () => {
        table.killAll('shutdown')
        await table.whenIdle(site.config.limits.killGraceMs + 1_000)
        for (const auth of site.auths.values()) auth.close()
        for (const old of retired) await old.sandbox.close()
        await closeAll()
        logger.flush?.()
      })()
      return closing
    },
  }
}

// The client's address: the peer, or, when the peer is a trusted proxy, the address its X-Forwarded-For names (the
// last one that is not itself a trusted proxy: what each proxy appended, read from the nearest).
export function clientAddress(req: IncomingMessage, trusted: AddressList): string {
  const peer = req.socket.remoteAddress ?? ''
  if (!trusted.has(peer)) return peer
  const forwarded = req.headers['x-forwarded-for']
  const hops = (Array.isArray(forwarded) ? forwarded.join(',') : forwarded ?? '').split(',').map((hop) => hop.trim()).filter(Boolean)
  for (let index = hops.length - 1; index >= 0; index--) {
    if (!trusted.has(hops[index])) return hops[index]!
  }
  return hops[0] ?? peer
}

function sameRoots(a: Config, b: Config): boolean {
  return a.cacheDir === b.cacheDir && a.htdocs === b.htdocs && a.cgiBin === b.cgiBin
}

// Counts body bytes as they are written (the access log's %b: no headers, no chunk framing).
function countBodyBytes(res: ServerResponse, add: (bytes: number) => void): void {
  const write = res.write
  const end = res.end
  const size = (chunk: unknown) => typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk instanceof Uint8Array ? chunk.length : 0
  res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
    add(size(chunk))
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest)
  } as typeof res.write
  res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
    if (typeof chunk !== 'function') add(size(chunk))
    return (end as (...args: unknown[]) => ServerResponse).call(this, chunk, ...rest)
  } as typeof res.end
}

function makeSpoolDir(runtime: RuntimeDir): string {
  const dir = path.join(runtime.path, 'spool')
  fs.mkdirSync(dir, {mode: 0o700, recursive: true})
  return dir
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
function warnUnreachable(config: Config, logger: Logger): void {
  if (process.getuid?.() !== 0 || config.uidPoolSize === 0) return
  const paths = [config.htdocs, config.cgiBin, config.cacheDir, ...config.locations.flatMap((location) =>
    [...location.program === null ? [] : [location.program], ...location.readPaths, ...location.writePaths])]
  for (const target of paths) {
    const blocked = blockingDirectory(target, config.uidPoolStart, [config.uidPoolStart])
    if (blocked !== null) logger.info(`warning: scripts running as the uid pool (${config.uidPoolStart}-…) cannot reach ${target}: ${blocked} is not searchable by them`)
  }
}

function assertReadMethod(method: string): void {
  if (method !== 'GET' && method !== 'HEAD') throw new MethodNotAllowedError('GET, HEAD')
}

// The one place errors become responses: the status text only, never stderr, paths or causes (send error()).
export function sendError(req: IncomingMessage, res: ServerResponse, error: unknown, logger: Logger, requestId: string): void {
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
  const keep = new Set(['x-request-id', 'connection'])
  for (const name of res.getHeaderNames()) if (!keep.has(name)) res.removeHeader(name)
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
