import {readFileSync} from 'node:fs'
import {describe, expect, onTestFinished, test} from 'vitest'
import {buildCgiEnv, type CgiEnvInput} from '../../src/cgi/env.js'
import type {ScriptRoute} from '../../src/route.js'

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {version: string}).version

const SCRIPT: ScriptRoute = {
  scriptName: '/cgi-bin/env.py',
  pathInfo: '/a b',
  scriptFilename: '/srv/cgi-bin/env.py',
  nph: false,
  location: null,
  isProgram: false,
}

const BASE: CgiEnvInput = {
  method: 'GET',
  httpVersion: '1.1',
  rawHeaders: ['Host', 'example.test:8080', 'User-Agent', 'vitest'],
  requestUri: '/cgi-bin/env.py/a%20b?x=1',
  remoteAddress: '10.0.0.2',
  remotePort: 51234,
  localAddress: '10.0.0.1',
  localPort: 8080,
  tls: false,
  contentLength: null,
  script: SCRIPT,
  documentRoot: '/srv/htdocs',
  serverName: '127.0.0.1',
  passAuthorization: false,
  remoteUser: null,
  extraEnv: {},
}

type Overrides = Partial<Omit<CgiEnvInput, 'script'>> & {script?: Partial<ScriptRoute>}

function envFor({script, ...overrides}: Overrides = {}): Record<string, string> {
  return buildCgiEnv({...BASE, ...overrides, script: {...SCRIPT, ...script}})
}

// The listed keys of env; `undefined` in `expected` means the variable must be absent.
function pick(env: Record<string, string>, expected: Record<string, string | undefined>) {
  return Object.fromEntries(Object.keys(expected).map((key) => [key, env[key]]))
}

