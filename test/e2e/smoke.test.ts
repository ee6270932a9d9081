// The core paths through the launcher, the one way runs start: environment, a body both ways, the deadline after the
// headers, and a script that closes stdout and lingers.
import {randomBytes} from 'node:crypto'
import {expect, test} from 'vitest'
import {getFully} from '../helpers/http.js'
import {isAlive, parseEnvDump, startTestServer} from '../helpers/server.js'

test('env.py sees SCRIPT_NAME, PATH_INFO and QUERY_STRING and nothing else of the server', async () => {
  const {url} = await startTestServer()
  const response = await fetch(`${url}cgi-bin/env.py/extra/path?a=b`)
  expect(response.status).toBe(200)
  const env = parseEnvDump(await response.text())
  expect(env).toMatchObject({SCRIPT_NAME: '/cgi-bin/env.py', PATH_INFO: '/extra/path', QUERY_STRING: 'a=b'})
  expect(env.PWD).toBeUndefined()
  expect(env.HOME).toBeUndefined()
})
test('a 2 MB body comes back byte-identical from cat', async () => {
  const {url} = await startTestServer()
  const body = randomBytes(2 * 1024 * 1024)
  const echoed = Buffer.from(await (await fetch(`${url}cgi-bin/cat.sh`, {method: 'POST', body})).arrayBuffer())
  expect(echoed.equals(body)).toBe(true)
})

test('a script past its deadline after its headers is cut off and dies', async () => {
  const server = await startTestServer({timeoutMs: 500, killGraceMs: 200})
  const response = await getFully(server.port, '/cgi-bin/spin-after-headers.sh')
  expect(response.complete).toBe(false)
  await expect.poll(() => isAlive(Number(response.headers['x-cgi-pid'])), {timeout: 5_000}).toBe(false)
  await expect.poll(() => server.log.runs[0]?.killReason, {timeout: 5_000}).toBe('deadline')
})

test('a script that closes stdout and lingers gets a complete response at once', async () => {
  const server = await startTestServer({timeoutMs: 5_000, killGraceMs: 200})
  const response = await getFully(server.port, '/cgi-bin/close-stdout-linger.sh')
  expect(response.complete).toBe(true)
  expect(response.body.toString()).toBe('done early\n')
  // Complete while the script still lingers: the response did not wait for the deadline's kill.
  expect(isAlive(Number(response.headers['x-cgi-pid']))).toBe(true)
})
