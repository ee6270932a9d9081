// What an operator has: health for load balancers, Prometheus metrics, the status page (loopback and adminAllow
// only), request ids joining access lines and run records, access lines with body bytes and cut-off marks, drain
// on shutdown without losing a finished response, and a reload that leaves running scripts alone.
import {describe, expect, test} from 'vitest'
import {createAddressList} from '../../src/address-list.js'
import {normalizeConfig} from '../../src/config.js'
import {getFully, openSocket, readUntil} from '../helpers/http.js'
import {FIXTURES, parseEnvDump, startTestServer} from '../helpers/server.js'

describe('admin endpoints under /.cgibox/', () => {
  test('health answers ok, and 503 from the moment the server drains', async () => {
    const server = await startTestServer()
    const health = await fetch(`${server.url}.cgibox/health`)
    expect(health.status).toBe(200)
    expect(await health.text()).toBe('ok\n')
    server.app.drain()
    const draining = await fetch(`${server.url}.cgibox/health`)
    expect(draining.status).toBe(503)
    expect(draining.headers.get('connection')).toBe('close')
  })

  test('metrics are Prometheus text: requests by kind and status, runs by outcome and kill reason, durations, process metrics', async () => {
    const server = await startTestServer({timeoutMs: 1_000, killGraceMs: 100})
    await (await fetch(`${server.url}hello.txt`)).text()
    await (await fetch(`${server.url}cgi-bin/env.py`)).text()
    await (await fetch(`${server.url}nowhere`)).text()
    await getFully(server.port, '/cgi-bin/spin-after-headers.sh')
    await expect.poll(() => server.log.runs.length, {timeout: 10_000}).toBe(2)
    const response = await fetch(`${server.url}.cgibox/metrics`)
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
    const text = await response.text()
    expect(text).toMatch(/^cgibox_requests_total\{kind="static",status="200"\} 1$/m)
    expect(text).toMatch(/^cgibox_requests_total\{kind="script",status="200"\} 2$/m)
    expect(text).toMatch(/^cgibox_requests_total\{kind="error",status="404"\} 1$/m)
    expect(text).toMatch(/^cgibox_runs_started_total 2$/m)
    expect(text).toMatch(/^cgibox_runs_finished_total\{outcome="[a-z]+",kill_reason="deadline",limit="",warm="no"\} 1$/m)
    expect(text).toMatch(/^cgibox_run_duration_seconds_count 2$/m)
    expect(text).toMatch(/^cgibox_queue_length 0$/m)
    expect(text).toMatch(/^cgibox_runs_running 0$/m)
    expect(text).toMatch(/^cgibox_launcher_restarts 0$/m)
    expect(text).toMatch(/^cgibox_static_cache_requests_total\{result="miss"\} 1$/m)
    expect(text).toMatch(/^process_cpu_user_seconds_total /m)
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m)
  })

  test('status shows a running script with its pid, uid and client while it runs, then as finished', async () => {
    const server = await startTestServer()
    const socket = await openSocket(server.port)
    socket.write('GET /cgi-bin/sleep.sh?30 HTTP/1.1\r\nHost: x\r\n\r\n')
    await readUntil(socket, (data) => data.includes('started'))
    type Status = {
      running: {script: string; pid: number; client: string; level: string}[]; level: string; recent: unknown[]
      queue: {running: number}; counters: Record<string, number>; uptimeSeconds: number
    }
    const readStatus = async () => await (await fetch(`${server.url}.cgibox/status?format=json`)).json() as Status
    // The pid comes on the launcher's own channel and may lag behind the script's first output.
    await expect.poll(async () => (await readStatus()).running[0]?.pid ?? -1, {timeout: 5_000}).toBeGreaterThan(0)
    const status = await readStatus()
    expect(status.level).toBe('none')
    expect(status.running).toEqual([expect.objectContaining({script: '/cgi-bin/sleep.sh', client: '127.0.0.1', level: 'none'})])
    expect(status.running[0]!.pid).toBeGreaterThan(0)
    expect(status.queue.running).toBe(1)
    const html = await (await fetch(`${server.url}.cgibox/status`)).text()
    expect(html).toContain('<meta http-equiv="refresh" content="2">')
    expect(html).toContain('/cgi-bin/sleep.sh')
    socket.destroy()
    await expect.poll(async () => (await (await fetch(`${server.url}.cgibox/status?format=json`)).json() as {recent: {script: string; killReason: string}[]}).recent,
      {timeout: 10_000}).toEqual([expect.objectContaining({script: '/cgi-bin/sleep.sh', killReason: 'client-gone'})])
  })

  test('the status page escapes what it shows (a script name is the attacker\'s)', async () => {
    const {renderStatusPage} = await import('../../src/admin/status-page.js')
    const html = renderStatusPage({
      version: '1', level: 'none', levelDescription: 'd', startedAt: 'now', uptimeSeconds: 3, draining: false, config: {},
      running: [{requestId: 'r', script: '/cgi-bin/<script>alert(1)</script>', pid: 1, uid: null, level: 'none', client: '"x"', elapsedMs: 5, bytesOut: 0}],
      queue: {waiting: 0, running: 1, maxConcurrent: 4, maxQueued: 100}, recent: [], counters: {},
    })
    expect(html).not.toContain('<script>')
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;')
    expect(html).toContain('&quot;x&quot;')
  })

  test.each([
    ['127.0.0.1', [], true],
    ['::1', [], true],
    ['::ffff:127.0.0.1', [], true],
    ['10.0.0.5', [], false],
    ['10.0.0.5', ['10.0.0.0/8'], true],
    ['192.168.1.9', ['10.0.0.0/8', '192.168.1.9'], true],
    ['2001:db8::1', ['2001:db8::/32'], true],
    ['2001:db9::1', ['2001:db8::/32'], false],
    [undefined, [], false],
  ] as const)('admin from %s with adminAllow %j: %s', (address, allow, allowed) => {
    expect(createAddressList(allow, 'adminAllow', true).has(address)).toBe(allowed)
  })

  test.each(['10.0.0.0/33', 'nonsense', '10.0.0.1/8/8', '::1/129'])('adminAllow %s is refused naming the option', (entry) => {
    expect(() => normalizeConfig({adminAllow: [entry]})).toThrow(/`adminAllow`/)
  })

  test('/.cgibox/ is never a file or a script, and other admin names are 404', async () => {
    const server = await startTestServer()
    expect((await fetch(`${server.url}.cgibox/`)).status).toBe(404)
    expect((await fetch(`${server.url}.cgibox/nothing`)).status).toBe(404)
  })
})