describe('meta-variables (RFC 3875 §4.1)', () => {
  test.each<{title: string; input: Overrides; expected: Record<string, string | undefined>}>([
    {
      title: 'GATEWAY_INTERFACE, REQUEST_METHOD, SCRIPT_NAME and SERVER_SOFTWARE describe the run',
      input: {method: 'POST'},
      expected: {GATEWAY_INTERFACE: 'CGI/1.1', REQUEST_METHOD: 'POST', SCRIPT_NAME: '/cgi-bin/env.py', SERVER_SOFTWARE: `cgibox/${VERSION}`},
    },
    {
      title: 'PATH_INFO is the decoded rest of the path and PATH_TRANSLATED maps it under the document root',
      input: {},
      expected: {PATH_INFO: '/a b', PATH_TRANSLATED: '/srv/htdocs/a b'},
    },
    {
      title: 'PATH_TRANSLATED does not double the slash of a document root that ends in one',
      input: {documentRoot: '/srv/htdocs/'},
      expected: {PATH_TRANSLATED: '/srv/htdocs/a b'},
    },
    {
      title: 'PATH_INFO is empty and PATH_TRANSLATED unset when the URL ends at the script',
      input: {requestUri: '/cgi-bin/env.py', script: {pathInfo: ''}},
      expected: {PATH_INFO: '', PATH_TRANSLATED: undefined},
    },
    {
      title: 'QUERY_STRING is the raw query, percent-escapes kept',
      input: {requestUri: '/cgi-bin/env.py?a=%20b&c'},
      expected: {QUERY_STRING: 'a=%20b&c'},
    },
    {
      title: 'QUERY_STRING starts after the first ? only',
      input: {requestUri: '/cgi-bin/env.py?a=1?b=2'},
      expected: {QUERY_STRING: 'a=1?b=2'},
    },
    {
      title: 'QUERY_STRING is set and empty when the URL has no query',
      input: {requestUri: '/cgi-bin/env.py/a%20b'},
      expected: {QUERY_STRING: ''},
    },
    {
      title: 'QUERY_STRING is set and empty for a bare ?',
      input: {requestUri: '/cgi-bin/env.py?'},
      expected: {QUERY_STRING: ''},
    },
    {
      title: 'REQUEST_URI is the raw request target',
      input: {requestUri: '/cgi-bin/env.py/a%20b?x=%2F'},
      expected: {REQUEST_URI: '/cgi-bin/env.py/a%20b?x=%2F'},
    },
    {
      title: 'SERVER_PROTOCOL is HTTP/1.1 for an HTTP/1.1 request',
      input: {},
      expected: {SERVER_PROTOCOL: 'HTTP/1.1'},
    },
    {
      title: 'SERVER_PROTOCOL is HTTP/1.0 for an HTTP/1.0 request',
      input: {httpVersion: '1.0'},
      expected: {SERVER_PROTOCOL: 'HTTP/1.0'},
    },
    {
      title: 'CONTENT_LENGTH is the length of the body the script gets',
      input: {contentLength: 12, rawHeaders: ['Content-Length', '12']},
      expected: {CONTENT_LENGTH: '12', HTTP_CONTENT_LENGTH: undefined},
    },
    {
      title: 'CONTENT_LENGTH is 0 for an empty body',
      input: {contentLength: 0},
      expected: {CONTENT_LENGTH: '0'},
    },
    {
      title: 'CONTENT_LENGTH is unset when there is no body, even with a Content-Length header',
      input: {contentLength: null, rawHeaders: ['Content-Length', '5']},
      expected: {CONTENT_LENGTH: undefined, HTTP_CONTENT_LENGTH: undefined},
    },
    {
      title: 'CONTENT_TYPE comes from the Content-Type header and is not exported as HTTP_CONTENT_TYPE',
      input: {rawHeaders: ['Content-Type', 'text/plain; charset=utf-8']},
      expected: {CONTENT_TYPE: 'text/plain; charset=utf-8', HTTP_CONTENT_TYPE: undefined},
    },
    {
      title: 'CONTENT_TYPE is the first of two Content-Type headers, as in req.headers',
      input: {rawHeaders: ['Content-Type', 'text/plain', 'Content-Type', 'text/html']},
      expected: {CONTENT_TYPE: 'text/plain'},
    },
    {
      title: 'CONTENT_TYPE is unset without a Content-Type header',
      input: {},
      expected: {CONTENT_TYPE: undefined},
    },
    {
      title: 'REMOTE_ADDR and REMOTE_HOST are the peer address (no DNS) and REMOTE_PORT its port',
      input: {},
      expected: {REMOTE_ADDR: '10.0.0.2', REMOTE_HOST: '10.0.0.2', REMOTE_PORT: '51234'},
    },
    {
      title: 'SERVER_ADDR and SERVER_PORT are the local end of the connection',
      input: {},
      expected: {SERVER_ADDR: '10.0.0.1', SERVER_PORT: '8080'},
    },
    {
      title: 'AUTH_TYPE is Basic and REMOTE_USER the user when a location authenticated the request (RFC 3875 §4.1.1, §4.1.11)',
      input: {rawHeaders: ['Authorization', 'Basic dXNlcjpwYXNz'], remoteUser: 'ada'},
      expected: {AUTH_TYPE: 'Basic', REMOTE_USER: 'ada', HTTP_AUTHORIZATION: undefined},
    },
    {
      title: 'AUTH_TYPE and REMOTE_USER are unset when cgibox authenticated no one, Authorization header or not',
      input: {rawHeaders: ['Authorization', 'Basic dXNlcjpwYXNz'], passAuthorization: true},
      expected: {AUTH_TYPE: undefined, REMOTE_USER: undefined, REMOTE_IDENT: undefined, HTTP_AUTHORIZATION: 'Basic dXNlcjpwYXNz'},
    },
    {
      title: 'Transfer-Encoding never becomes HTTP_TRANSFER_ENCODING: the script gets the body de-chunked',
      input: {rawHeaders: ['Transfer-Encoding', 'chunked']},
      expected: {HTTP_TRANSFER_ENCODING: undefined},
    },
    {
      title: 'REQUEST_SCHEME is http and HTTPS is unset on a plain connection',
      input: {tls: false},
      expected: {REQUEST_SCHEME: 'http', HTTPS: undefined},
    },
    {
      title: 'REQUEST_SCHEME is https and HTTPS is on over TLS',
      input: {tls: true},
      expected: {REQUEST_SCHEME: 'https', HTTPS: 'on'},
    },
    {
      title: 'DOCUMENT_ROOT, SCRIPT_FILENAME and REDIRECT_STATUS are set for PHP-style scripts',
      input: {},
      expected: {DOCUMENT_ROOT: '/srv/htdocs', SCRIPT_FILENAME: '/srv/cgi-bin/env.py', REDIRECT_STATUS: '200'},
    },
    {
      title: 'PATH, TZ and LANG have safe defaults',
      input: {},
      expected: {PATH: '/usr/local/bin:/usr/bin:/bin', TZ: Intl.DateTimeFormat().resolvedOptions().timeZone, LANG: 'C.UTF-8'},
    },
    {
      title: 'a computed value containing NUL is dropped',
      input: {script: {pathInfo: '/a\0b'}},
      expected: {PATH_INFO: undefined, PATH_TRANSLATED: undefined, SCRIPT_NAME: '/cgi-bin/env.py'},
    },
  ])('$title', ({input, expected}) => {
    expect(pick(envFor(input), expected)).toEqual(expected)
  })
})

