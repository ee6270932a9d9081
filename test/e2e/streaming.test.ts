// Streaming with backpressure, concurrency, and the death of a run whose client went away.
import {readFileSync} from 'node:fs'
import http from 'node:http'
import {describe, expect, test} from 'vitest'
import {openSocket, readUntil} from '../helpers/http.js'
import {isAlive, startTestServer} from '../helpers/server.js'

describe('streaming', () => {
  test('the numbers 1 to 10 000 000 (78 888 897 bytes) arrive complete', async () => {
    const {port} = await startTestServer()
    const {bytes, lastLine} = await new Promise<{bytes: number; lastLine: string}>((resolve, reject) => {
      http.get({host: '127.0.0.1', port, path: '/cgi-bin/count.py'}, (response) => {
        let bytes = 0
        let tail = ''
        response.on('data', (chunk: Buffer) => {
          bytes += chunk.length
          tail = (tail + chunk.toString('latin1')).slice(-32)
        })
        response.on('end', () => resolve({bytes, lastLine: tail.trimEnd().split('\n').pop() ?? ''}))
        response.on('error', reject)
      }).on('error', reject)
    })
    expect(bytes).toBe(78_888_897)
    expect(lastLine).toBe('10000000')
  }, 120_000)

  test('a client that stops reading makes the script wait on its pipe', async () => {
    const server = await startTestServer()
    const socket = await openSocket(server.port)
    socket.write('GET /cgi-bin/count.py HTTP/1.1\r\nHost: x\r\n\r\n')
    const head = await readUntil(socket, (data) => data.includes('\r\n\r\n'))
    const pid = Number(/X-CGI-Pid: (\d+)/i.exec(head.toString('latin1'))![1])
    socket.pause()
    // The script blocks in write() once the pipe and socket buffers are full: its stdout stops growing.
    const written = () => readWchar(pid)
    let previous = -1
    await expect.poll(() => {
      const now = written()
      const settled = now === previous
      previous = now
      return settled
    }, {timeout: 20_000, interval: 500}).toBe(true)
    expect(previous).toBeLessThan(78_888_897 / 4)
    expect(isAlive(pid)).toBe(true)
    socket.destroy()
    await expect.poll(() => isAlive(pid), {timeout: 10_000}).toBe(false)
  }, 40_000)

  test('a script sleeping 60 s blocks nobody else', async () => {
    const {url} = await startTestServer()
    const slow = new AbortController()
    const sleeping = fetch(`${url}cgi-bin/sleep.sh?60`, {signal: slow.signal}).catch(() => null)
    const first = await sleeping
    expect(first?.status).toBe(200)
    const responses = await Promise.all([
      fetch(`${url}cgi-bin/status.sh?200`), fetch(`${url}hello.txt`), fetch(`${url}cgi-bin/lf-only.sh`),
    ])
    expect(responses.map((response) => response.status)).toEqual([200, 200, 200])
    slow.abort()
  })

  test('the script and its grandchild are dead after the client disconnects', async () => {
    const server = await startTestServer()
    const socket = await openSocket(server.port)
    socket.write('GET /cgi-bin/tree.sh HTTP/1.1\r\nHost: x\r\n\r\n')
    const head = (await readUntil(socket, (data) => data.includes('\r\n\r\n') && data.length > 5000)).toString('latin1')
    const pid = Number(/X-CGI-Pid: (\d+)/i.exec(head)![1])
    const childPid = Number(/X-Child-Pid: (\d+)/i.exec(head)![1])
    expect(isAlive(pid)).toBe(true)
    expect(isAlive(childPid)).toBe(true)
    socket.destroy()
    await expect.poll(() => isAlive(pid), {timeout: 10_000}).toBe(false)
    await expect.poll(() => isAlive(childPid), {timeout: 10_000}).toBe(false)
    await expect.poll(() => server.log.runs[0]?.killReason, {timeout: 10_000}).toBe('client-gone')
  })
})

// Bytes the process has written so far (/proc/PID/io wchar), or -1 once it is gone.
function readWchar(pid: number): number {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8')
    return Number(/wchar: (\d+)/.exec(io)![1])
  } catch {
    return -1
  }
}
