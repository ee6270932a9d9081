// Script responses: the CGI header block, status decisions, redirects, header safety, nph, HEAD, failures.
import {describe, expect, test} from 'vitest'
import {rawRequest} from '../helpers/http.js'
import {parseEnvDump, startTestServer} from '../helpers/server.js'

describe('status and headers', () => {
  test('Status sets the code and text, and repeated headers all arrive', async () => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}cgi-bin/status.sh?418`)
    expect(response.status).toBe(418)
    expect(response.statusText).toBe('Custom Text')
    expect(response.headers.get('x-multi')).toBe('one, two')
    expect(await response.text()).toBe('body\n')
  })

  test('LF-only line ends are accepted', async () => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}cgi-bin/lf-only.sh`)
    expect(response.headers.get('x-lf')).toBe('yes')
    expect(await response.text()).toBe('lf body\n')
  })

  test('a header-only response (Status 204) is fine', async () => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}cgi-bin/header-only.sh`)
    expect(response.status).toBe(204)
    expect(response.headers.get('x-only')).toBe('yes')
    expect(await response.text()).toBe('')
  })

  test('values with CR, framing headers and Content-Length from the script never reach the client', async () => {
    const {port} = await startTestServer()
    const raw = (await rawRequest(port, 'GET /cgi-bin/injection.py HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).toString('latin1')
    const head = raw.slice(0, raw.indexOf('\r\n\r\n'))
    expect(head).not.toMatch(/^Injected:/im)
    expect(head).not.toMatch(/^X-Evil:/im)
    expect(head).not.toMatch(/^Content-Length: 5/im)
    expect(head).not.toMatch(/identity/i)
    expect(head).toMatch(/^X-Ok: fine$/im)
    expect(raw).toContain('this body is longer than five bytes')
  })
})

describe('redirects', () => {
  test('an absolute Location without Status is a 302', async () => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}cgi-bin/redirect-absolute.sh`, {redirect: 'manual'})
    expect(response.status).toBe(302)
    expect(response.headers.get('location')).toBe('http://example.com/elsewhere')
  })

  test('a local Location is re-dispatched as a GET with its own PATH_INFO and query', async () => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}cgi-bin/redirect-local.sh`, {method: 'POST', body: 'ignored'})
    expect(response.status).toBe(200)
    expect(parseEnvDump(await response.text())).toMatchObject({
      REQUEST_METHOD: 'GET', SCRIPT_NAME: '/cgi-bin/env.py', PATH_INFO: '/via-redirect', QUERY_STRING: 'from=local',
    })
  })

  test('a local redirect loop stops at the limit with a 500', async () => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}cgi-bin/redirect-loop.sh`)
    expect(response.status).toBe(500)
  })

  test('a local redirect goes through the path policy', async () => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}cgi-bin/redirect-escape.sh`)
    expect(response.status).toBe(403)
    expect(await response.text()).not.toContain('root:')
  })
})

describe('failures are a generic 502 and stderr goes to the log only', () => {
  test.each([
    ['no-headers.sh'],
    ['bogus-header.sh'],
    ['partial-headers.sh'],
    ['big-headers.sh'],
  ])('%s → 502', async (script) => {
    const server = await startTestServer()
    const response = await fetch(`${server.url}cgi-bin/${script}`)
    expect(response.status).toBe(502)
    const body = await response.text()
    expect(body).toBe('502 Bad Gateway\n')
    expect(body).not.toContain('secret-stderr-text')
  })

  test('the script stderr is in the log', async () => {
    const server = await startTestServer()
    await (await fetch(`${server.url}cgi-bin/partial-headers.sh`)).text()
    await expect.poll(() => server.log.stderrs.map((entry) => entry.text).join(''), {timeout: 5_000}).toContain('secret-stderr-text')
    await expect.poll(() => server.log.runs[0]?.code, {timeout: 5_000}).toBe(3)
  })

  test('a missing interpreter is a 500 and the log names it', async () => {
    const server = await startTestServer({interpreters: {'.py': ['cgibox-missing-python']}})
    const response = await fetch(`${server.url}cgi-bin/no-x-bit.py`)
    expect(response.status).toBe(500)
    expect(server.log.errors.map((entry) => entry.message).join('\n')).toContain('cgibox-missing-python')
  })
})

describe('methods and raw output', () => {
  test('HEAD runs the script and sends no body', async () => {
    const server = await startTestServer()
    const response = await fetch(`${server.url}cgi-bin/status.sh?200`, {method: 'HEAD'})
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('')
    await expect.poll(() => server.log.runs.length, {timeout: 5_000}).toBe(1)
  })

  test('nph- scripts pass their output raw', async () => {
    const {port} = await startTestServer()
    const raw = (await rawRequest(port, 'GET /cgi-bin/nph-raw.sh HTTP/1.1\r\nHost: x\r\n\r\n')).toString('latin1')
    expect(raw).toBe('HTTP/1.1 299 Raw\r\nContent-Type: text/plain\r\nX-Nph: yes\r\nConnection: close\r\n\r\nraw body\n')
  })

  test('PUT and DELETE reach scripts with their method', async () => {
    const {url} = await startTestServer()
    for (const method of ['PUT', 'DELETE', 'PATCH']) {
      const env = parseEnvDump(await (await fetch(`${url}cgi-bin/env.py`, {method})).text())
      expect(env.REQUEST_METHOD).toBe(method)
    }
  })
})

describe('found in review', () => {
  test.each(['100', '101', '199'])('a script Status %s (interim) is a 502, never a response that does not end', async (status) => {
    const {url} = await startTestServer()
    expect((await fetch(`${url}cgi-bin/status.sh?${status}`)).status).toBe(502)
  })

  test('a POST whose script redirects locally to a static file gets that file', async () => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}cgi-bin/redirect-static.sh`, {method: 'POST', body: 'a=1'})
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('hello static\n')
  })

  test('a script that closes stdout before its headers gets a 502 and gives its slot back at once', async () => {
    const server = await startTestServer({maxConcurrent: 1, queueTimeoutMs: 3_000, timeoutMs: 30_000})
    expect((await fetch(`${server.url}cgi-bin/closeout-no-headers.sh`)).status).toBe(502)
    expect((await fetch(`${server.url}cgi-bin/status.sh?200`)).status).toBe(200)
  })

  test('a script that stalls after its header block, before any body byte, gets a 504', async () => {
    const {url} = await startTestServer({timeoutMs: 500, killGraceMs: 200})
    expect((await fetch(`${url}cgi-bin/headers-then-stall.sh`)).status).toBe(504)
  })
})
