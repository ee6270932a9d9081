// HTTP Basic authentication (RFC 7617) against an Apache htpasswd file, for locations with `auth: {realm, htpasswd}`.
// It answers who the request is; sending the 401 with `challenge` in WWW-Authenticate is the caller's job.
import path from 'node:path'
import {createCredentialCache} from './credential-cache.js'
import {verifyUser} from './htpasswd.js'
import {openHtpasswdFile} from './htpasswd-file.js'

export interface BasicAuthOptions {
  /** The protection space named in the challenge (RFC 7617 §2); printable ASCII. */
  readonly realm: string
  /** Absolute path of the htpasswd file (Apache `AuthUserFile`). */
  readonly htpasswd: string
  /**
   * Told, once per bad version of the file, that a change could not be used (unreadable, gone, a refused line) and
   * the last good contents stay in force. Must not throw. Default: none.
   */
  readonly onError?: (message: string) => void
  /** How long the file is trusted before it is stat'ed again; 0 looks on every request. Default: `1_000`. */
  readonly checkIntervalMs?: number
}

export interface BasicAuth {
  /** The user name when the Authorization header carries valid Basic credentials, else null. */
  authenticate(authorization: string | undefined): Promise<string | null>
  /** The WWW-Authenticate value of a 401, e.g. `Basic realm="git", charset="UTF-8"`. */
  readonly challenge: string
  /** Stops looking at the file and forgets remembered successes. */
  close(): void
}

export interface BasicCredentials {
  readonly user: string
  readonly password: string
}

// Successes remembered per file version (least recently used dropped first).
const CACHE_ENTRIES = 1000
// Longest Authorization value read: APR1 work grows with the password, and no real password comes near 3 KiB.
const MAX_TOKEN_CHARS = 4096
// RFC 9110 §11.4: credentials = auth-scheme [ 1*SP token68 ]; the scheme is case-insensitive.
const BASIC_REGEXP = /^basic +([A-Za-z0-9+/]+={0,2})$/i
// Base64 with padding, as RFC 7617 §2 asks (RFC 4648 §4); Buffer.from would accept anything.
const BASE64_REGEXP = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/
// RFC 7617 §2.1: with charset UTF-8, neither user-id nor password may contain control characters (RFC 5234 CTL).
const CONTROL_REGEXP = /[\u0000-\u001f\u007f]/
const REALM_REGEXP = /^[\u0020-\u007e]+$/
// ignoreBOM keeps a leading U+FEFF as a character instead of dropping it from the user name.
const UTF8 = new TextDecoder('utf-8', {fatal: true, ignoreBOM: true})

// Reads and parses the htpasswd file and returns the checker; throws a TypeError on a bad option, an unreadable file
// (naming the path) or a refused line (naming file and line).
export async function createBasicAuth(options: BasicAuthOptions): Promise<BasicAuth> {
  const {realm, htpasswd, onError = () => {}, checkIntervalMs = 1_000} = options
  const challenge = formatChallenge(realm)
  if (typeof htpasswd !== 'string' || !path.isAbsolute(htpasswd)) {
    throw new TypeError(`Expected the \`htpasswd\` option to be an absolute path, got \`${htpasswd}\` (${typeof htpasswd})`)
  }
  if (!Number.isSafeInteger(checkIntervalMs) || checkIntervalMs < 0) {
    throw new TypeError(`Expected the \`checkIntervalMs\` option to be an integer >= 0, got \`${checkIntervalMs}\` (${typeof checkIntervalMs})`)
  }
  const file = await openHtpasswdFile({path: htpasswd, checkIntervalMs, onError})
  const cache = createCredentialCache(CACHE_ENTRIES)
  let cachedFor = await file.current()

  return {
    challenge,
    async authenticate(authorization) {
      const credentials = parseBasicCredentials(authorization)
      if (credentials === null) return null
      const {user, password} = credentials
      const users = await file.current()
      // A success holds only for the version it was checked against.
      if (users !== cachedFor) {
        cache.clear()
        cachedFor = users
      }
      return await cache.check(user, password, () => verifyUser(users, user, password)) ? user : null
    },
    close() {
      file.close()
      cache.clear()
    },
  }
}

// The credentials of an `Authorization: Basic` value, or null for anything else: another scheme, base64 that is not
// padded base64, bytes that are not UTF-8, no colon, an empty user-id, or control characters (RFC 7617 §2, §2.1).
export function parseBasicCredentials(authorization: string | undefined): BasicCredentials | null {
  if (authorization === undefined || authorization.length > MAX_TOKEN_CHARS) return null
  const token = BASIC_REGEXP.exec(authorization)?.[1]
  if (token === undefined || !BASE64_REGEXP.test(token)) return null
  let decoded: string
  try {
    decoded = UTF8.decode(Buffer.from(token, 'base64'))
  } catch {
    return null
  }
  // The user-id cannot contain a colon; the password can (§2).
  const colon = decoded.indexOf(':')
  if (colon <= 0 || CONTROL_REGEXP.test(decoded)) return null
  return {user: decoded.slice(0, colon), password: decoded.slice(colon + 1)}
}

// The WWW-Authenticate value for a 401 (RFC 7617 §2): the realm as a quoted-string, and charset="UTF-8" (§2.1) so
// clients send non-ASCII credentials as UTF-8; throws a TypeError for a realm that is not printable ASCII.
export function formatChallenge(realm: string): string {
  if (typeof realm !== 'string' || !REALM_REGEXP.test(realm)) {
    throw new TypeError(`Expected the \`realm\` option to be non-empty printable ASCII, got \`${JSON.stringify(realm)}\` (${typeof realm})`)
  }
  // RFC 9110 §5.6.4: inside a quoted-string, `"` and `\` are escaped with a backslash.
  return `Basic realm="${realm.replace(/["\\]/g, '\\$&')}", charset="UTF-8"`
}
