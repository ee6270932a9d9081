// End-to-end routing (docs/architecture.md §4, issue #2 point 2): cgi-bin and htbin, nested scripts and PATH_INFO,
// script pages under htdocs, program mounts, script sources never served or listed, and static files.
import {chmod, mkdir, symlink, writeFile} from 'node:fs/promises'
import {realpathSync} from 'node:fs'
import path from 'node:path'
import {describe, expect, test} from 'vitest'
import {cgiEnv, FIXTURES, startTestServer} from '../helpers/server.js'
import {makeTempDir} from '../helpers/temp-dir.js'

const ENV_PY = realpathSync(path.join(FIXTURES, 'cgi-bin', 'env.py'))
const PLAIN_FILE_TEXT = 'not executable and no known extension'

// htdocs/ with index.html, cgi-bin/{secret, run.sh} inside it, mirror -> cgi-bin and run-link.sh -> cgi-bin/run.sh.
async function makeSiteWithCgiBinInside(): Promise<{htdocs: string; cgiBin: string}> {
  const root = await makeTempDir('routing')
  const htdocs = path.join(root, 'htdocs')
  const cgiBin = path.join(htdocs, 'cgi-bin')
  await mkdir(cgiBin, {recursive: true})
  await writeFile(path.join(htdocs, 'index.html'), '<h1>temp home</h1>\n')
  await writeFile(path.join(cgiBin, 'secret'), 'TOP-SECRET-SOURCE\n', {mode: 0o644})
  await writeFile(path.join(cgiBin, 'run.sh'), '#!/bin/sh\n# RUN-SH-SOURCE\nprintf "Content-Type: text/plain\\r\\n\\r\\nran\\n"\n')
  await chmod(path.join(cgiBin, 'run.sh'), 0o755)
  await symlink('cgi-bin', path.join(htdocs, 'mirror'))
  await symlink('cgi-bin/run.sh', path.join(htdocs, 'run-link.sh'))
  return {htdocs, cgiBin}
}

