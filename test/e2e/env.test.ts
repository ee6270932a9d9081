// End-to-end CGI environment (RFC 3875 §4.1, issue #2 point 3), read back through env.py on a real server:
// built from nothing, the meta-variables with the request's real values, HTTP_* rules, argv and cwd.
import {realpathSync} from 'node:fs'
import {copyFile, mkdir, symlink} from 'node:fs/promises'
import path from 'node:path'
import {describe, expect, onTestFinished, test} from 'vitest'
import {rawExchange} from '../helpers/http.js'
import {cgiEnv, FIXTURES, parseEnvDump, startTestServer} from '../helpers/server.js'
import {makeTempDir} from '../helpers/temp-dir.js'

const CGI_BIN = realpathSync(path.join(FIXTURES, 'cgi-bin'))
const ENV_PY = path.join(CGI_BIN, 'env.py')
const SAFE_PATH = '/usr/local/bin:/usr/bin:/bin'

// Sends a raw request (head lines joined with CRLF, then an empty line) and returns status and env.py's map.
// The connection closes after the response (HTTP/1.0, or Connection: close), which ends the read.
async function rawCgiEnv(port: number, headLines: readonly string[]): Promise<{status: number; env: Record<string, string>}> {
  const {status, body} = await rawExchange(port, headLines.join('\r\n') + '\r\n\r\n')
  return {status, env: parseEnvDump(body)}
}

describe('the environment is built from nothing', () => {
  test('no variable of the server process environment reaches the script', async () => {
    process.env.CGIBOX_SECRET_TEST = 'hunter2'
    onTestFinished(() => {
      delete process.env.CGIBOX_SECRET_TEST
    })
    const {url} = await startTestServer()
    const {status, env} = await cgiEnv(`${url}cgi-bin/env.py`)
    expect(status).toBe(200)
    expect(env.CGIBOX_SECRET_TEST).toBeUndefined()
    expect(Object.entries(env).filter(([, value]) => value.includes('hunter2'))).toEqual([])
    // Every other variable of this process is absent too (PATH, TZ and LANG are cgibox's own defaults; TMPDIR is
    // the run's own private directory, never the server's).
    const leaked = Object.keys(process.env).filter((key) => !['PATH', 'TZ', 'LANG'].includes(key) && key in env &&
      !(key === 'TMPDIR' && env.TMPDIR !== process.env.TMPDIR))
    expect(leaked).toEqual([])
  })

  test('PATH is the safe default, not the PATH cgibox was started with', async () => {
    const {url} = await startTestServer()
    const {env} = await cgiEnv(`${url}cgi-bin/env.py`)
    expect(env.PATH).toBe(SAFE_PATH)
  })
})

