// Raw HTTP helpers for tests that must control the connection (exact request bytes, slow reads, aborts).
import http from 'node:http'
import net from 'node:net'
import {onTestFinished} from 'vitest'

// Sends raw request bytes and resolves with everything the server sent until it closed (bounded by timeoutMs).
// A socket error (e.g. a reset) only ends the read, unless failOnError is set, which rejects with it.
export function rawRequest(port: number, request: string | Buffer, timeoutMs = 10_000, {failOnError = false} = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`rawRequest: no close within ${timeoutMs} ms; got ${Buffer.concat(chunks).toString('latin1').slice(0, 200)}`))
    }, timeoutMs)
    socket.on('data', (chunk) => chunks.push(chunk))
    socket.on('error', (error) => {
      if (!failOnError) return
      clearTimeout(timer)
      reject(error)
    })
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(Buffer.concat(chunks))
    })
    socket.write(request)
  })
}

export interface RawResponse {
  readonly status: number
  /** Lower-case names, every value in the order received. */
  readonly headers: Record<string, string[]>
  /** De-chunked, decoded as UTF-8. */
  readonly body: string
}

// Sends a request exactly as written (latin1, so every char is one byte) on a new connection and parses the one
// response the server sent before closing. The request must end the connection (HTTP/1.0 or Connection: close);
// a socket error, a missing close within timeoutMs or an unparsable answer rejects.
export async function rawExchange(port: number, request: string, timeoutMs = 10_000): Promise<RawResponse> {
  return parseResponse(await rawRequest(port, Buffer.from(request, 'latin1'), timeoutMs, {failOnError: true}))
}

// Sends `GET <target> HTTP/1.1` byte for byte (no URL normalisation of `..` or `%2e`, unlike fetch) and parses the answer.
export function rawGet(port: number, target: string): Promise<RawResponse> {
  return rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`)
}

// Parses one HTTP/1.x response: status line, headers (lower-case names), body (de-chunked).
export function parseResponse(bytes: Buffer): RawResponse {
  const end = bytes.indexOf('\r\n\r\n')
  if (end === -1) throw new Error(`no complete response head in ${JSON.stringify(bytes.toString('latin1'))}`)
  const [statusLine = '', ...lines] = bytes.subarray(0, end).toString('latin1').split('\r\n')
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine)
  if (!status) throw new Error(`bad status line ${JSON.stringify(statusLine)}`)
  const headers: Record<string, string[]> = {}
  for (const line of lines) {
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    ;(headers[name] ??= []).push(line.slice(colon + 1).trim())
  }
  let body = bytes.subarray(end + 4)
  if (headers['transfer-encoding']?.[0]?.toLowerCase() === 'chunked') body = dechunk(body)
  return {status: Number(status[1]), headers, body: body.toString('utf8')}
}

// Joins the data of a chunked body, stopping at the last chunk (or where the bytes run out).
export function dechunk(bytes: Buffer): Buffer {
  const parts: Buffer[] = []
  let offset = 0
  for (;;) {
    const lineEnd = bytes.indexOf('\r\n', offset)
    if (lineEnd === -1) break
    const size = Number.parseInt(bytes.subarray(offset, lineEnd).toString('latin1'), 16)
    if (!Number.isFinite(size) || size === 0) break
    parts.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size))
    offset = lineEnd + 2 + size + 2
  }
  return Buffer.concat(parts)
}

// Opens a socket that the test controls; destroyed when the test finishes.
export function openSocket(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket))
    socket.once('error', reject)
    onTestFinished(() => {
      socket.destroy()
    })
  })
}

// Reads from a socket until `predicate(buffer)` holds or the timeout passes.
export function readUntil(socket: net.Socket, predicate: (data: Buffer) => boolean, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let data = Buffer.alloc(0)
    const timer = setTimeout(() => {
      socket.off('data', onData)
      reject(new Error(`readUntil: condition not met within ${timeoutMs} ms; got ${data.length} bytes`))
    }, timeoutMs)
    const onData = (chunk: Buffer) => {
      data = Buffer.concat([data, chunk])
      if (predicate(data)) {
        clearTimeout(timer)
        socket.off('data', onData)
        resolve(data)
      }
    }
    socket.on('data', onData)
  })
}

export interface FullResponse {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: Buffer
  /** False when the server cut the body off (no terminating chunk, or the connection reset). */
  readonly complete: boolean
}

// GETs a path and reads the whole response, telling a clean end from a cut-off one (bounded by timeoutMs).
export function getFully(port: number, path: string, timeoutMs = 20_000): Promise<FullResponse> {
  return new Promise((resolve, reject) => {
    const request = http.get({host: '127.0.0.1', port, path, agent: false}, (response) => {
      const chunks: Buffer[] = []
      let settled = false
      const finish = (complete: boolean) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resolve({status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks), complete})
      }
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => finish(response.complete))
      response.on('aborted', () => finish(false))
      response.on('error', () => finish(false))
      response.on('close', () => finish(response.complete))
    })
    const timer = setTimeout(() => {
      request.destroy()
      reject(new Error(`getFully: ${path} did not end within ${timeoutMs} ms`))
    }, timeoutMs)
    request.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
  })
}