describe('script directories', () => {
  test.each([
    ['/cgi-bin/', '/cgi-bin/env.py'],
    ['/htbin/', '/htbin/env.py'],
  ])('%s runs env.py with SCRIPT_NAME %s', async (_prefix, scriptPath) => {
    const {url} = await startTestServer()
    const {status, env} = await cgiEnv(`${url}${scriptPath.slice(1)}`)
    expect(status).toBe(200)
    expect(env).toMatchObject({SCRIPT_NAME: scriptPath, PATH_INFO: '', SCRIPT_FILENAME: ENV_PY, GATEWAY_INTERFACE: 'CGI/1.1'})
  })

  test('a script in nested directories runs, and the path after it is PATH_INFO', async () => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}cgi-bin/nested/deeper/where.sh/x/y`)
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('SCRIPT_NAME=/cgi-bin/nested/deeper/where.sh\nPATH_INFO=/x/y\n')
  })

  test.each([
    {title: 'PATH_INFO is percent-decoded', path: 'cgi-bin/env.py/a%20b', pathInfo: '/a b'},
    {title: 'PATH_INFO keeps a trailing slash', path: 'cgi-bin/env.py/a/b/', pathInfo: '/a/b/'},
    {title: 'PATH_INFO decodes UTF-8', path: 'cgi-bin/env.py/caf%C3%A9', pathInfo: '/café'},
    {title: 'PATH_INFO is empty when the URL ends at the script', path: 'cgi-bin/env.py', pathInfo: ''},
    // Apache, lighttpd and Go's host.go all give "/" here; '' would make /env.py/ and /env.py indistinguishable.
    {title: 'PATH_INFO is "/" for a lone trailing slash after the script', path: 'cgi-bin/env.py/', pathInfo: '/'},
  ])('$title', async ({path: urlPath, pathInfo}) => {
    const {url} = await startTestServer()
    const {status, env} = await cgiEnv(`${url}${urlPath}`)
    expect(status).toBe(200)
    expect(env.PATH_INFO).toBe(pathInfo)
  })
})

describe('script pages under htdocs', () => {
  test('a .py page runs with its own SCRIPT_NAME and PATH_INFO', async () => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}page.py/extra`)
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('page PATH_INFO=/extra SCRIPT_NAME=/page.py')
  })

  test('the script extension is matched case-insensitively (.PY runs, its source is not served)', async () => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}Upper.PY`)
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('upper ext ran')
  })
})

describe('program mounts', () => {
  test('a mount runs its program with SCRIPT_NAME = the prefix, PATH_INFO = the rest, and its env', async () => {
    const {url} = await startTestServer({mounts: [{prefix: '/prog/', program: ENV_PY, env: {MOUNT_VAR: 'x'}}]})
    const {status, env} = await cgiEnv(`${url}prog/a/b?q=1`)
    expect(status).toBe(200)
    expect(env).toMatchObject({
      SCRIPT_NAME: '/prog', PATH_INFO: '/a/b', QUERY_STRING: 'q=1', MOUNT_VAR: 'x', SCRIPT_FILENAME: ENV_PY,
    })
  })

  // Like Apache ScriptAlias /prog/ …: /prog/ has PATH_INFO "/", /prog has none.
  test.each([
    ['prog/', '/'],
    ['prog', ''],
  ])('GET /%s runs the mount program with PATH_INFO %j', async (urlPath, pathInfo) => {
    const {url} = await startTestServer({mounts: [{prefix: '/prog/', program: ENV_PY, env: {MOUNT_VAR: 'x'}}]})
    const {status, env} = await cgiEnv(`${url}${urlPath}`)
    expect(status).toBe(200)
    expect(env).toMatchObject({SCRIPT_NAME: '/prog', PATH_INFO: pathInfo, MOUNT_VAR: 'x'})
  })

  test('mount env is only given to the mount: a cgi-bin script does not see it', async () => {
    const {url} = await startTestServer({mounts: [{prefix: '/prog/', program: ENV_PY, env: {MOUNT_VAR: 'x'}}]})
    const {status, env} = await cgiEnv(`${url}cgi-bin/env.py`)
    expect(status).toBe(200)
    expect(env.MOUNT_VAR).toBeUndefined()
  })
})

describe('script sources are never served or listed', () => {
  test.each([
    ['/cgi-bin/', 403],
    ['/cgi-bin', 403],
    ['/htbin/', 403],
    ['/cgi-bin/nested/', 403],
    ['/cgi-bin/nested/deeper/', 403],
    ['/cgi-bin/plain-file', 403],
    ['/htbin/plain-file', 403],
    ['/cgi-bin/missing.py', 404],
  ])('GET %s answers %i and shows no source or listing', async (urlPath, status) => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}${urlPath.slice(1)}`)
    expect(response.status).toBe(status)
    const body = await response.text()
    expect(body).not.toContain(PLAIN_FILE_TEXT)
    expect(body).not.toContain('env.py')
    expect(body).not.toContain('where.sh')
  })

  // A cgi-bin placed inside htdocs: reachable at /cgi-bin/ as scripts only, never as files through another URL.
  test.each([
    ['/cgi-bin/secret', 403],
    ['/cgi-bin/', 403],
    ['/mirror/secret', 404],
    ['/mirror/run.sh', 404],
    ['/mirror/', 404],
    ['/mirror', 404],
    ['/run-link.sh', 404],
  ])('a cgi-bin inside htdocs: GET %s answers %i without its source', async (urlPath, status) => {
    const {htdocs, cgiBin} = await makeSiteWithCgiBinInside()
    const {url} = await startTestServer({htdocs, cgiBin})
    const response = await fetch(`${url}${urlPath.slice(1)}`, {redirect: 'manual'})
    expect(response.status).toBe(status)
    const body = await response.text()
    expect(body).not.toContain('TOP-SECRET-SOURCE')
    expect(body).not.toContain('RUN-SH-SOURCE')
    expect(body).not.toContain('ran')
    expect(body).not.toContain('secret')
  })

  test('a cgi-bin inside htdocs still runs its scripts at /cgi-bin/', async () => {
    const {htdocs, cgiBin} = await makeSiteWithCgiBinInside()
    const {url} = await startTestServer({htdocs, cgiBin})
    const response = await fetch(`${url}cgi-bin/run.sh`)
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('ran\n')
  })
})