describe('logs an operator can use', () => {
  test('the request id joins the access line and the run record, and is echoed as X-Request-Id', async () => {
    const server = await startTestServer()
    const response = await fetch(`${server.url}cgi-bin/env.py`)
    await response.text()
    const id = response.headers.get('x-request-id')
    expect(id).toMatch(/^[0-9a-f-]{36}$/)
    await expect.poll(() => server.log.runs.map((run) => run.requestId), {timeout: 5_000}).toEqual([id])
    await expect.poll(() => server.log.accesses.map((access) => access.requestId), {timeout: 5_000}).toEqual([id])
    // A well-formed id from a proxy is kept (one id from the edge to the script's record); anything else is replaced.
    const forwarded = await fetch(`${server.url}hello.txt`, {headers: {'X-Request-Id': 'edge-42'}})
    expect(forwarded.headers.get('x-request-id')).toBe('edge-42')
    const forged = await fetch(`${server.url}hello.txt`, {headers: {'X-Request-Id': 'a b\tc'}})
    expect(forged.headers.get('x-request-id')).not.toBe('a b\tc')
  })

  test('access lines count body bytes only, and mark a response cut off after its headers', async () => {
    const server = await startTestServer({timeoutMs: 800, killGraceMs: 100})
    const file = await fetch(`${server.url}hello.txt`)
    const text = await file.text()
    const streamed = await getFully(server.port, '/cgi-bin/spin-after-headers.sh')
    expect(streamed.complete).toBe(false)
    await expect.poll(() => server.log.accesses.length, {timeout: 10_000}).toBe(2)
    const [fileAccess, cutAccess] = server.log.accesses
    expect(fileAccess).toMatchObject({status: 200, bytes: Buffer.byteLength(text), cut: null})
    expect(cutAccess).toMatchObject({status: 200, cut: 'deadline', bytes: streamed.body.length})
  })

  test('a script that exits by itself before its headers is recorded as it ended, not as killed', async () => {
    const server = await startTestServer()
    expect((await fetch(`${server.url}cgi-bin/partial-headers.sh`)).status).toBe(502)
    await expect.poll(() => server.log.runs[0], {timeout: 5_000}).toMatchObject({code: 3, signal: null, killReason: null})
  })
})

