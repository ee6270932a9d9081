// Exhausting the server without a script, as a hostile client would: disk through chunked bodies that are spooled
// and then stall, and descriptors through idle or half-sent connections. The attacks of the hostile review, each
// bounded now: a global spool budget (503 past it), a body idle timeout (408, spool deleted), spools deleted the
// moment a client leaves, a connection cap that closes the oldest idle connection first, short header timeouts.
import fs from 'node:fs'
import type net from 'node:net'
import path from 'node:path'
import {describe, expect, test} from 'vitest'
import {defaultRuntimeBase} from '../../src/config.js'
import {openSocket, rawExchange, readUntil} from '../helpers/http.js'
import {startTestServer} from '../helpers/server.js'

const KIB = 1024

// The spool files of this test process's server (its run-time instance directory is named after this pid).
function spoolFiles(): string[] {
  const base = defaultRuntimeBase()
  return fs.readdirSync(base).filter((name) => name.startsWith('cgibox-run-') && name.includes(`-${process.pid}-`))
    .flatMap((name) => {
      const dir = path.join(base, name, 'spool')
      return fs.existsSync(dir) ? fs.readdirSync(dir).map((file) => path.join(dir, file)) : []
    })
}

// Starts a chunked POST and sends `bytes` of body, then stops sending (the socket stays open).
async function stallAfter(port: number, target: string, bytes: number): Promise<net.Socket> {
  const socket = await openSocket(port)
  socket.write(`POST ${target} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n\r\n`)
  for (let sent = 0; sent < bytes; sent += 64 * KIB) {
    const size = Math.min(64 * KIB, bytes - sent)
    socket.write(`${size.toString(16)}\r\n`)
    socket.write(Buffer.alloc(size, 0x61))
    socket.write('\r\n')
  }
  return socket
}

function spooledBytes(): number {
  return spoolFiles().reduce((sum, file) => sum + (fs.statSync(file, {throwIfNoEntry: false})?.size ?? 0), 0)
}

describe('disk: chunked bodies are spooled within a budget and never outlive a stalled or vanished client', () => {
  test('stalled uploads hold at most maxSpoolBytes; past it the next gets 503; a stall ends in 408 and deletes its spool', async () => {
    const server = await startTestServer({maxSpoolBytes: '1M', bodyIdleTimeoutMs: 1_500, maxBodyBytes: '8M'})
    const stalled = await Promise.all([0, 1].map(() => stallAfter(server.port, '/cgi-bin/cat.sh', 400 * KIB)))
    await expect.poll(spooledBytes, {timeout: 5_000}).toBe(800 * KIB)
    // A third would pass the budget: refused at once, never written past it.
    const third = await stallAfter(server.port, '/cgi-bin/cat.sh', 400 * KIB)
    const refused = (await readUntil(third, (data) => data.includes('\r\n\r\n'))).toString('latin1')
    expect(refused).toMatch(/^HTTP\/1\.1 503 /)
    expect(refused).toMatch(/\r\nRetry-After: \d+\r\n/i)
    expect(spooledBytes()).toBeLessThanOrEqual(1024 * KIB)
    // The stalled two send nothing more: 408, and their spools are gone.
    for (const socket of stalled) {
      expect((await readUntil(socket, (data) => data.includes('\r\n\r\n'), 10_000)).toString('latin1')).toMatch(/^HTTP\/1\.1 408 /)
    }
    await expect.poll(spoolFiles, {timeout: 5_000}).toEqual([])
    expect(server.log.runs).toEqual([]) // no script ever started for them
  })

  test('a client that leaves mid-body leaves no spool behind, at once', async () => {
    const server = await startTestServer({bodyIdleTimeoutMs: 60_000})
    const socket = await stallAfter(server.port, '/cgi-bin/cat.sh', 256 * KIB)
    await expect.poll(spooledBytes, {timeout: 5_000}).toBe(256 * KIB)
    socket.destroy()
    // Long before the 60 s idle timeout.
    await expect.poll(spoolFiles, {timeout: 5_000}).toEqual([])
  })

  test('a chunked body within the budget still reaches its script whole', async () => {
    const server = await startTestServer({maxSpoolBytes: '1M'})
    const body = Buffer.alloc(700 * KIB, 0x62)
    const response = await fetch(`${server.url}cgi-bin/cat.sh`, {
      method: 'POST', body: new Blob([body]).stream(), duplex: 'half',
    } as RequestInit)
    expect(Buffer.from(await response.arrayBuffer()).equals(body)).toBe(true)
    await expect.poll(spoolFiles, {timeout: 5_000}).toEqual([])
  })
})

