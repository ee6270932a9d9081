// Builds the environment of one CGI run (RFC 3875 §4.1) from the request alone; it never reads process.env.
// No DNS (REMOTE_HOST is the address); REMOTE_USER and AUTH_TYPE only when cgibox authenticated the request itself.
import {VERSION} from '../version.js'
import type {ScriptRoute} from '../route.js'

// What buildCgiEnv needs to know about one request: node:http request fields, the route and the config.
export interface CgiEnvInput {
  /** `req.method`. */
  readonly method: string
  /** `req.httpVersion`, e.g. `1.1`. */
  readonly httpVersion: string
  /** `req.rawHeaders`: name, value, name, value… */
  readonly rawHeaders: readonly string[]
  /** `req.url` as received (raw, undecoded), e.g. `/cgi-bin/env.py/a%20b?x=1`. */
  readonly requestUri: string
  readonly remoteAddress: string
  readonly remotePort: number
  readonly localAddress: string
  readonly localPort: number
  readonly tls: boolean
  /** Bytes of request body the script will get; `null` when there is no body (no CONTENT_LENGTH). */
  readonly contentLength: number | null
  readonly script: ScriptRoute
  /** Absolute document root (htdocs). */
  readonly documentRoot: string
  /** SERVER_NAME when the request has no usable Host header (the configured host). */
  readonly serverName: string
  /** Export Authorization as HTTP_AUTHORIZATION (Apache CGIPassAuth). */
  readonly passAuthorization: boolean
  /** The user cgibox authenticated with HTTP Basic (a location's `auth`), or null. */
  readonly remoteUser: string | null
  /** Global config env, then mount env, merged by the caller; applied last, so it overrides everything. */
  readonly extraEnv: Readonly<Record<string, string>>
}

const SERVER_SOFTWARE = `cgibox/${VERSION}`
// Defaults for an environment built from nothing; config env may override them.
const SAFE_DEFAULTS = {PATH: '/usr/local/bin:/usr/bin:/bin', TZ: resolveTimeZone(), LANG: 'C.UTF-8'}
// Letters, digits and '-' only: X_Foo would otherwise collide with X-Foo as HTTP_X_FOO (lighttpd http_cgi.c).
const HEADER_NAME_REGEXP = /^[A-Za-z0-9-]+$/
// A reg-name or IPv4 address, or a bracketed IPv6 literal, then an optional port (RFC 3986 §3.2.2, RFC 3875 §4.1.14).
const HOST_REGEXP = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]*)?$/
// Request headers that never become HTTP_* variables.
const NOT_EXPORTED = new Set([
  'proxy', // httpoxy: HTTP_PROXY would steer the script's own requests (Go issue 16405, https://httpoxy.org/)
  'content-type', // RFC 3875 §4.1.3: it is CONTENT_TYPE
  'content-length', // RFC 3875 §4.1.2: it is CONTENT_LENGTH, from the body the script actually gets
  'transfer-encoding', // the script gets the body de-chunked, with an exact CONTENT_LENGTH
])

// The CGI environment of one request: meta-variables in RFC 3875 §4.1 order, extras, HTTP_*, then config env.
export function buildCgiEnv(input: CgiEnvInput): Record<string, string> {
  const headers = collectHeaders(input.rawHeaders)
  const {pathInfo} = input.script
  const queryIndex = input.requestUri.indexOf('?')
  const metaVariables: Record<string, string | undefined> = {
    AUTH_TYPE: input.remoteUser === null ? undefined : 'Basic', // §4.1.1: the mechanism the server used
    CONTENT_LENGTH: input.contentLength === null ? undefined : String(input.contentLength),
    CONTENT_TYPE: headers.get('content-type')?.[0], // first wins, as in node:http req.headers
    GATEWAY_INTERFACE: 'CGI/1.1',
    PATH_INFO: pathInfo, // RFC 3875 §4.1.5: decoded; always set, '' when the URL ends at the script
    PATH_TRANSLATED: pathInfo === '' ? undefined : input.documentRoot.replace(/\/+$/, '') + pathInfo,
    QUERY_STRING: queryIndex === -1 ? '' : input.requestUri.slice(queryIndex + 1), // §4.1.7: raw, always set
    REMOTE_ADDR: input.remoteAddress,
    REMOTE_HOST: input.remoteAddress, // §4.1.9 allows the address in place of a DNS lookup
    REMOTE_USER: input.remoteUser ?? undefined, // §4.1.11
    REQUEST_METHOD: input.method,
    SCRIPT_NAME: input.script.scriptName,
    SERVER_NAME: resolveServerName(headers.get('host'), input.serverName),
    SERVER_PORT: String(input.localPort),
    SERVER_PROTOCOL: `HTTP/${input.httpVersion}`,
    SERVER_SOFTWARE,
    // Not in RFC 3875, but Apache, lighttpd and nginx set them and scripts (PHP in particular) read them.
    DOCUMENT_ROOT: input.documentRoot,
    HTTPS: input.tls ? 'on' : undefined,
    REDIRECT_STATUS: '200', // php-cgi's cgi.force_redirect refuses to run without it
    REMOTE_PORT: String(input.remotePort),
    REQUEST_SCHEME: input.tls ? 'https' : 'http',
    REQUEST_URI: input.requestUri,
    SCRIPT_FILENAME: input.script.scriptFilename,
    SERVER_ADDR: input.localAddress,
  }
  const httpVariables: Record<string, string> = {}
  for (const [name, values] of headers) {
    if (NOT_EXPORTED.has(name) || (name === 'authorization' && !input.passAuthorization)) continue
    httpVariables[`HTTP_${name.toUpperCase().replaceAll('-', '_')}`] = values.join(name === 'cookie' ? '; ' : ', ')
  }
  const env = {...metaVariables, ...SAFE_DEFAULTS, ...httpVariables, ...input.extraEnv}
  // execve cannot carry NUL, and spawn() throws on it.
  return Object.fromEntries(Object.entries(env).filter((entry): entry is [string, string] =>
    entry[1] !== undefined && !entry[1].includes('\0')))
}

// Lower-case header name → values in arrival order; drops names outside [A-Za-z0-9-] and values with NUL.
function collectHeaders(rawHeaders: readonly string[]): Map<string, string[]> {
  const headers = new Map<string, string[]>()
  for (let index = 0; index + 1 < rawHeaders.length; index += 2) {
    const name = rawHeaders[index] as string
    const value = rawHeaders[index + 1] as string
    if (!HEADER_NAME_REGEXP.test(name) || value.includes('\0')) continue
    const key = name.toLowerCase()
    const values = headers.get(key)
    if (values) values.push(value)
    else headers.set(key, [value])
  }
  return headers
}


// SERVER_NAME is the Host header without its port; two Host headers or odd characters fall back to the config host.
function resolveServerName(hostValues: readonly string[] | undefined, fallback: string): string {
  const match = hostValues?.length === 1 ? HOST_REGEXP.exec(hostValues[0] as string) : null
  if (match?.[1]) return match[1]
  return fallback.includes(':') && !fallback.startsWith('[') ? `[${fallback}]` : fallback
}

function resolveTimeZone(): string {
  try {
    return new Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'
  } catch {
    return 'UTC'
  }
}