describe('drain and reload', () => {
  test('close drains: a request in flight gets its whole response; health is 503 meanwhile; then connections are refused', async () => {
    const server = await startTestServer({drainMs: 600, shutdownGraceMs: 5_000})
    const inFlight = getFully(server.port, '/cgi-bin/sleep.sh?1.5')
    await expect.poll(() => server.app.inFlight, {timeout: 5_000}).toBe(1)
    const closing = server.close()
    expect((await fetch(`${server.url}.cgibox/health`)).status).toBe(503)
    const response = await inFlight
    expect(response.complete).toBe(true)
    expect(response.body.toString()).toBe('started\n')
    await closing
    await expect(fetch(`${server.url}hello.txt`)).rejects.toThrow()
  })

  // A proxy keeps a connection whose response did not say close, and may send its next request on it just as the
  // drain ends and cgibox closes it: a GET is retried elsewhere, a POST is not.
  test('a response in flight when the drain begins, its headers not sent yet, closes its connection too', async () => {
    const server = await startTestServer()
    const socket = await openSocket(server.port)
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
    socket.write('GET /cgi-bin/sleep-then-answer.sh?0.5 HTTP/1.1\r\nHost: x\r\n\r\n')
    await expect.poll(() => server.app.inFlight, {timeout: 5_000}).toBe(1)
    server.app.drain()
    const response = (await readUntil(socket, (data) => data.includes('done\n'))).toString('latin1')
    expect(response).toMatch(/^HTTP\/1\.1 200 /)
    expect(response).toMatch(/^Connection: close\r$/im)
    await closed
  })

  test('a reload reaches new requests; a script running meanwhile keeps its config and finishes', async () => {
    const server = await startTestServer({env: {GREETING: 'first'}})
    const running = getFully(server.port, '/cgi-bin/sleep.sh?1')
    await expect.poll(() => server.app.inFlight, {timeout: 5_000}).toBe(1)
    await server.reload(normalizeConfig({
      port: 0, htdocs: `${FIXTURES}htdocs`, cgiBin: `${FIXTURES}cgi-bin`, sandbox: 'none', env: {GREETING: 'second'},
    }))
    const after = await fetch(`${server.url}cgi-bin/env.py`)
    const body = await after.text()
    expect(after.status, body + JSON.stringify(server.log.errors)).toBe(200)
    expect(parseEnvDump(body).GREETING).toBe('second')
    expect((await running).complete).toBe(true)
  })

  test('at bwrap, a reload builds its own private /etc and leaves the one the running scripts bind alone', async () => {
    const server = await startTestServer({sandbox: 'bwrap', env: {GREETING: 'first'}})
    const running = getFully(server.port, '/cgi-bin/sleep.sh?1')
    await expect.poll(() => server.app.inFlight, {timeout: 5_000}).toBe(1)
    for (const greeting of ['second', 'third']) {
      await server.reload(normalizeConfig({
        port: 0, htdocs: `${FIXTURES}htdocs`, cgiBin: `${FIXTURES}cgi-bin`, sandbox: 'bwrap', env: {GREETING: greeting},
      }))
      const after = await fetch(`${server.url}cgi-bin/env.py`)
      const body = await after.text()
      expect(after.status, body + JSON.stringify(server.log.errors)).toBe(200)
      expect(parseEnvDump(body).GREETING).toBe(greeting)
    }
    expect((await running).complete).toBe(true)
  })

  test('a reload names the settings that need a restart and keeps their running values', async () => {
    const server = await startTestServer({headersTimeoutMs: 10_000, bodyIdleTimeoutMs: 30_000})
    await server.reload(normalizeConfig({
      port: 0, htdocs: `${FIXTURES}htdocs`, cgiBin: `${FIXTURES}cgi-bin`, sandbox: 'none', headersTimeoutMs: 2_000,
      bodyIdleTimeoutMs: 5_000, requestTimeoutMs: 60_000,
    }))
    expect(server.log.errors.map((entry) => entry.message))
      .toContain('reload: bodyIdleTimeoutMs, headersTimeoutMs, requestTimeoutMs changed; that needs a restart and keeps its old value until then')
    expect(server.app.config).toMatchObject({headersTimeoutMs: 10_000, bodyIdleTimeoutMs: 30_000, requestTimeoutMs: 300_000})
  })

  test('a reload that cannot be set up throws and keeps the running config', async () => {
    const server = await startTestServer({env: {GREETING: 'first'}})
    await expect(server.reload(normalizeConfig({
      port: 0, htdocs: `${FIXTURES}htdocs`, cgiBin: `${FIXTURES}cgi-bin`, sandbox: 'none',
      locations: [{prefix: '/x/', program: '/nonexistent/program'}],
    }))).rejects.toThrow(/program/)
    expect(parseEnvDump(await (await fetch(`${server.url}cgi-bin/env.py`)).text()).GREETING).toBe('first')
  })
})

