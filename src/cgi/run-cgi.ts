// Runs one CGI script for one request, in protocol order (Go host.go ServeHTTP): body → gate → command → env →
// launch → headers → status → body stream. Errors before the headers are thrown for app.ts to answer;
// after the headers a failed run cuts the response off (lighttpd http_response_backend_error).
import type {IncomingMessage, ServerResponse} from 'node:http'
import path from 'node:path'
import type {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import type {Limits} from '../config.js'
import {
  BadGatewayError, GatewayTimeoutError, HttpError, InternalServerError, OutputLimitError, RequestTimeoutError, ScriptSetupError,
} from '../errors.js'
import type {KillReason, Run, RunOutcome} from '../process/run.js'
import type {ScriptRoute} from '../route.js'
import {buildCgiEnv} from './env.js'
import {createHeaderParser, type CgiHead} from './response-parser.js'
import type {CgiContext, RequestLine} from './context.js'

// How many local redirects (Location: /path) one request may follow (Apache's LimitInternalRecursion is 10).
export const MAX_LOCAL_REDIRECTS = 10
/** How long a script that closed stdout before its headers has to exit by itself before it is killed. */
const EXIT_WAIT_MS = 250

// Runs the script of `script` for the request; resolves when the response is finished (the run may linger).
export async function runCgi(req: IncomingMessage, res: ServerResponse, line: RequestLine, script: ScriptRoute,
  ctx: CgiContext): Promise<void> {
  const limits = script.location?.limits ?? ctx.config.limits
  // Spooled (chunked) bodies count against the global spool budget while they wait; a stall or a client leaving
  // deletes them at once (body-limit.ts).
  const body = line.redirects === 0 ? await ctx.spooler.prepare(req, limits.maxBodyBytes) : null
  let release: () => void
  try {
    release = await ctx.gate.acquire(line.clientGone)
  } catch (error) {
    await body?.dispose()
    throw error
  }
  let run: Run
  try {
    const command = await ctx.commands.commandFor(script)
    const env = buildCgiEnv({
      method: line.method,
      httpVersion: req.httpVersion,
      rawHeaders: req.rawHeaders,
      requestUri: line.url,
      remoteAddress: line.client,
      remotePort: req.socket.remotePort ?? 0,
      localAddress: req.socket.localAddress ?? '',
      localPort: req.socket.localPort ?? 0,
      tls: 'encrypted' in req.socket,
      contentLength: body?.length ?? null,
      script,
      documentRoot: ctx.documentRoot,
      serverName: ctx.config.host,
      passAuthorization: script.location?.passAuthorization ?? ctx.config.passAuthorization,
      remoteUser: line.remoteUser,
      extraEnv: {...ctx.config.env, ...script.location?.env},
    })
    run = ctx.launch({
      argv: command.argv,
      env,
      cwd: path.dirname(script.scriptFilename),
      limits,
      location: script.location,
      readPaths: [ctx.documentRoot, ...command.readPaths],
      body: body !== null && body.length !== null && body.length > 0 ? body.open() : null,
      clientGone: line.clientGone,
      warm: command.warm ?? null,
      label: {requestId: line.requestId, script: script.scriptName, client: line.client},
    })
  } catch (error) {
    release()
    await body?.dispose()
    throw error
  }
  // The slot is free as soon as the run is gone; its record waits for the client to have read its output.
  void run.released.then(async () => {
    release()
    await body?.dispose()
  })
  void run.finished.then((outcome) => logRun(ctx, line.requestId, script, outcome))
  line.state.kind = 'script'
  if (script.nph) return streamRaw(req, run)
  const head = await readHead(run, limits, script)
  if (head.location?.startsWith('/') && head.status === null) return followLocalRedirect(req, res, line, head, run, ctx)
  writeHead(res, head)
  if (line.method === 'HEAD' || res.statusCode === 204 || res.statusCode === 304) {
    res.end()
    run.stdout.resume() // the script runs to its end; its body is read and dropped
    run.stdout.on('error', () => {})
    return
  }
  await streamBody(res, head.rest, run, limits, script, line)
}

// The run record and stderr, and a launch failure said plainly: cgibox's own setup, or an exec that failed.
function logRun(ctx: CgiContext, requestId: string, script: ScriptRoute, outcome: RunOutcome): void {
  if (outcome.stderr) ctx.logger.stderr(requestId, script.scriptName, outcome.stderr)
  if (outcome.failure !== null) {
    const whose = outcome.failure.stage === 'setup' ? 'cgibox could not set up the run' : 'the script could not be started'
    ctx.logger.error(`cgi: ${script.scriptName}: ${whose}: ${outcome.failure.message}`, {requestId})
  }
  ctx.logger.run({
    requestId,
    script: script.scriptName,
    pid: outcome.pid,
    code: outcome.code,
    signal: outcome.signal,
    killReason: outcome.killReason,
    limitHit: outcome.limitHit,
    ms: outcome.ms,
    bytesIn: outcome.bytesIn,
    bytesOut: outcome.bytesOut,
    warm: outcome.warm,
  })
}

// The HttpError a run ended by cgibox, or one that never started, answers with (when nothing was sent yet).
async function errorOf(run: Run, limits: Limits, script: ScriptRoute, fallback: HttpError): Promise<HttpError> {
  const reason: KillReason | null = run.killReason
  if (reason === 'deadline') return new GatewayTimeoutError(`cgi: ${script.scriptName} ran past its ${limits.timeoutMs} ms deadline`)
  if (reason === 'output-cap') return new OutputLimitError(`cgi: ${script.scriptName} wrote more than ${limits.maxOutputBytes} bytes`)
  if (reason === 'body-idle') return new RequestTimeoutError(`cgi: ${script.scriptName}: the client stopped sending its body (bodyIdleTimeoutMs)`)
  if (reason !== null) return new BadGatewayError(`cgi: ${script.scriptName} was killed: ${reason}`)
  const outcome = await Promise.race([run.finished, new Promise<null>((resolve) => setTimeout(resolve, 1_000, null).unref())])
  if (outcome?.failure?.stage === 'setup') return new ScriptSetupError(`cgi: ${script.scriptName}: cgibox could not set up the run: ${outcome.failure.message}`)
  if (outcome?.failure?.stage === 'exec') return new BadGatewayError(`cgi: ${script.scriptName} could not be started: ${outcome.failure.message}`)
  return fallback
}

// Reads stdout until the end of the CGI header block; throws 502/504 when the script fails before it.
async function readHead(run: Run, limits: Limits, script: ScriptRoute): Promise<CgiHead & {rest: Buffer}> {
  const parser = createHeaderParser(limits.maxHeaderBytes)
  const {stdout} = run
  try {
    return await new Promise<CgiHead & {rest: Buffer}>((resolve, reject) => {
      const cleanup = () => {
        stdout.off('data', onData)
        stdout.off('end', onEnd)
        stdout.off('error', onError)
      }
      const onData = (chunk: Buffer) => {
        try {
          const result = parser.feed(chunk)
          if (!result.done) return
          cleanup()
          stdout.pause()
          resolve({...result.head, rest: result.rest})
        } catch (error) {
          cleanup()
          run.kill('error')
          reject(error)
        }
      }
      const onEnd = () => {
        cleanup()
        try {
          parser.finish()
          reject(new BadGatewayError('cgi: script ended before the end of its headers'))
        } catch (error) {
          reject(error)
        }
        // A script that closed stdout without headers and lingers must not keep its slot until the deadline; one
        // that simply exited (its exit status is on its way) is not killed, and its record says how it ended.
        void Promise.race([run.ended, new Promise<null>((resolve) => setTimeout(resolve, EXIT_WAIT_MS, null).unref())])
          .then((exit) => {
            if (exit === null) run.kill('error')
          })
      }
      const onError = (error: Error) => {
        cleanup()
        reject(new BadGatewayError('cgi: script output failed before the end of its headers', {cause: error}))
      }
      stdout.on('data', onData)
      stdout.once('end', onEnd)
      stdout.once('error', onError)
    })
  } catch (error) {
    stdout.on('error', () => {})
    stdout.resume()
    throw await errorOf(run, limits, script, error as HttpError)
  }
}

// RFC 3875 §6.2.2: a local Location is re-dispatched as a GET through the same router and path checks. The earlier
// run keeps listening to the client: if the client leaves, every hop is killed (line.clientGone).
async function followLocalRedirect(req: IncomingMessage, res: ServerResponse, line: RequestLine, head: CgiHead,
  run: Run, ctx: CgiContext): Promise<void> {
  run.stdout.on('error', () => {})
  run.stdout.resume()
  if (line.redirects >= MAX_LOCAL_REDIRECTS) {
    throw new InternalServerError(`cgi: more than ${MAX_LOCAL_REDIRECTS} local redirects, last to ${head.location}`)
  }
  await ctx.dispatch(req, res, {...line, method: 'GET', url: head.location!, redirects: line.redirects + 1})
}

// Status: the script's Status, else 302 for a client redirect (RFC 3875 §6.2.3), else 200.
function writeHead(res: ServerResponse, head: CgiHead): void {
  res.statusCode = head.status ?? (head.location ? 302 : 200)
  if (head.statusText) res.statusMessage = head.statusText
  try {
    for (const [name, value] of head.headers) res.appendHeader(name, value)
  } catch (error) {
    throw new BadGatewayError('cgi: header rejected by the HTTP layer', {cause: error})
  }
}

// Streams the body with backpressure; a run killed mid-body, or a crash, cuts the response off (run.stdout errors).
async function streamBody(res: ServerResponse, rest: Buffer, run: Run, limits: Limits, script: ScriptRoute, line: RequestLine): Promise<void> {
  const {stdout} = run
  if (rest.length > 0) stdout.unshift(rest)
  // res is piped, not in a pipeline: a pipeline would destroy it on a failure before any body byte went out,
  // when the client should still get the run's 504 or 502.
  stdout.pipe(res)
  res.once('close', () => {
    if (!res.writableFinished) stdout.destroy() // the client left: stop pulling (the run dies of client-gone)
  })
  try {
    await new Promise<void>((resolve, reject) => {
      stdout.once('end', resolve)
      stdout.once('error', reject)
      stdout.once('close', () => (res.writableFinished || stdout.readableEnded ? resolve() : reject(new Error('cgi: output closed'))))
    })
  } catch (error) {
    stdout.unpipe(res)
    if (run.killReason === null) run.kill('error')
    // Nothing sent yet (Node sends the head with the first body byte): the client gets the run's 504 or 502.
    if (!res.headersSent) throw await errorOf(run, limits, script, new BadGatewayError('cgi: script failed before its body', {cause: error}))
    const exit = await Promise.race([run.ended, new Promise<null>((resolve) => setTimeout(resolve, 50, null).unref())])
    line.state.cut = run.killReason ?? exit?.signal ?? 'error'
    res.destroy() // the client must see an incomplete body, never a clean end
  }
}

// nph- scripts: the output goes to the socket as is, and the connection closes after it.
async function streamRaw(req: IncomingMessage, run: Run): Promise<void> {
  try {
    await pipeline(run.stdout as Readable, req.socket)
  } catch {
    req.socket.destroy()
  }
}
