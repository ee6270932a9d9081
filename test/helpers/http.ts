// Raw HTTP helpers for tests that must control the connection (exact request bytes, slow reads, aborts).
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