describe('SERVER_NAME', () => {
  test.each<{title: string; hosts: string[]; serverName?: string; expected: string}>([
    {title: 'is the Host header without its port', hosts: ['example.test:8080'], expected: 'example.test'},
    {title: 'is the Host header when it has no port', hosts: ['example.test'], expected: 'example.test'},
    {title: 'is an IPv4 Host without its port', hosts: ['127.0.0.1:80'], expected: '127.0.0.1'},
    {title: 'keeps the brackets of an IPv6 Host and drops its port', hosts: ['[::1]:8080'], expected: '[::1]'},
    {title: 'keeps the brackets of an IPv6 Host without a port', hosts: ['[2001:db8::1]'], expected: '[2001:db8::1]'},
    {title: 'accepts an empty port', hosts: ['example.test:'], expected: 'example.test'},
    {title: 'falls back to the configured host without a Host header', hosts: [], expected: '127.0.0.1'},
    {title: 'falls back when the Host has a slash', hosts: ['evil.test/x'], expected: '127.0.0.1'},
    {title: 'falls back when the Host has a space', hosts: ['a b'], expected: '127.0.0.1'},
    {title: 'falls back when the Host has an underscore', hosts: ['a_b.test'], expected: '127.0.0.1'},
    {title: 'falls back when the port is not numeric', hosts: ['example.test:http'], expected: '127.0.0.1'},
    {title: 'falls back when the Host is empty', hosts: [''], expected: '127.0.0.1'},
    {title: 'falls back when there are two Host headers', hosts: ['a.test', 'b.test'], expected: '127.0.0.1'},
    {title: 'brackets an IPv6 configured host', hosts: [], serverName: '::1', expected: '[::1]'},
  ])('$title', ({hosts, serverName = '127.0.0.1', expected}) => {
    const env = envFor({rawHeaders: hosts.flatMap((host) => ['Host', host]), serverName})
    expect(env.SERVER_NAME).toBe(expected)
  })
})

describe('HTTP_* variables', () => {
  test.each<{title: string; headers: string[]; passAuthorization?: boolean; expected: Record<string, string | undefined>}>([
    {title: 'a header becomes HTTP_ + its name upper-cased with - as _', headers: ['X-Foo', 'bar'], expected: {HTTP_X_FOO: 'bar'}},
    {title: 'Host is exported as HTTP_HOST', headers: ['Host', 'example.test:8080'], expected: {HTTP_HOST: 'example.test:8080'}},
    {
      title: 'X_Foo is dropped while X-Foo is exported',
      headers: ['X_Foo', 'underscore', 'X-Foo', 'dash'],
      expected: {HTTP_X_FOO: 'dash'},
    },
    {
      title: 'X_Foo is dropped even when it comes after X-Foo',
      headers: ['X-Foo', 'dash', 'X_Foo', 'underscore'],
      expected: {HTTP_X_FOO: 'dash'},
    },
    {
      title: 'names with characters other than letters, digits and - are dropped',
      headers: ['X.Dot', '1', 'X~Tilde', '2', 'X9-Ok', '3'],
      expected: {HTTP_X_DOT: undefined, HTTP_XDOT: undefined, HTTP_X_TILDE: undefined, HTTP_X9_OK: '3'},
    },
    {title: 'Proxy is never exported (httpoxy)', headers: ['Proxy', 'http://evil.test/'], expected: {HTTP_PROXY: undefined}},
    {
      title: 'Proxy is never exported whatever its case, even with passAuthorization',
      headers: ['pRoXy', 'http://evil.test/'],
      passAuthorization: true,
      expected: {HTTP_PROXY: undefined},
    },
    {
      title: 'Cookie headers are joined with "; "',
      headers: ['Cookie', 'a=1', 'Cookie', 'b=2'],
      expected: {HTTP_COOKIE: 'a=1; b=2'},
    },
    {
      title: 'two Accept headers are joined with ", "',
      headers: ['Accept', 'text/html', 'Accept', 'application/json'],
      expected: {HTTP_ACCEPT: 'text/html, application/json'},
    },
    {
      title: 'header names that differ only in case make one variable',
      headers: ['X-Foo', 'a', 'x-foo', 'b'],
      expected: {HTTP_X_FOO: 'a, b'},
    },
    {title: 'Authorization is hidden by default', headers: ['Authorization', 'Basic dXNlcjpwYXNz'], expected: {HTTP_AUTHORIZATION: undefined}},
    {
      title: 'Authorization is exported when passAuthorization is on',
      headers: ['Authorization', 'Basic dXNlcjpwYXNz'],
      passAuthorization: true,
      expected: {HTTP_AUTHORIZATION: 'Basic dXNlcjpwYXNz'},
    },
    {title: 'a value containing NUL is dropped', headers: ['X-A', 'a\0b'], expected: {HTTP_X_A: undefined}},
    {title: 'only the value containing NUL is dropped from a repeated header', headers: ['X-A', 'ok', 'X-A', 'b\0'], expected: {HTTP_X_A: 'ok'}},
    {title: 'an empty value is exported as empty', headers: ['X-Empty', ''], expected: {HTTP_X_EMPTY: ''}},
  ])('$title', ({headers, passAuthorization = false, expected}) => {
    expect(pick(envFor({rawHeaders: headers, passAuthorization}), expected)).toEqual(expected)
  })
})