describe('behind a proxy (trustProxy)', () => {
  test('REMOTE_ADDR is the client named by a trusted proxy, and only by a trusted one', async () => {
    const trusting = await startTestServer({trustProxy: ['127.0.0.1']})
    const headers = {'X-Forwarded-For': '203.0.113.7, 198.51.100.2'}
    const env = parseEnvDump(await (await fetch(`${trusting.url}cgi-bin/env.py`, {headers})).text())
    expect(env.REMOTE_ADDR).toBe('198.51.100.2') // the address the trusted proxy itself saw
    await expect.poll(() => trusting.log.accesses.at(-1)?.remoteAddress, {timeout: 5_000}).toBe('198.51.100.2')
    const chain = await startTestServer({trustProxy: ['127.0.0.1', '198.51.100.0/24']})
    expect(parseEnvDump(await (await fetch(`${chain.url}cgi-bin/env.py`, {headers})).text()).REMOTE_ADDR).toBe('203.0.113.7')
    const untrusting = await startTestServer()
    expect(parseEnvDump(await (await fetch(`${untrusting.url}cgi-bin/env.py`, {headers})).text()).REMOTE_ADDR).toBe('127.0.0.1')
  })

  // Behind a proxy on loopback every request comes from loopback: /.cgibox/ must go by the client the proxy names.
  test('/.cgibox/ answers the client a trusted proxy names, not the proxy: a public client behind it gets 404', async () => {
    const server = await startTestServer({trustProxy: ['127.0.0.1'], adminAllow: ['198.51.100.0/24']})
    const health = (forwardedFor?: string) =>
      fetch(`${server.url}.cgibox/health`, {headers: forwardedFor === undefined ? {} : {'X-Forwarded-For': forwardedFor}}).then((response) => response.status)
    expect(await health('203.0.113.7')).toBe(404)
    expect(await health('127.0.0.1, 203.0.113.7')).toBe(404) // a forged loopback hop in front is not believed
    expect(await health('198.51.100.2')).toBe(200) // adminAllow
    expect(await health()).toBe(200) // a checker on loopback, straight to cgibox
  })
})

describe('run records', () => {
  test('count every byte of stdout, also when the script exits before its output was read', async () => {
    const server = await startTestServer()
    const texts = await Promise.all(Array.from({length: 30}, async () => (await fetch(`${server.url}cgi-bin/lf-only.sh`)).text()))
    await expect.poll(() => server.log.runs.length, {timeout: 10_000}).toBe(30)
    expect(texts.every((text) => text === 'lf body\n')).toBe(true)
    // What lf-only.sh writes, headers and body, every time.
    const written = Buffer.byteLength('Content-Type: text/plain\nX-Lf: yes\n\nlf body\n')
    expect(new Set(server.log.runs.map((run) => run.bytesOut))).toEqual(new Set([written]))
  })
})
