// Table tests of the router (docs/architecture.md §4): splitUrlPath's path policy on raw paths, and resolveRoute over
// the fixture tree (test/fixtures/htdocs and cgi-bin, plus one program mount).
import {realpathSync} from 'node:fs'
import path from 'node:path'
import {beforeAll, describe, expect, test} from 'vitest'
import {normalizeConfig} from '../src/config.js'
import {BadRequestError, ForbiddenError, HttpError, NotFoundError} from '../src/errors.js'
import type {Route} from '../src/route.js'
import {createRouter, isInside, splitUrlPath, type Router} from '../src/router.js'
import {caught} from './helpers/caught.js'
import {FIXTURES} from './helpers/server.js'

const HTDOCS = realpathSync(path.join(FIXTURES, 'htdocs'))
const CGI_BIN = realpathSync(path.join(FIXTURES, 'cgi-bin'))
const PROGRAM = path.join(CGI_BIN, 'env.py')

type HttpErrorClass = new (...args: never[]) => HttpError

describe('splitUrlPath', () => {
  test.each<[string, string[], boolean]>([
    ['/', [], false],
    ['/a', ['a'], false],
    ['/a/b', ['a', 'b'], false],
    ['/a/b/', ['a', 'b'], true],
    ['//a//b//', ['a', 'b'], true],
    ['/a%20b', ['a b'], false],
    ['/caf%C3%A9', ['café'], false],
    ['/%41%42', ['AB'], false],
    ['/%252e%252e', ['%2e%2e'], false], // decoded exactly once
    ['/100%25.txt', ['100%.txt'], false],
    ['/a+b', ['a+b'], false], // `+` is a plus in a path, not a space
  ])('%s splits into %j (trailing slash: %s)', (raw, segments, trailingSlash) => {
    expect(splitUrlPath(raw)).toEqual({segments, trailingSlash})
  })

  test.each<[string, HttpErrorClass, number]>([
    ['', BadRequestError, 400],
    ['a/b', BadRequestError, 400],
    ['*', BadRequestError, 400],
    ['/%zz', BadRequestError, 400],
    ['/%', BadRequestError, 400],
    ['/a%2', BadRequestError, 400],
    ['/%C3', BadRequestError, 400], // a lone UTF-8 lead byte
    ['/%c0%ae', BadRequestError, 400], // overlong '.'
    ['/a%00b', BadRequestError, 400],
    ['/hello.txt%00.py', BadRequestError, 400],
    ['/..', ForbiddenError, 403],
    ['/.', ForbiddenError, 403],
    ['/a/../b', ForbiddenError, 403],
    ['/a/./b', ForbiddenError, 403],
    ['/%2e%2e/etc/passwd', ForbiddenError, 403],
    ['/%2E%2E/etc/passwd', ForbiddenError, 403],
    ['/.%2e/etc/passwd', ForbiddenError, 403],
    ['/%2e/etc', ForbiddenError, 403],
    ['/a/..', ForbiddenError, 403],
    ['/a%2fb', NotFoundError, 404],
    ['/sub%2f..%2f..%2fetc/passwd', NotFoundError, 404],
    ['/a%5cb', NotFoundError, 404],
    ['/..%5c..%5cetc%5cpasswd', NotFoundError, 404],
    ['/sub\\..\\..\\etc', NotFoundError, 404],
    ['/.hidden', NotFoundError, 404],
    ['/%2ehidden', NotFoundError, 404],
    ['/a/.git/config', NotFoundError, 404],
    ['/...', NotFoundError, 404],
    ['/..%2e', NotFoundError, 404], // `...` is a dotfile name, not a dot segment
  ])('%j is refused with %o (%i)', (raw, ErrorClass, status) => {
    const error = caught(() => splitUrlPath(raw))
    expect(error).toBeInstanceOf(ErrorClass)
    expect((error as HttpError).status).toBe(status)
  })
})

describe('isInside', () => {
  test.each<[string, string, boolean]>([
    ['/srv/htdocs', '/srv/htdocs', true],
    ['/srv/htdocs', '/srv/htdocs/a', true],
    ['/srv/htdocs', '/srv/htdocs/a/b', true],
    ['/srv/htdocs/', '/srv/htdocs/a', true],
    ['/srv/htdocs', '/srv/htdocs-evil/a', false],
    ['/srv/htdocs', '/srv', false],
    ['/srv/htdocs', '/etc/passwd', false],
  ])('isInside(%s, %s) is %s', (root, child, expected) => {
    expect(isInside(root, child)).toBe(expected)
  })
})

