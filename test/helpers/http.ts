// Raw HTTP helpers for tests that must control the connection (exact request bytes, slow reads, aborts).
import http from 'node:http'
import net from 'node:net'
import {onTestFinished} from 'vitest'

// Sends raw request bytes and resolves with everything the server sent until it closed (bounded by timeoutMs).
export function rawRequest(port: number, request: string | Buffer, timeoutMs = 10_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`rawRequest: no close within ${timeoutMs} ms; got ${Buffer.concat(chunks).toString('latin1').slice(0, 200)}`))
    }, timeoutMs)
    socket.on('data', (chunk) => chunks.push(chunk))
    socket.on('error', () => {})
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(Buffer.concat(chunks))
    })
    socket.write(request)
  })
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
