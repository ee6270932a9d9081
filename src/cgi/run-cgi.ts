// Runs one CGI script for one request, in protocol order (Go host.go ServeHTTP): body → gate → command → env →
// spawn → headers → status → body stream. Errors before the headers are thrown for server.ts to answer;
// after the headers a failed run cuts the response off (lighttpd http_response_backend_error).
import type {IncomingMessage, ServerResponse} from 'node:http'
import path from 'node:path'
import type {Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import type {Limits} from '../config.js'
import {
  BadGatewayError, GatewayTimeoutError, HttpError, InternalServerError, OutputLimitError,
} from '../errors.js'
import {prepareRequestBody, type RequestBody} from '../limits/body-limit.js'
import {createByteCap} from '../limits/output-cap.js'
import type {ScriptProcess} from '../process/spawn-script.js'
import type {ScriptRoute} from '../route.js'
import {buildCgiEnv} from './env.js'
import {createHeaderParser, type CgiHead} from './response-parser.js'
import type {CgiContext, RequestLine} from './context.js'

// How many local redirects (Location: /path) one request may follow (Apache's LimitInternalRecursion is 10).
export const MAX_LOCAL_REDIRECTS = 10
// After stdout ends, how long to wait for the exit status before ending the response cleanly anyway.
const EXIT_WAIT_MS = 50
// Kill reasons after which a response that already started must be cut off, never completed.
const CUT_OFF_REASONS = new Set(['deadline', 'output-cap', 'shutdown', 'client-gone', 'error'])

// Runs the script of `script` for the request; resolves when the response is finished (the run may linger).
export async function runCgi(req: IncomingMessage, res: ServerResponse, line: RequestLine, script: ScriptRoute,
  ctx: CgiContext): Promise<void> {
  const limits = script.mount?.limits ?? ctx.config.limits
  const body = line.redirects === 0 ? await prepareRequestBody(req, limits.maxBodyBytes) : null
  // One close listener per hop: the client going away aborts the wait for a slot, or kills the run.
  const clientGone = new AbortController()
  let run: Run | null = null
  const onClose = () => {
    if (run === null) clientGone.abort(new Error('client went away while queued'))
    else if (!res.writableFinished) run.kill('client-gone')
  }
  res.once('close', onClose)
  let release: () => void
  try {
    release = await ctx.gate.acquire(clientGone.signal)
  } catch (error) {
    await body?.dispose()
    throw error
  }
  let child: ScriptProcess
  try {
    const argv = await ctx.commands.commandFor(script)
    const env = buildCgiEnv({
      method: line.method,
      httpVersion: req.httpVersion,
      rawHeaders: req.rawHeaders,
      requestUri: line.url,
      remoteAddress: req.socket.remoteAddress ?? '',
      remotePort: req.socket.remotePort ?? 0,
      localAddress: req.socket.localAddress ?? '',
      localPort: req.socket.localPort ?? 0,
      tls: 'encrypted' in req.socket,
      contentLength: body?.length ?? null,
      script,
      documentRoot: ctx.documentRoot,
      serverName: ctx.config.host,
      passAuthorization: script.mount?.passAuthorization ?? ctx.config.passAuthorization,
      extraEnv: {...ctx.config.env, ...script.mount?.env},
    })
    child = ctx.spawn({argv, env, cwd: path.dirname(script.scriptFilename), limits, script})
  } catch (error) {
    release()
    await body?.dispose()
    throw error
  }
  run = superviseRun(child, limits, ctx, script, line.requestId, release, body)
  if (script.nph) return streamRaw(req, child, run, limits)
  const head = await readHead(child.stdout, limits, run)
  if (head.location?.startsWith('/') && head.status === null) {
    res.off('close', onClose)
    return followLocalRedirect(req, res, line, head, child, ctx)
  }
  writeHead(res, head)
  if (line.method === 'HEAD' || res.statusCode === 204 || res.statusCode === 304) {
    res.end()
    child.stdout.resume() // the script runs to its end; its body is read and dropped
    return
  }
  await streamBody(res, head.rest, child, run, limits)
}

interface Run {
  /** Kills the run for a reason (first wins) and rejects waiters of `killed`. */
  kill(reason: Parameters<ScriptProcess['kill']>[0]): void
  /** Rejects when the run is killed, with the matching HttpError. */
  readonly killed: Promise<never>
  /** That HttpError, once the run was killed. */
  readonly error: HttpError | null
  bytesOut: number
}

// Starts the deadline, feeds stdin, logs stderr and the run record, and releases the slot when the run ends.
function superviseRun(child: ScriptProcess, limits: Limits, ctx: CgiContext, script: ScriptRoute, requestId: number,
  release: () => void, body: RequestBody | null): Run {
  const started = performance.now()
  let rejectKilled: (error: Error) => void = () => {}
  const killed = new Promise<never>((_, reject) => {
    rejectKilled = reject
  })
  killed.catch(() => {})
  let error: HttpError | null = null
  const run: Run = {
    killed,
    get error() { return error },
    bytesOut: 0,
    kill(reason) {
      if (child.killReason !== null) return
      child.kill(reason)
      error = reason === 'deadline'
        ? new GatewayTimeoutError(`cgi: ${script.scriptName} ran past its ${limits.timeoutMs} ms deadline`)
        : reason === 'output-cap'
          ? new OutputLimitError(`cgi: ${script.scriptName} wrote more than ${limits.maxOutputBytes} bytes`)
          : new BadGatewayError(`cgi: ${script.scriptName} was killed: ${reason}`)
      rejectKilled(error)
    },
  }
  ctx.runs.add(run)
  const deadline = setTimeout(() => run.kill('deadline'), limits.timeoutMs)
  let bytesIn = 0
  if (body && body.length !== null && body.length > 0) {
    const source = body.open()
    source.on('data', (chunk: Buffer) => {
      bytesIn += chunk.length
    })
    source.pipe(child.stdin)
    // EPIPE: the script need not read its body. The rest is read and dropped; destroying the request (as a
    // pipeline would) would take the socket, and the response still on its way, with it.
    child.stdin.on('error', () => {
      source.unpipe(child.stdin)
      source.resume()
    })
  } else {
    child.stdin.on('error', () => {})
    child.stdin.end()
  }
  const stderr = collectStderr(child.stderr, limits.maxStderrBytes)
  void child.exited.then(async (status) => {
    clearTimeout(deadline)
    ctx.runs.delete(run)
    release()
    const text = await stderr
    if (text) ctx.logger.stderr(requestId, script.scriptName, text)
    ctx.logger.run({
      requestId,
      script: script.scriptName,
      pid: child.pid,
      code: status.code,
      signal: status.signal,
      killReason: child.killReason,
      limitHit: status.resourceLimit,
      ms: Math.round(performance.now() - started),
      bytesIn,
      bytesOut: run.bytesOut,
    })
    await body?.dispose()
  })
  return run
}

// Reads stdout until the end of the CGI header block; throws 502/504 when the script fails before it.
async function readHead(stdout: Readable, limits: Limits, run: Run): Promise<CgiHead & {rest: Buffer}> {
  const parser = createHeaderParser(limits.maxHeaderBytes)
  const parsed = new Promise<CgiHead & {rest: Buffer}>((resolve, reject) => {
    const cleanup = () => {
      stdout.off('data', onData)
      stdout.off('end', onEnd)
      stdout.off('error', onEnd)
    }
    const onData = (chunk: Buffer) => {
      run.bytesOut += chunk.length
      if (run.bytesOut > limits.maxOutputBytes) {
        cleanup()
        run.kill('output-cap')
        return
      }
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
      run.kill('error') // a script that closed stdout without headers must not keep its slot until the deadline
    }
    stdout.on('data', onData)
    stdout.once('end', onEnd)
    stdout.once('error', onEnd)
  })
  return Promise.race([parsed, run.killed])
}

// RFC 3875 §6.2.2: a local Location is re-dispatched as a GET through the same router and path checks.
async function followLocalRedirect(req: IncomingMessage, res: ServerResponse, line: RequestLine, head: CgiHead,
  child: ScriptProcess, ctx: CgiContext): Promise<void> {
  child.stdout.resume()
  if (line.redirects >= MAX_LOCAL_REDIRECTS) {
    throw new InternalServerError(`cgi: more than ${MAX_LOCAL_REDIRECTS} local redirects, last to ${head.location}`)
  }
  await ctx.dispatch(req, res, {
    method: 'GET', url: head.location!, redirects: line.redirects + 1, requestId: line.requestId,
  })
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

// Streams the body with backpressure; a run killed mid-body, or a crash, cuts the response off.
async function streamBody(res: ServerResponse, rest: Buffer, child: ScriptProcess, run: Run, limits: Limits): Promise<void> {
  const headBytes = run.bytesOut - rest.length
  const cap = createByteCap({
    limit: limits.maxOutputBytes - headBytes,
    onExceed: () => run.kill('output-cap'),
    onBytes: (count) => {
      run.bytesOut += count
    },
    onEnd: async () => {
      const status = await Promise.race([child.ended, new Promise<null>((resolve) => setTimeout(resolve, EXIT_WAIT_MS, null).unref())])
      return wasCutOff(child, status) ? new Error(`cgi: run ended by ${child.killReason ?? status?.signal}`) : null
    },
  })
  run.bytesOut = headBytes
  if (rest.length > 0) cap.write(rest) // buffered in the transform until the pipeline pulls it
  // res is piped, not in the pipeline: a pipeline would destroy it on a failure before any body byte went out,
  // when the client should still get the run's 504 or 502.
  cap.pipe(res)
  res.once('close', () => {
    if (!res.writableFinished) cap.destroy() // the client left: stop pulling, so the pipeline settles
  })
  try {
    await pipeline(child.stdout, cap)
  } catch (error) {
    cap.unpipe(res)
    if (child.killReason === null) run.kill('error')
    // Nothing sent yet (Node sends the head with the first body byte): the client gets the run's 504 or 502.
    if (!res.headersSent) throw run.error ?? new BadGatewayError('cgi: script failed before its body', {cause: error})
    res.destroy() // the client must see an incomplete body, never a clean end
  }
}

// nph- scripts: the output goes to the socket as is, and the connection closes after it.
async function streamRaw(req: IncomingMessage, child: ScriptProcess, run: Run, limits: Limits): Promise<void> {
  const cap = createByteCap({
    limit: limits.maxOutputBytes,
    onExceed: () => run.kill('output-cap'),
    onBytes: (count) => {
      run.bytesOut += count
    },
  })
  try {
    await pipeline(child.stdout, cap, req.socket)
  } catch {
    req.socket.destroy()
  }
}

// A run killed by cgibox, or one that died by a signal (a crash, the memory limit), did not finish its body.
function wasCutOff(child: ScriptProcess, status: {readonly signal: NodeJS.Signals | null} | null): boolean {
  if (child.killReason !== null) return CUT_OFF_REASONS.has(child.killReason)
  return status?.signal != null
}

// Keeps the first `max` bytes of stderr for the log and drains the rest (a flood must not block the script).
function collectStderr(stderr: Readable, max: number): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let kept = 0
    let dropped = 0
    stderr.on('data', (chunk: Buffer) => {
      if (kept < max) {
        const part = chunk.subarray(0, max - kept)
        chunks.push(part)
        kept += part.length
        dropped += chunk.length - part.length
      } else {
        dropped += chunk.length
      }
    })
    const done = () => resolve(Buffer.concat(chunks).toString('utf8') + (dropped ? `\n[${dropped} more bytes of stderr dropped]` : ''))
    stderr.once('end', done)
    stderr.once('error', done)
    stderr.once('close', done)
  })
}
