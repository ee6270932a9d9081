// HTTP Basic authentication per location (Apache AuthType Basic + AuthUserFile): nothing under the prefix is served
// or run without valid credentials (files from memory included), a script behind it gets REMOTE_USER and
// AUTH_TYPE but not the password, and a changed htpasswd file takes effect without a restart.
import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import bcrypt from 'bcryptjs'
import {describe, expect, test} from 'vitest'
import {rawGet} from '../helpers/http.js'
import {parseEnvDump, startTestServer, type TestServer} from '../helpers/server.js'
import {makeTempDir} from '../helpers/temp-dir.js'

function basic(user: string, password: string): Record<string, string> {
  return {Authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`}
}

async function htpasswd(lines: Record<string, string>): Promise<string> {
  const file = path.join(await makeTempDir('auth'), '.htpasswd')
  await writeFile(file, Object.entries(lines).map(([user, password]) => `${user}:${bcrypt.hashSync(password, 4).replace(/^\$2b\$/, '$2y$')}\n`).join(''))
  return file
}

async function protectedServer(prefix: string, extra: Record<string, unknown> = {}): Promise<{server: TestServer; file: string}> {
  const file = await htpasswd({ada: 'lovelace'})
  const server = await startTestServer({locations: [{prefix, auth: {realm: 'members', htpasswd: file}, ...extra}]})
  return {server, file}
}

describe('a location with auth', () => {
  test.each([
    ['no credentials', {}],
    ['a wrong password', basic('ada', 'babbage')],
    ['an unknown user', basic('charles', 'lovelace')],
    ['another scheme', {Authorization: 'Bearer lovelace'}],
    ['a malformed header', {Authorization: 'Basic !!!'}],
  ])('%s: 401 with WWW-Authenticate, and the script never starts', async (_title, headers) => {
    const {server} = await protectedServer('/cgi-bin/')
    const response = await fetch(`${server.url}cgi-bin/env.py`, {headers})
    expect(response.status).toBe(401)
    expect(response.headers.get('www-authenticate')).toBe('Basic realm="members", charset="UTF-8"')
    expect(await response.text()).toBe('401 Unauthorized\n')
    expect(server.log.runs).toEqual([])
  })

  test('valid credentials: REMOTE_USER and AUTH_TYPE reach the script, the Authorization header does not', async () => {
    const {server} = await protectedServer('/cgi-bin/')
    const response = await fetch(`${server.url}cgi-bin/env.py`, {headers: basic('ada', 'lovelace')})
    expect(response.status).toBe(200)
    const env = parseEnvDump(await response.text())
    expect(env).toMatchObject({REMOTE_USER: 'ada', AUTH_TYPE: 'Basic'})
    expect(env.HTTP_AUTHORIZATION).toBeUndefined()
  })

  test('passAuthorization hands the header on as well', async () => {
    const {server} = await protectedServer('/cgi-bin/', {passAuthorization: true})
    const env = parseEnvDump(await (await fetch(`${server.url}cgi-bin/env.py`, {headers: basic('ada', 'lovelace')})).text())
    expect(env.HTTP_AUTHORIZATION).toBe(basic('ada', 'lovelace').Authorization)
  })

  test('files are protected too, also once one was served from memory to someone with the password', async () => {
    const {server} = await protectedServer('/sub/')
    const url = `${server.url}sub/file.txt`
    expect((await fetch(`${server.url}sub/`)).status).toBe(401) // the listing too
    const file = `${server.url}hello.txt` // outside the location: served to everyone
    expect((await fetch(file)).status).toBe(200)
    for (let attempt = 0; attempt < 3; attempt++) {
      expect((await fetch(url, {headers: basic('ada', 'lovelace')})).status).toBe(200)
      expect((await fetch(url)).status).toBe(401)
    }
  })

  test('a longer prefix without auth inside a protected one is open; the protected rest still asks', async () => {
    const file = await htpasswd({ada: 'lovelace'})
    const server = await startTestServer({locations: [
      {prefix: '/cgi-bin/', auth: {realm: 'members', htpasswd: file}},
      {prefix: '/cgi-bin/env.py'},
    ]})
    expect((await fetch(`${server.url}cgi-bin/env.py`)).status).toBe(200)
    expect((await fetch(`${server.url}cgi-bin/status.sh`)).status).toBe(401)
  })

  test('other spellings of the path are the same location (%-encoding, double slashes)', async () => {
    const {server} = await protectedServer('/cgi-bin/')
    for (const spelling of ['/cgi-bin/env.py', '//cgi-bin//env.py', '/%63gi-bin/env.py']) {
      const response = await fetch(`${server.url.slice(0, -1)}${spelling}`)
      expect(response.status, spelling).toBe(401)
    }
    // A `..` segment never gets that far: the path policy refuses it.
    expect((await rawGet(server.port, '/htbin/../cgi-bin/env.py')).status).toBe(403)
  })

  test('a local redirect into the location needs the credentials too', async () => {
    const file = await htpasswd({ada: 'lovelace'})
    const server = await startTestServer({locations: [{prefix: '/cgi-bin/env.py', auth: {realm: 'members', htpasswd: file}}]})
    // redirect-local.sh (open) answers Location: /cgi-bin/env.py/via-redirect (protected).
    expect((await fetch(`${server.url}cgi-bin/redirect-local.sh`)).status).toBe(401)
    const env = parseEnvDump(await (await fetch(`${server.url}cgi-bin/redirect-local.sh`, {headers: basic('ada', 'lovelace')})).text())
    expect(env.REMOTE_USER).toBe('ada')
  })

  test('a changed htpasswd file takes effect without a restart', async () => {
    const {server, file} = await protectedServer('/cgi-bin/')
    expect((await fetch(`${server.url}cgi-bin/env.py`, {headers: basic('ada', 'lovelace')})).status).toBe(200)
    await writeFile(file, `ada:${bcrypt.hashSync('new-password', 4).replace(/^\$2b\$/, '$2y$')}\n`)
    await expect.poll(async () => (await fetch(`${server.url}cgi-bin/env.py`, {headers: basic('ada', 'lovelace')})).status,
      {timeout: 10_000}).toBe(401)
    expect((await fetch(`${server.url}cgi-bin/env.py`, {headers: basic('ada', 'new-password')})).status).toBe(200)
  })

  test('an htpasswd file with plain crypt(3) hashes stops startup, naming the option', async () => {
    const dir = await makeTempDir('auth')
    const file = path.join(dir, '.htpasswd')
    await writeFile(file, 'ada:rl.3StKT.4T8M\n')
    await expect(startTestServer({locations: [{prefix: '/a/', auth: {realm: 'r', htpasswd: file}}]}))
      .rejects.toThrow(/locations\[0\]\.auth\.htpasswd/)
  })
})
