// End-to-end path policy (docs/architecture.md §4, issue #2 point 7): `..`, `%2e%2e`, `%2f`, double encoding,
// backslashes, NUL and symlinks that leave a root never escape it. Requests go out on a raw socket, because
// fetch and URL normalise `..` and `%2e` before they reach the server.
import {chmod, mkdir, symlink, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {describe, expect, test} from 'vitest'
import {rawGet} from '../helpers/http.js'
import {FIXTURES, startTestServer} from '../helpers/server.js'
import {makeTempDir} from '../helpers/temp-dir.js'

describe('requests that try to leave the document root', () => {
  // [raw request target, status the design gives it]: 400 bad encoding or NUL, 403 dot segments, 404 the rest.
  test.each<[string, number]>([
    ['/../../etc/passwd', 403],
    ['/%2e%2e/%2e%2e/etc/passwd', 403],
    ['/%2E%2E/%2E%2E/etc/passwd', 403],
    ['/.%2e/.%2e/etc/passwd', 403],
    ['/sub/../../etc/passwd', 403],
    ['/./hello.txt', 403],
    ['/cgi-bin/%2e%2e/%2e%2e/etc/passwd', 403],
    ['/cgi-bin/../htdocs/hello.txt', 403],
    ['/htbin/%2e%2e/htdocs/index.html', 403],
    ['/sub%2f..%2f..%2fetc/passwd', 404],
    ['/sub%2F..%2F..%2Fetc%2Fpasswd', 404],
    ['/cgi-bin/..%2f..%2fetc/passwd', 404],
    ['/cgi-bin/env.py/..%2f..%2fetc/passwd', 404],
    ['/%252e%252e/etc/passwd', 404],
    ['/%252e%252e/%252e%252e/etc/passwd', 404],
    ['/..%5c..%5cetc%5cpasswd', 404],
    ['/sub\\..\\..\\etc\\passwd', 404],
    ['/hello.txt%00.py', 400],
    ['/cgi-bin/env.py%00', 400],
    ['/%zz', 400],
    ['/%', 400],
    ['/%c0%ae%c0%ae/etc/passwd', 400], // overlong UTF-8 for '.' is not valid UTF-8
    ['/.hidden', 404],
    ['/%2ehidden', 404],
    ['/noindex/.dot', 404],
    ['/passwd-link', 404],
    ['/outside-dir-link/passwd', 404],
    ['/outside-dir-link/', 404],
    ['/outside-dir-link', 404],
  ])('GET %s answers %i and never shows /etc/passwd', async (target, status) => {
    const {port} = await startTestServer()
    const response = await rawGet(port, target)
    expect(response.status).not.toBe(200)
    expect(response.body).not.toContain('root:')
    expect(response.status).toBe(status)
  })

  // Forms with no status of their own in the design: only "never /etc/passwd" is asserted.
  test.each([
    'http://127.0.0.1/../../etc/passwd',
    'http://127.0.0.1/%2e%2e/%2e%2e/etc/passwd',
    '/cgi-bin/env.py/../../../etc/passwd',
    '/hello.txt;/../../etc/passwd',
    '/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
    '/outside-dir-link/./passwd',
  ])('GET %s never shows /etc/passwd', async (target) => {
    const {port} = await startTestServer()
    const response = await rawGet(port, target)
    expect(response.status).not.toBe(200)
    expect(response.body).not.toContain('root:')
  })

  test('a symlink that stays inside htdocs is served', async () => {
    const {port} = await startTestServer()
    const response = await rawGet(port, '/inside-link.txt')
    expect(response.status).toBe(200)
    expect(response.body).toBe('hello static\n')
  })

  test('//sub redirects to /sub/, never to a protocol-relative //sub/', async () => {
    const {port} = await startTestServer()
    const response = await rawGet(port, '//sub')
    expect(response.status).toBe(301)
    expect(response.headers.location).toEqual(['/sub/'])
  })

  test.each(['/%2e%2e/hello.txt', '/sub/%2e%2e/hello.txt'])('%s does not reach hello.txt either', async (target) => {
    const {port} = await startTestServer()
    const response = await rawGet(port, target)
    expect(response.status).toBe(403)
    expect(response.body).not.toContain('hello static')
  })
})

describe('symlinks in the script directory', () => {
  test.each([
    ['/cgi-bin/passwd', '/etc/passwd'],
    ['/cgi-bin/sh', '/bin/sh'],
    ['/cgi-bin/outside/passwd', '/etc'],
  ])('%s (a symlink to %s) is neither run nor served', async (target, linkTarget) => {
    const cgiBin = await makeTempDir('path-policy')
    await writeFile(path.join(cgiBin, 'ok.sh'), '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\nok\\n"\n')
    await chmod(path.join(cgiBin, 'ok.sh'), 0o755)
    await symlink(linkTarget, path.join(cgiBin, target.split('/')[2]!))
    const {port} = await startTestServer({cgiBin})
    const response = await rawGet(port, target)
    expect(response.status).toBe(404)
    expect(response.body).not.toContain('root:')
  })

  test('a mount prefix is held to the same path policy', async () => {
    const {port} = await startTestServer({
      mounts: [{prefix: '/prog/', program: path.join(FIXTURES, 'cgi-bin', 'env.py')}],
    })
    const dotted = await rawGet(port, '/prog/%2e%2e/%2e%2e/etc/passwd')
    expect(dotted.status).toBe(403)
    const nul = await rawGet(port, '/prog/a%00b')
    expect(nul.status).toBe(400)
  })
})

describe('htdocs symlinks to directories', () => {
  test('a symlinked directory inside htdocs is served; one leaving it is not', async () => {
    const root = await makeTempDir('path-policy')
    const htdocs = path.join(root, 'htdocs')
    await mkdir(path.join(htdocs, 'real'), {recursive: true})
    await writeFile(path.join(htdocs, 'real', 'file.txt'), 'inside\n')
    await writeFile(path.join(root, 'secret.txt'), 'outside-secret\n')
    await symlink('real', path.join(htdocs, 'alias'))
    await symlink('..', path.join(htdocs, 'up'))
    const {port} = await startTestServer({htdocs})
    const inside = await rawGet(port, '/alias/file.txt')
    expect(inside.status).toBe(200)
    expect(inside.body).toBe('inside\n')
    const outside = await rawGet(port, '/up/secret.txt')
    expect(outside.status).toBe(404)
    expect(outside.body).not.toContain('outside-secret')
  })
})