describe('RFC 3875 meta-variables', () => {
  test('a GET carries the request line, the connection and the script in its variables', async () => {
    const {url, port} = await startTestServer()
    const {status, env} = await cgiEnv(`${url}cgi-bin/env.py/a%20b?x=%41&y`)
    expect(status).toBe(200)
    expect(env).toMatchObject({
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_PROTOCOL: 'HTTP/1.1',
      REQUEST_METHOD: 'GET',
      SERVER_PORT: String(port),
      SERVER_NAME: '127.0.0.1',
      REMOTE_ADDR: '127.0.0.1',
      SCRIPT_NAME: '/cgi-bin/env.py',
      SCRIPT_FILENAME: ENV_PY,
      PATH_INFO: '/a b',
      QUERY_STRING: 'x=%41&y',
      REQUEST_URI: '/cgi-bin/env.py/a%20b?x=%41&y',
      DOCUMENT_ROOT: path.join(FIXTURES, 'htdocs'),
      REDIRECT_STATUS: '200',
      REQUEST_SCHEME: 'http',
      PATH: SAFE_PATH,
    })
    expect(env.SERVER_SOFTWARE).toMatch(/^cgibox\//)
    expect(env.REMOTE_PORT).toMatch(/^\d+$/)
    expect(env.HTTPS).toBeUndefined()
  })

  test('QUERY_STRING is set and empty when there is no query', async () => {
    const {url} = await startTestServer()
    const {env} = await cgiEnv(`${url}cgi-bin/env.py`)
    expect(env.QUERY_STRING).toBe('')
  })

  test.each(['1.0', '1.1'])('SERVER_PROTOCOL is the request\'s own version, HTTP/%s', async (version) => {
    const {port} = await startTestServer()
    const {status, env} = await rawCgiEnv(port, [
      `GET /cgi-bin/env.py HTTP/${version}`, `Host: 127.0.0.1:${port}`, 'Connection: close',
    ])
    expect(status).toBe(200)
    expect(env.SERVER_PROTOCOL).toBe(`HTTP/${version}`)
  })

  test('a POST has CONTENT_LENGTH and CONTENT_TYPE', async () => {
    const {url} = await startTestServer()
    const {status, env} = await cgiEnv(`${url}cgi-bin/env.py`, {
      method: 'POST', body: 'a=1&b=2', headers: {'Content-Type': 'application/x-www-form-urlencoded'},
    })
    expect(status).toBe(200)
    expect(env).toMatchObject({REQUEST_METHOD: 'POST', CONTENT_LENGTH: '7', CONTENT_TYPE: 'application/x-www-form-urlencoded'})
    expect(env.HTTP_CONTENT_LENGTH).toBeUndefined()
    expect(env.HTTP_CONTENT_TYPE).toBeUndefined()
  })

  test('a GET has neither CONTENT_LENGTH nor CONTENT_TYPE', async () => {
    const {url} = await startTestServer()
    const {env} = await cgiEnv(`${url}cgi-bin/env.py`)
    expect(env.CONTENT_LENGTH).toBeUndefined()
    expect(env.CONTENT_TYPE).toBeUndefined()
  })
})

describe('DOCUMENT_ROOT and SCRIPT_FILENAME agree', () => {
  // PHP-style scripts derive their own URL from SCRIPT_FILENAME minus DOCUMENT_ROOT; with a symlinked document
  // root (/var/www -> /srv/site) one of them must not be the real path while the other is the link.
  test('a page under a symlinked htdocs has a SCRIPT_FILENAME under its DOCUMENT_ROOT', async () => {
    const root = await makeTempDir('env')
    await mkdir(path.join(root, 'real-site'))
    await copyFile(ENV_PY, path.join(root, 'real-site', 'env.py'))
    await symlink('real-site', path.join(root, 'site'))
    const {url} = await startTestServer({htdocs: path.join(root, 'site')})
    const {status, env} = await cgiEnv(`${url}env.py/extra`)
    expect(status).toBe(200)
    expect(env.SCRIPT_FILENAME).toBe(path.join(env.DOCUMENT_ROOT ?? '', 'env.py'))
    expect(env.PATH_TRANSLATED).toBe(path.join(env.DOCUMENT_ROOT ?? '', 'extra'))
  })
})

describe('HTTP_* variables from request headers', () => {
  test('X-Foo becomes HTTP_X_FOO', async () => {
    const {url} = await startTestServer()
    const {env} = await cgiEnv(`${url}cgi-bin/env.py`, {headers: {'X-Foo': 'bar'}})
    expect(env.HTTP_X_FOO).toBe('bar')
  })

  test.each<{title: string; headers: string[]; expected: Record<string, string | undefined>}>([
    {title: 'X_Foo is dropped, so it cannot pose as X-Foo', headers: ['X_Foo: evil'], expected: {HTTP_X_FOO: undefined}},
    {title: 'X_Foo does not override a real X-Foo', headers: ['X-Foo: good', 'X_Foo: evil'], expected: {HTTP_X_FOO: 'good'}},
    {title: 'X_Foo sent before X-Foo does not override it either', headers: ['X_Foo: evil', 'X-Foo: good'], expected: {HTTP_X_FOO: 'good'}},
    {title: 'Proxy is never exported as HTTP_PROXY (httpoxy)', headers: ['Proxy: http://evil.test:3128'], expected: {HTTP_PROXY: undefined}},
    {title: 'two Cookie headers are joined with "; "', headers: ['Cookie: a=1', 'Cookie: b=2'], expected: {HTTP_COOKIE: 'a=1; b=2'}},
    {title: 'other repeated headers are joined with ", "', headers: ['X-Multi: a', 'X-Multi: b'], expected: {HTTP_X_MULTI: 'a, b'}},
  ])('$title', async ({headers, expected}) => {
    const {port} = await startTestServer()
    const {status, env} = await rawCgiEnv(port, [
      'GET /cgi-bin/env.py HTTP/1.1', `Host: 127.0.0.1:${port}`, ...headers, 'Connection: close',
    ])
    expect(status).toBe(200)
    expect(Object.fromEntries(Object.keys(expected).map((key) => [key, env[key]]))).toEqual(expected)
  })

  test.each<{title: string; settings: Record<string, unknown>; expected: string | undefined}>([
    {title: 'Authorization is hidden from scripts by default', settings: {}, expected: undefined},
    {title: 'Authorization is exported as HTTP_AUTHORIZATION with passAuthorization: true', settings: {passAuthorization: true}, expected: 'Basic dXNlcjpwYXNz'},
  ])('$title', async ({settings, expected}) => {
    const {url} = await startTestServer(settings)
    const {status, env} = await cgiEnv(`${url}cgi-bin/env.py`, {headers: {Authorization: 'Basic dXNlcjpwYXNz'}})
    expect(status).toBe(200)
    expect(env.HTTP_AUTHORIZATION).toBe(expected)
    expect(Object.values(env).filter((value) => value.includes('dXNlcjpwYXNz'))).toEqual(expected === undefined ? [] : [expected])
  })
})

describe('argv and cwd', () => {
  // RFC 3875 §4.4 and the PHP-CGI argument-injection CVEs: no word of the query becomes an argument.
  test.each(['-s+-d+foo', '-h', 'a+b+c', '%2Dn', '--help'])('argv is only the script path with the query ?%s', async (query) => {
    const {url} = await startTestServer()
    const {status, env} = await cgiEnv(`${url}cgi-bin/env.py?${query}`)
    expect(status).toBe(200)
    expect(env['argv-0']).toBe(ENV_PY)
    expect(env['argv-1']).toBeUndefined()
    expect(env.QUERY_STRING).toBe(query)
  })

  test('cwd is the script\'s directory', async () => {
    const {url} = await startTestServer()
    const {env} = await cgiEnv(`${url}cgi-bin/env.py`)
    expect(env.cwd).toBe(CGI_BIN)
  })

  test('cwd of a script in a nested directory is that directory', async () => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}cgi-bin/nested/deeper/cwd.sh`)
    expect(response.status).toBe(200)
    expect(parseEnvDump(await response.text()).cwd).toBe(path.join(CGI_BIN, 'nested', 'deeper'))
  })
})

describe('configured env', () => {
  test('config env reaches every script', async () => {
    const {url} = await startTestServer({env: {SITE_NAME: 'demo', GIT_PROJECT_ROOT: '/srv/git'}})
    const {env} = await cgiEnv(`${url}cgi-bin/env.py`)
    expect(env).toMatchObject({SITE_NAME: 'demo', GIT_PROJECT_ROOT: '/srv/git'})
  })

  test('config env is applied last and overrides the defaults', async () => {
    const {url} = await startTestServer({env: {PATH: '/opt/site/bin:/usr/bin:/bin', LANG: 'en_US.UTF-8'}})
    const {env} = await cgiEnv(`${url}cgi-bin/env.py`)
    expect(env).toMatchObject({PATH: '/opt/site/bin:/usr/bin:/bin', LANG: 'en_US.UTF-8'})
  })

  test('a mount\'s env overrides the global env for that mount only', async () => {
    const {url} = await startTestServer({
      env: {LEVEL: 'global', ONLY_GLOBAL: 'g'},
      mounts: [{prefix: '/prog/', program: ENV_PY, env: {LEVEL: 'mount'}}],
    })
    const mounted = await cgiEnv(`${url}prog/x`)
    expect(mounted.env).toMatchObject({LEVEL: 'mount', ONLY_GLOBAL: 'g'})
    const plain = await cgiEnv(`${url}cgi-bin/env.py`)
    expect(plain.env).toMatchObject({LEVEL: 'global', ONLY_GLOBAL: 'g'})
  })
})
