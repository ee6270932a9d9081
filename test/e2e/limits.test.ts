// Runaway scripts: deadlines, output caps, stderr floods, lingering processes, and the kill reasons in the log.
import {describe, expect, test} from 'vitest'
import {getFully, openSocket, readUntil} from '../helpers/http.js'
import {isAlive, startTestServer} from '../helpers/server.js'

const pidOf = (headers: Record<string, string | string[] | undefined>) => Number(headers['x-cgi-pid'])

describe('deadline', () => {
  test('a silent sleeper gets a 504 and is killed', async () => {
    const server = await startTestServer({timeoutMs: 500, killGraceMs: 200})
    const response = await getFully(server.port, '/cgi-bin/silent.sh')
    expect(response.status).toBe(504)
    await expect.poll(() => server.log.runs[0]?.killReason, {timeout: 5_000}).toBe('deadline')
  })

  test('an endless CPU loop before its headers gets a 504', async () => {
    const server = await startTestServer({timeoutMs: 500, killGraceMs: 200})
    expect((await getFully(server.port, '/cgi-bin/spin.sh')).status).toBe(504)
    await expect.poll(() => server.log.runs[0]?.killReason, {timeout: 5_000}).toBe('deadline')
  })

  test.each(['spin-after-headers.sh', 'trickle.sh'])('%s past the deadline after its headers is cut off, never completed', async (script) => {
    const server = await startTestServer({timeoutMs: 700, killGraceMs: 200})
    const response = await getFully(server.port, `/cgi-bin/${script}`)
    expect(response.status).toBe(200)
    expect(response.complete).toBe(false)
    await expect.poll(() => isAlive(pidOf(response.headers)), {timeout: 5_000}).toBe(false)
    await expect.poll(() => server.log.runs[0]?.killReason, {timeout: 5_000}).toBe('deadline')
  })

  test('a script ignoring SIGTERM is killed with SIGKILL after the grace', async () => {
    const server = await startTestServer({timeoutMs: 500, killGraceMs: 300})
    const response = await getFully(server.port, '/cgi-bin/ignore-term.sh')
    expect(response.complete).toBe(false)
    await expect.poll(() => isAlive(pidOf(response.headers)), {timeout: 5_000}).toBe(false)
    await expect.poll(() => server.log.runs[0]?.signal, {timeout: 5_000}).toBe('SIGKILL')
  })
})

describe('output cap', () => {
  test('an endless yes after its headers is cut off at the cap', async () => {
    const server = await startTestServer({maxOutputBytes: 1_000_000})
    const response = await getFully(server.port, '/cgi-bin/yes.sh')
    expect(response.status).toBe(200)
    expect(response.complete).toBe(false)
    expect(response.body.length).toBeLessThanOrEqual(1_000_000)
    await expect.poll(() => server.log.runs[0]?.killReason, {timeout: 5_000}).toBe('output-cap')
    expect(isAlive(pidOf(response.headers))).toBe(false)
  })

  test('output past the cap before the headers end is a 502', async () => {
    const server = await startTestServer({maxOutputBytes: 50_000, maxHeaderBytes: 1_000_000})
    const response = await getFully(server.port, '/cgi-bin/yes-no-headers.sh')
    expect(response.status).toBe(502)
    await expect.poll(() => server.log.runs[0]?.killReason, {timeout: 5_000}).toBe('output-cap')
  })

  test('an endless stderr flood neither blocks the script nor reaches the client', async () => {
    const server = await startTestServer({maxStderrBytes: 1_000})
    const response = await getFully(server.port, '/cgi-bin/stderr-flood.sh')
    expect(response.status).toBe(200)
    expect(response.body.toString()).toBe('survived the flood\n')
    await expect.poll(() => server.log.stderrs[0]?.text.length ?? 0, {timeout: 5_000}).toBeGreaterThan(0)
    expect(server.log.stderrs[0]!.text.length).toBeLessThan(2_000)
  })
})

describe('a script that closes stdout and lingers', () => {
  test('gets a complete response at once and is killed by the deadline', async () => {
    const server = await startTestServer({timeoutMs: 5_000, killGraceMs: 200})
    // "At once": the response is complete while the script is still alive, i.e. before the deadline killed it.
    const response = await getFully(server.port, '/cgi-bin/close-stdout-linger.sh')
    expect(response.complete).toBe(true)
    expect(response.body.toString()).toBe('done early\n')
    const pid = pidOf(response.headers)
    expect(isAlive(pid)).toBe(true)
    await expect.poll(() => isAlive(pid), {timeout: 5_000}).toBe(false)
    await expect.poll(() => server.log.runs[0]?.killReason, {timeout: 5_000}).toBe('deadline')
  })
})

describe('client gone', () => {
  test('every hop of a chain of local redirects dies with the client, not only the last', async () => {
    const server = await startTestServer({timeoutMs: 60_000, killGraceMs: 200})
    const socket = await openSocket(server.port)
    socket.write('GET /cgi-bin/hop.sh HTTP/1.1\r\nHost: x\r\n\r\n')
    // Hops 0, 1 and 2 answered Location and linger; hop 3 is trickling its body.
    await readUntil(socket, (data) => data.includes('tick'))
    expect(server.log.runs).toEqual([])
    socket.destroy()
    await expect.poll(() => server.log.runs.length, {timeout: 10_000}).toBe(4)
    expect(server.log.runs.map((run) => run.killReason)).toEqual(['client-gone', 'client-gone', 'client-gone', 'client-gone'])
  })
})
