// Request bodies before a script or an upload gets them: a declared Content-Length is checked against the cap and
// streamed as the script reads it (a client that stalls mid-body fails the stream: the run is ended and the request
// answered 408, so a slow sender cannot hold a run's slot until the deadline); a chunked body is spooled to a private file (capped, never held in memory) so the script still gets
// CONTENT_LENGTH (RFC 3875 §4.1.2). Spools live in cgibox's own directory, count against one global cap
// (maxSpoolBytes: 503 past it), and are deleted the moment the client stalls (bodyIdleTimeoutMs: 408) or leaves.
import {randomBytes} from 'node:crypto'
import {createReadStream, createWriteStream, rmSync} from 'node:fs'
import {rm} from 'node:fs/promises'
import type {IncomingMessage} from 'node:http'
import path from 'node:path'
import {Transform, type Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {BadRequestError, PayloadTooLargeError, RequestTimeoutError, SpoolFullError} from '../errors.js'

export interface RequestBody {
  /** CONTENT_LENGTH, or null when the request has no body. */
  readonly length: number | null
  /** Opens the body for reading (call once). */
  open(): Readable
  /** Removes any spool file and returns its bytes to the global budget. */
  dispose(): Promise<void>
}

export interface SpoolOptions {
  /** A private directory (0700) of cgibox's own for the spool files. */
  readonly dir: string
  /** Bytes all spools and uploads in progress may hold at once. */
  readonly maxSpoolBytes: number
  /** A body that sends nothing for this long is dropped with 408. */
  readonly bodyIdleTimeoutMs: number
}

export interface BodySpooler {
  /** The body ready for a script, or throws 413 (too large), 400 (bad length), 408 (stalled), 503 (spool full). */
  prepare(req: IncomingMessage, maxBodyBytes: number): Promise<RequestBody>
  /**
   * Counts body bytes against the global budget and the idle timeout: a Transform for uploads. It errors with 503 past
   * the budget and 408 when the client stalls; `release()` returns its bytes (call when the upload is over).
   */
  meter(req: IncomingMessage, maxBytes: number): Meter
}

export interface Meter {
  readonly stream: Transform
  /** Body bytes that have passed so far. */
  readonly bytes: number
  release(): void
}

const EMPTY: RequestBody = {length: null, open: () => {
  throw new Error('no body')
}, dispose: async () => {}}
/** Seconds a client is told to wait when the spool budget is used up. */
const RETRY_AFTER_SECONDS = 5

// Creates the spooler over one directory and one budget.
export function createBodySpooler(options: SpoolOptions): BodySpooler {
  let heldBytes = 0
  let next = 1

  function meter(req: IncomingMessage, maxBytes: number): Meter {
    let counted = 0
    let held = 0
    let released = false
    let idleTimer: NodeJS.Timeout | undefined
    const stream: Transform = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        armIdle()
        counted += chunk.length
        if (counted > maxBytes) {
          callback(new PayloadTooLargeError(`body: over ${maxBytes} bytes, the limit is ${maxBytes} bytes`))
          return
        }
        if (heldBytes + chunk.length > options.maxSpoolBytes) {
          callback(new SpoolFullError(RETRY_AFTER_SECONDS,
            `body: the spool budget of ${options.maxSpoolBytes} bytes (maxSpoolBytes) is used up`))
          return
        }
        if (!released) {
          heldBytes += chunk.length
          held += chunk.length
        }
        callback(null, chunk)
      },
      flush(callback) {
        clearTimeout(idleTimer)
        callback()
      },
    })
    const armIdle = () => {
      clearTimeout(idleTimer)
      idleTimer = setTimeout(() => stream.destroy(new RequestTimeoutError(
        `body: nothing received for ${options.bodyIdleTimeoutMs} ms (bodyIdleTimeoutMs)`)), options.bodyIdleTimeoutMs)
      idleTimer.unref()
    }
    armIdle()
    stream.once('close', () => clearTimeout(idleTimer))
    // A client that goes away mid-body: the stream fails at once, so its bytes are freed now, not at some timeout.
    req.once('close', () => {
      if (!req.complete) stream.destroy(new BadRequestError('body: the client went away mid-body'))
    })
    return {
      stream,
      get bytes() { return counted },
      release() {
        if (released) return
        released = true
        clearTimeout(idleTimer)
        heldBytes -= held
        held = 0
      },
    }
  }

  return {
    meter,
    async prepare(req, maxBodyBytes) {
      const declared = req.headers['content-length']
      const chunked = req.headers['transfer-encoding'] !== undefined
      if (!chunked && declared === undefined) return EMPTY
      if (!chunked) {
        if (!/^\d+$/.test(declared!)) throw new BadRequestError(`body: bad Content-Length ${JSON.stringify(declared)}`)
        const length = Number(declared)
        if (length > maxBodyBytes) throw new PayloadTooLargeError(`body: Content-Length ${length} bytes, the limit is ${maxBodyBytes} bytes`)
        return {length, open: () => watchIdle(req, options.bodyIdleTimeoutMs), dispose: async () => {}}
      }
      const file = path.join(options.dir, `body-${process.pid}-${next++}-${randomBytes(6).toString('hex')}`)
      const metered = meter(req, maxBodyBytes)
      try {
        // req is piped, not put in a pipeline: an error must not destroy the socket before the 413 goes out.
        const written = pipeline(metered.stream, createWriteStream(file, {mode: 0o600, flags: 'wx'}))
        req.pipe(metered.stream)
        await written
      } catch (error) {
        req.unpipe(metered.stream)
        rmSync(file, {force: true}) // at once: a stalled or vanished client holds nothing
        metered.release()
        throw error
      }
      let disposed = false
      return {
        length: metered.bytes,
        open: () => createReadStream(file),
        async dispose() {
          if (disposed) return
          disposed = true
          await rm(file, {force: true})
          metered.release()
        },
      }
    },
  }
}

// The body as it arrives, failing with 408 once the client has sent nothing for `idleMs` while the reader was ready
// for more. A pause the reader caused (a script that does not read its stdin yet) is not the client's stall.
function watchIdle(source: Readable, idleMs: number): Transform {
  let timer: NodeJS.Timeout | undefined
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      arm()
      callback(null, chunk)
    },
    flush(callback) {
      clearTimeout(timer)
      callback()
    },
  })
  const fire = () => {
    if (stream.readableLength > 0 || stream.writableLength > 0 || source.readableFlowing === false) {
      arm() // backpressure from the reader: the bytes wait on it, not on the client
      return
    }
    source.unpipe(stream)
    stream.destroy(new RequestTimeoutError(`body: nothing received for ${idleMs} ms (bodyIdleTimeoutMs)`))
  }
  const arm = () => {
    clearTimeout(timer)
    timer = setTimeout(fire, idleMs)
    timer.unref()
  }
  arm()
  stream.once('close', () => clearTimeout(timer))
  return source.pipe(stream)
}