describe('static files', () => {
  test('/ serves index.html', async () => {
    const {url} = await startTestServer()
    const response = await fetch(url)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/html/)
    expect(await response.text()).toBe('<h1>fixture home</h1>\n')
  })

  test.each([
    ['/noindex', '/noindex/'],
    ['/noindex?a=1&b=%20', '/noindex/?a=1&b=%20'],
    ['/sub?x', '/sub/?x'],
  ])('a directory without its slash (%s) redirects 301 to %s', async (from, location) => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}${from.slice(1)}`, {redirect: 'manual'})
    expect(response.status).toBe(301)
    expect(response.headers.get('location')).toBe(location)
  })

  test('a directory without an index is listed, sorted, without dotfiles', async () => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}noindex/`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/html/)
    const body = await response.text()
    expect(body).toContain('a.txt')
    expect(body).toContain('b.txt')
    expect(body.indexOf('a.txt')).toBeLessThan(body.indexOf('b.txt'))
    expect(body).not.toContain('.dot')
  })

  test('/hello.txt is served as text/plain', async () => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}hello.txt`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/)
    expect(await response.text()).toBe('hello static\n')
  })

  test.each(['POST', 'PUT', 'DELETE'])('%s /hello.txt answers 405 with Allow: GET, HEAD', async (method) => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}hello.txt`, {method, body: method === 'DELETE' ? undefined : 'x=1'})
    expect(response.status).toBe(405)
    expect(response.headers.get('allow')).toBe('GET, HEAD')
    expect(await response.text()).not.toContain('hello static')
  })

  test('POST to a directory answers 405 with Allow', async () => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}noindex/`, {method: 'POST', body: 'x=1'})
    expect(response.status).toBe(405)
    expect(response.headers.get('allow')).toBe('GET, HEAD')
  })

  test.each(['/hello.txt/extra', '/hello.txt/', '/missing.txt', '/sub/missing/'])('%s is 404', async (urlPath) => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}${urlPath.slice(1)}`, {redirect: 'manual'})
    expect(response.status).toBe(404)
    expect(await response.text()).not.toContain('hello static')
  })

  test.each([
    ['/hello.txt', /^text\/plain/, '13'],
    ['/', /^text\/html/, '22'],
  ])('HEAD %s answers like GET with no body', async (urlPath, contentType, length) => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}${urlPath.slice(1)}`, {method: 'HEAD'})
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(contentType)
    expect(response.headers.get('content-length')).toBe(length)
    expect(await response.text()).toBe('')
  })

  test('HEAD of a script runs it and sends its headers without a body', async () => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}cgi-bin/env.py`, {method: 'HEAD'})
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/)
    expect(response.headers.get('x-cgi-pid')).toMatch(/^\d+$/)
    expect(await response.text()).toBe('')
  })
})

describe('uploads per location', () => {
  test('a location can accept uploads for its prefix alone: elsewhere a POST to a directory is a 405', async () => {
    const {makeTempDir} = await import('../helpers/temp-dir.js')
    const {mkdir, readdir} = await import('node:fs/promises')
    const htdocs = await makeTempDir('upload-location')
    await mkdir(path.join(htdocs, 'uploads'))
    await mkdir(path.join(htdocs, 'other'))
    const server = await startTestServer({htdocs, locations: [{prefix: '/uploads/', upload: true}]})
    const form = () => {
      const data = new FormData()
      data.append('file', new Blob(['hello']), 'hello.txt')
      return data
    }
    expect((await fetch(`${server.url}uploads/`, {method: 'POST', body: form(), redirect: 'manual'})).status).toBe(303)
    expect((await fetch(`${server.url}other/`, {method: 'POST', body: form()})).status).toBe(405)
    expect((await fetch(server.url, {method: 'POST', body: form()})).status).toBe(405)
    expect(await readdir(path.join(htdocs, 'uploads'))).toContain('hello.txt')
    expect(await readdir(path.join(htdocs, 'other'))).toEqual([])
    // The listing offers the upload form only where uploads are accepted.
    expect(await (await fetch(`${server.url}uploads/`)).text()).toContain('enctype="multipart/form-data"')
    expect(await (await fetch(`${server.url}other/`)).text()).not.toContain('enctype="multipart/form-data"')
  })
})