describe('resolveRoute over the fixture tree', () => {
  let router: Router
  beforeAll(async () => {
    router = await createRouter(normalizeConfig({
      htdocs: path.join(FIXTURES, 'htdocs'),
      cgiBin: path.join(FIXTURES, 'cgi-bin'),
      mounts: [{prefix: '/prog/', program: PROGRAM, env: {MOUNT_VAR: 'x'}}],
    }))
  })

  // A script route for the table: mount is null unless given.
  function script(scriptName: string, pathInfo: string, scriptFilename: string): Route {
    return {kind: 'script', script: {scriptName, pathInfo, scriptFilename, nph: false, location: null, isProgram: false}}
  }

  test.each<[string, Route]>([
    ['/', {kind: 'directory', dirPath: HTDOCS, urlPath: '/', location: null}],
    ['/noindex/', {kind: 'directory', dirPath: path.join(HTDOCS, 'noindex'), urlPath: '/noindex/', location: null}],
    ['/noindex', {kind: 'redirect', location: '/noindex/'}],
    ['//noindex', {kind: 'redirect', location: '/noindex/'}],
    ['/sub', {kind: 'redirect', location: '/sub/'}],
    ['/hello.txt', {kind: 'static', filePath: path.join(HTDOCS, 'hello.txt')}],
    ['/sub/file.txt', {kind: 'static', filePath: path.join(HTDOCS, 'sub', 'file.txt')}],
    ['/inside-link.txt', {kind: 'static', filePath: path.join(HTDOCS, 'hello.txt')}],
    ['/page.py', script('/page.py', '', path.join(HTDOCS, 'page.py'))],
    ['/page.py/extra', script('/page.py', '/extra', path.join(HTDOCS, 'page.py'))],
    ['/page.py/a%20b/c/', script('/page.py', '/a b/c/', path.join(HTDOCS, 'page.py'))],
    ['/Upper.PY', script('/Upper.PY', '', path.join(HTDOCS, 'Upper.PY'))],
    ['/cgi-bin/env.py', script('/cgi-bin/env.py', '', path.join(CGI_BIN, 'env.py'))],
    ['/htbin/env.py', script('/htbin/env.py', '', path.join(CGI_BIN, 'env.py'))],
    ['/cgi-bin/env.py/x/y', script('/cgi-bin/env.py', '/x/y', path.join(CGI_BIN, 'env.py'))],
    ['/cgi-bin/env.py/a%20b', script('/cgi-bin/env.py', '/a b', path.join(CGI_BIN, 'env.py'))],
    ['/cgi-bin/env.py/a/b/', script('/cgi-bin/env.py', '/a/b/', path.join(CGI_BIN, 'env.py'))],
    ['/cgi-bin/env.py/', script('/cgi-bin/env.py', '/', path.join(CGI_BIN, 'env.py'))],
    ['/cgi-bin/nested/deeper/where.sh/x/y',
      script('/cgi-bin/nested/deeper/where.sh', '/x/y', path.join(CGI_BIN, 'nested', 'deeper', 'where.sh'))],
    ['/cgi-bin/plain-file', script('/cgi-bin/plain-file', '', path.join(CGI_BIN, 'plain-file'))],
    ['/cgi-bin/nph-raw.sh', {kind: 'script', script: {
      scriptName: '/cgi-bin/nph-raw.sh', pathInfo: '', scriptFilename: path.join(CGI_BIN, 'nph-raw.sh'), nph: true, location: null, isProgram: false,
    }}],
  ])('%s resolves to %o', async (raw, expected) => {
    expect(await router.resolveRoute(raw)).toEqual(expected)
  })

  test.each<[string, string, string]>([
    ['/prog', '/prog', ''],
    ['/prog/', '/prog', '/'],
    ['/prog/a/b', '/prog', '/a/b'],
    ['/prog/a%20b/', '/prog', '/a b/'],
  ])('the program mount serves %s with SCRIPT_NAME %s and PATH_INFO %j', async (raw, scriptName, pathInfo) => {
    const route = await router.resolveRoute(raw)
    expect(route).toMatchObject({kind: 'script', script: {scriptName, pathInfo, scriptFilename: PROGRAM, isProgram: true}})
    expect(route.kind === 'script' && route.script.location?.env).toEqual({MOUNT_VAR: 'x'})
  })

  test.each<[string, HttpErrorClass]>([
    ['/cgi-bin', ForbiddenError],
    ['/cgi-bin/', ForbiddenError],
    ['/htbin/', ForbiddenError],
    ['/cgi-bin/nested/', ForbiddenError],
    ['/cgi-bin/nested/deeper', ForbiddenError],
    ['/cgi-bin/missing.py', NotFoundError],
    ['/cgi-bin/nested/missing/x', NotFoundError],
    ['/missing', NotFoundError],
    ['/missing/', NotFoundError],
    ['/hello.txt/extra', NotFoundError],
    ['/hello.txt/', NotFoundError],
    ['/passwd-link', NotFoundError],
    ['/outside-dir-link', NotFoundError],
    ['/outside-dir-link/', NotFoundError],
    ['/outside-dir-link/passwd', NotFoundError],
    ['/.hidden', NotFoundError],
    ['/noindex/.dot', NotFoundError],
    ['/%2e%2e/etc/passwd', ForbiddenError],
    ['/cgi-bin/%2e%2e/htdocs/hello.txt', ForbiddenError],
    ['/hello.txt%00.py', BadRequestError],
  ])('%s is refused with %o', async (raw, ErrorClass) => {
    await expect(router.resolveRoute(raw)).rejects.toBeInstanceOf(ErrorClass)
  })
})
