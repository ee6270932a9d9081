// The gate: p-limit caps running scripts, a bounded queue waits for a while, the rest get 503 with Retry-After.
// Static files never wait behind scripts.
import {describe, expect, test} from 'vitest'
import {getFully, openSocket, readUntil} from '../helpers/http.js'
import {startTestServer} from '../helpers/server.js'

describe('concurrency', () => {
  test('30 CPU-burning requests with 4 slots: 4 run, the queue waits, the excess gets 503 at once, static stays served', async () => {
    const server = await startTestServer({maxConcurrent: 4, maxQueued: 6, queueTimeoutMs: 20_000, timeoutMs: 1_500, killGraceMs: 200})
    const burns = Array.from({length: 30}, () => getFully(server.port, '/cgi-bin/spin.sh', 30_000))
    // While the storm runs (no run has ended yet), a static file still comes back.
    const staticFile = await getFully(server.port, '/hello.txt')
    expect(staticFile.status).toBe(200)
    expect(staticFile.body.toString()).toBe('hello static\n')
    expect(server.log.runs).toHaveLength(0)
    const statuses = (await Promise.all(burns)).map((response) => response.status)
    // 4 run at once and 6 wait their turn: all 10 hit their deadline (504); the other 20 are refused at once.
    expect(statuses.filter((status) => status === 504)).toHaveLength(10)
    expect(statuses.filter((status) => status === 503)).toHaveLength(20)
    await expect.poll(() => server.log.runs.length, {timeout: 10_000}).toBe(10)
    expect(server.log.runs.every((run) => run.killReason === 'deadline')).toBe(true)
  }, 60_000)

  test('a request that waits past the queue timeout gets 503 with Retry-After', async () => {
    const server = await startTestServer({maxConcurrent: 1, maxQueued: 10, queueTimeoutMs: 300})
    const holder = await holdSlot(server.port)
    const waiting = await getFully(server.port, '/cgi-bin/status.sh?200')
    expect(waiting.status).toBe(503)
    expect(waiting.headers['retry-after']).toBe('1')
    holder.destroy()
    // Once the slot is free (the holder's run is killed as client-gone), scripts run again.
    await expect.poll(() => server.log.runs.length, {timeout: 5_000}).toBe(1)
    expect((await getFully(server.port, '/cgi-bin/status.sh?200')).status).toBe(200)
  }, 30_000)

  test('a client that leaves while queued gives its place up', async () => {
    const server = await startTestServer({maxConcurrent: 1, maxQueued: 1, queueTimeoutMs: 20_000})
    const holder = await holdSlot(server.port)
    const controller = new AbortController()
    const leaving = fetch(`${server.url}cgi-bin/status.sh?200`, {signal: controller.signal}).catch(() => 'aborted')
    await new Promise((resolve) => setTimeout(resolve, 200))
    controller.abort()
    expect(await leaving).toBe('aborted')
    // The queue (size 1) has room again: this request waits for the slot instead of a 503.
    const next = getFully(server.port, '/cgi-bin/status.sh?200', 20_000)
    await new Promise((resolve) => setTimeout(resolve, 200))
    holder.destroy()
    expect((await next).status).toBe(200)
    await expect.poll(() => server.log.runs.length, {timeout: 5_000}).toBe(2)
  }, 30_000)
})

// Occupies a slot with a script that has sent its headers and sleeps; destroy the socket to free it.
async function holdSlot(port: number) {
  const socket = await openSocket(port)
  socket.write('GET /cgi-bin/sleep.sh?30 HTTP/1.1\r\nHost: x\r\n\r\n')
  await readUntil(socket, (data) => data.includes('started'))
  return socket
}