describe('extraEnv', () => {
  test.each<{title: string; extraEnv: Record<string, string>; expected: Record<string, string | undefined>}>([
    {title: 'overrides a safe default', extraEnv: {PATH: '/opt/bin'}, expected: {PATH: '/opt/bin'}},
    {title: 'overrides a meta-variable', extraEnv: {SERVER_NAME: 'configured.test'}, expected: {SERVER_NAME: 'configured.test'}},
    {title: 'overrides an HTTP_* variable', extraEnv: {HTTP_USER_AGENT: 'configured'}, expected: {HTTP_USER_AGENT: 'configured'}},
    {title: 'adds new variables', extraEnv: {GIT_PROJECT_ROOT: '/srv/git'}, expected: {GIT_PROJECT_ROOT: '/srv/git'}},
    {title: 'drops a value containing NUL', extraEnv: {BAD: 'a\0b'}, expected: {BAD: undefined}},
  ])('$title', ({extraEnv, expected}) => {
    expect(pick(envFor({extraEnv}), expected)).toEqual(expected)
  })
})

describe('the environment as a whole', () => {
  test('never copies process.env', () => {
    process.env.CGIBOX_TEST_SENTINEL = 'leaked-sentinel'
    onTestFinished(() => {
      delete process.env.CGIBOX_TEST_SENTINEL
    })
    const env = envFor()
    expect(env).not.toHaveProperty('CGIBOX_TEST_SENTINEL')
    expect(Object.values(env)).not.toContain('leaked-sentinel')
    expect(env).not.toHaveProperty('HOME')
  })

  test('lists meta-variables in RFC 3875 order, then extras, safe defaults, HTTP_* and config env', () => {
    const env = envFor({
      rawHeaders: ['Host', 'example.test', 'Authorization', 'Basic eA==', 'Content-Type', 'text/plain', 'Accept', '*/*'],
      contentLength: 3,
      tls: true,
      remoteUser: 'ada',
      extraEnv: {ZED: '1', APPLE: '2'},
    })
    expect(Object.keys(env)).toEqual([
      'AUTH_TYPE', 'CONTENT_LENGTH', 'CONTENT_TYPE', 'GATEWAY_INTERFACE', 'PATH_INFO', 'PATH_TRANSLATED',
      'QUERY_STRING', 'REMOTE_ADDR', 'REMOTE_HOST', 'REMOTE_USER', 'REQUEST_METHOD', 'SCRIPT_NAME', 'SERVER_NAME', 'SERVER_PORT',
      'SERVER_PROTOCOL', 'SERVER_SOFTWARE',
      'DOCUMENT_ROOT', 'HTTPS', 'REDIRECT_STATUS', 'REMOTE_PORT', 'REQUEST_SCHEME', 'REQUEST_URI', 'SCRIPT_FILENAME',
      'SERVER_ADDR',
      'PATH', 'TZ', 'LANG',
      'HTTP_HOST', 'HTTP_ACCEPT',
      'ZED', 'APPLE',
    ])
  })

  test('every value is a string without NUL', () => {
    const env = envFor({rawHeaders: ['X-A', 'a\0', 'Host', 'h.test'], contentLength: 0, tls: true})
    for (const value of Object.values(env)) {
      expect(typeof value).toBe('string')
      expect(value).not.toContain('\0')
    }
  })
})