describe('run slots: a body with Content-Length goes straight to the script, and a stalled sender loses its run', () => {
  test('a client that stops mid-body gets 408 and its run is ended long before the deadline', async () => {
    const server = await startTestServer({bodyIdleTimeoutMs: 1_000, timeoutMs: 120_000})
    const socket = await openSocket(server.port)
    try {
      socket.write('POST /cgi-bin/hash-stdin.py HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n')
      socket.write(Buffer.alloc(10_000, 0x61))
      expect((await readUntil(socket, (data) => data.includes('\r\n\r\n'), 20_000)).toString('latin1')).toMatch(/^HTTP\/1\.1 408 /)
      await expect.poll(() => server.log.runs[0]?.killReason, {timeout: 10_000}).toBe('body-idle')
      expect(server.log.runs[0]!.bytesIn).toBe(10_000)
    } finally {
      socket.destroy()
    }
  })

  test('a script that reads its body late is not mistaken for a stalled client', async () => {
    // The whole body is sent at once; it waits in the pipe and the socket while the script sleeps past the idle time.
    const server = await startTestServer({bodyIdleTimeoutMs: 300})
    const body = Buffer.alloc(2 * 1024 * KIB, 0x62)
    const response = await fetch(`${server.url}cgi-bin/sleep-then-cat.sh?1.5`, {method: 'POST', body})
    expect(response.status).toBe(200)
    expect((await response.arrayBuffer()).byteLength).toBe(body.length)
    await expect.poll(() => server.log.runs[0]?.killReason, {timeout: 5_000}).toBeNull()
  })
})

describe('descriptors: the connection cap and the header timeout', () => {
  test('at maxConnections idle sockets, a new client is still served: the oldest idle connection makes room', async () => {
    const server = await startTestServer({maxConnections: 20})
    const idle = await Promise.all(Array.from({length: 20}, () => openSocket(server.port)))
    const closed = idle.map((socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())))
    for (let request = 0; request < 5; request++) {
      const response = await rawExchange(server.port, 'GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
      expect(response.status).toBe(200)
    }
    // The first new connection found the server at its cap and closed the oldest idle one; each later one found a
    // free place again (the one before it had closed), so nothing else was closed.
    // The oldest is closed (within a bound); every other one still answers a request, so none was closed late.
    const oldest = await Promise.race([closed[0]!.then(() => 'closed'), new Promise((resolve) => setTimeout(resolve, 5_000, 'open'))])
    expect(oldest).toBe('closed')
    for (const socket of idle.slice(1)) {
      socket.write('GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n')
      const answer = await readUntil(socket, (data) => data.includes('\r\n\r\n'), 5_000)
      expect(answer.toString('latin1')).toMatch(/^HTTP\/1\.1 200 /)
    }
  })

  test('a connection that sends half a request line and stops is closed after headersTimeoutMs', async () => {
    const server = await startTestServer({headersTimeoutMs: 500})
    const socket = await openSocket(server.port)
    socket.write('GET /hello.txt HT')
    const silent = await openSocket(server.port)
    await Promise.all([socket, silent].map((each) => new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('still open after 5 s')), 5_000)
      each.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
      each.resume()
    })))
  })
})

describe('uploads (--upload) are held to the same budget and idle timeout', () => {
  test('a stalled upload gets 408 and leaves no partial file behind', async () => {
    const {makeTempDir} = await import('../helpers/temp-dir.js')
    const htdocs = await makeTempDir('upload-stall')
    const server = await startTestServer({htdocs, upload: true, bodyIdleTimeoutMs: 1_000})
    const socket = await openSocket(server.port)
    const boundary = 'cgibox-boundary'
    const head = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`
    socket.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: 10000000\r\n\r\n${head}`)
    socket.write(Buffer.alloc(300 * KIB, 0x63))
    // The partial file exists while the client sends…
    await expect.poll(() => fs.readdirSync(htdocs).filter((name) => name.startsWith('.cgibox-upload-')).length, {timeout: 5_000}).toBe(1)
    // …then the client stalls: 408, and nothing of the upload is left.
    expect((await readUntil(socket, (data) => data.includes('\r\n\r\n'), 10_000)).toString('latin1')).toMatch(/^HTTP\/1\.1 408 /)
    await expect.poll(() => fs.readdirSync(htdocs).filter((name) => name !== '.cgibox-uploads'), {timeout: 5_000}).toEqual([])
  })

  test('uploads past the spool budget are refused with 503', async () => {
    const {makeTempDir} = await import('../helpers/temp-dir.js')
    const htdocs = await makeTempDir('upload-budget')
    const server = await startTestServer({htdocs, upload: true, maxSpoolBytes: '256K'})
    const form = new FormData()
    form.append('file', new Blob([Buffer.alloc(512 * KIB, 0x64)]), 'big.bin')
    const response = await fetch(server.url, {method: 'POST', body: form})
    expect(response.status).toBe(503)
    expect(fs.readdirSync(htdocs).filter((name) => name !== '.cgibox-uploads')).toEqual([])
    // Counted as a spool rejection, not as busy slots.
    const metrics = await (await fetch(`${server.url}.cgibox/metrics`)).text()
    expect(metrics).toContain('cgibox_rejections_total{reason="spool"} 1')
    expect(metrics).not.toContain('cgibox_rejections_total{reason="busy"}')
  })
})
