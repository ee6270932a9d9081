// Prepares a request body for a script's stdin: a declared Content-Length is checked against the cap and
// streamed as is; a chunked body is spooled to a private temp file (capped, never held in memory) so the
// script still gets CONTENT_LENGTH (RFC 3875 §4.1.2) and can read exactly that many bytes or to EOF.
import {createReadStream, createWriteStream} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import type {IncomingMessage} from 'node:http'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {Transform, type Readable} from 'node:stream'
import {pipeline} from 'node:stream/promises'
import {BadRequestError, PayloadTooLargeError} from '../errors.js'

export interface RequestBody {
  /** CONTENT_LENGTH, or null when the request has no body. */
  readonly length: number | null
  /** Opens the body for reading (call once). */
  open(): Readable
  /** Removes any spool file. */
  dispose(): Promise<void>
}

const EMPTY: RequestBody = {length: null, open: () => {
  throw new Error('no body')
}, dispose: async () => {}}

// Returns the request body ready for a script, or throws 413 (too large) / 400 (bad Content-Length).
export async function prepareRequestBody(req: IncomingMessage, maxBodyBytes: number): Promise<RequestBody> {
  const declared = req.headers['content-length']
  const chunked = req.headers['transfer-encoding'] !== undefined
  if (!chunked && declared === undefined) return EMPTY
  if (!chunked) {
    if (!/^\d+$/.test(declared!)) throw new BadRequestError(`body: bad Content-Length ${JSON.stringify(declared)}`)
    const length = Number(declared)
    if (length > maxBodyBytes) throw new PayloadTooLargeError(`body: Content-Length ${length} bytes, the limit is ${maxBodyBytes} bytes`)
    return {length, open: () => req, dispose: async () => {}}
  }
  return spoolBody(req, maxBodyBytes)
}

async function spoolBody(req: IncomingMessage, maxBodyBytes: number): Promise<RequestBody> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cgibox-body-'))
  const file = path.join(dir, 'body')
  let length = 0
  const cap = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      length += chunk.length
      if (length > maxBodyBytes) {
        callback(new PayloadTooLargeError(`body: chunked body over ${maxBodyBytes} bytes, the limit is ${maxBodyBytes} bytes`))
        return
      }
      callback(null, chunk)
    },
  })
  try {
    // req is piped, not put in a pipeline: an error must not destroy the socket before the 413 goes out.
    const written = pipeline(cap, createWriteStream(file, {mode: 0o600}))
    req.pipe(cap)
    req.once('aborted', () => cap.destroy(new BadRequestError('body: client aborted the upload')))
    await written
  } catch (error) {
    req.unpipe(cap)
    await rm(dir, {recursive: true, force: true})
    throw error
  }
  return {
    length,
    open: () => createReadStream(file),
    dispose: () => rm(dir, {recursive: true, force: true}),
  }
}
