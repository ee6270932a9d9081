// Apache htpasswd files as the `htpasswd` tool writes them: parsing, and checking a user's password. Accepts bcrypt,
// APR1 and SHA1 hashes; refuses crypt(3) DES, $1$/$5$/$6$ and plaintext. Re-reading on change is htpasswd-file.ts.
import {createHash, timingSafeEqual} from 'node:crypto'
import aprMd5 from 'apache-md5'
import bcrypt from 'bcryptjs'
import pLimit from 'p-limit'

export interface Htpasswd {
  /** User name → hash, one per user, in file order. */
  readonly hashes: ReadonlyMap<string, string>
  /**
   * What the password of an unknown user is checked against: a hash of the costliest kind in the file (bcrypt at
   * its highest cost, else APR1, else SHA1), so a miss costs about what a wrong password for a real user costs.
   */
  readonly dummyHash: string
}

// The formats accepted, as the errors name them.
const ACCEPTED = 'a bcrypt ($2y$, $2a$, $2b$), APR1 ($apr1$) or SHA1 ({SHA}) hash'
const BCRYPT_REGEXP = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/
const APR1_REGEXP = /^\$apr1\$[./A-Za-z0-9]{0,8}\$[./A-Za-z0-9]{22}$/
const SHA1_REGEXP = /^\{SHA\}[A-Za-z0-9+/]{27}=$/
// bcrypt costs bcryptjs and Apache accept (2^4 to 2^31 rounds).
const MIN_BCRYPT_COST = 4
const MAX_BCRYPT_COST = 31
// What a refused hash looks like, in the words the error uses; first match wins.
const REFUSED_KINDS: readonly (readonly [RegExp, string])[] = [
  [/^\$1\$/, 'an MD5-crypt ($1$) hash'],
  [/^\$5\$/, 'a SHA-256-crypt ($5$) hash'],
  [/^\$6\$/, 'a SHA-512-crypt ($6$) hash'],
  [/^\$2[aby]\$/, 'a malformed bcrypt hash or one with a cost outside 04 to 31'],
  [/^\$apr1\$/, 'a malformed APR1 hash'],
  [/^\{SHA\}/, 'a malformed SHA1 hash'],
  [/^[./A-Za-z0-9]{13}$/, 'a crypt(3) DES hash (or a 13-character plaintext password)'],
]
const CONTROL_REGEXP = /[\u0000-\u001f\u007f]/

// Fixed dummies, one per kind. Nothing is known to hash to them, and a miss is refused whatever they verify to;
// for bcrypt only the cost put in front of the salt and digest decides the work done.
const DUMMY_BCRYPT_SALT_AND_DIGEST = 'Pg/yg0DuBQz7SslX9QYTtOIrHK1NbQK/EU2Jqj/47hPxcPbkrRURu'
const DUMMY_APR1 = '$apr1$cgiboxdm$K82nSW1eYorGN3EEQ3TG6/'
const DUMMY_SHA1 = '{SHA}6Mw/vaE+rfTzMpw6c94HD0L4QMo='

// bcrypt checks running at once, shared by every file. bcryptjs is plain JS on the event loop, in slices of up to
// 100 ms (setImmediate between them), and one check costs ~70 ms at cost 10 on this machine. Unbounded, a burst of
// logins would all advance together and all finish late; bounded, they finish in arrival order and the loop spends
// at most two checks' slices at a time on them.
const BCRYPT_CONCURRENCY = 2
const limitBcrypt = pLimit(BCRYPT_CONCURRENCY)

// Parses htpasswd text by mod_authn_file's rules (`user:hash`, blank and `#` lines skipped, surrounding whitespace
// and anything after a second colon ignored), except that a user listed twice is refused where Apache takes the
// first; throws a TypeError naming the file and line of a line it refuses.
export function parseHtpasswd(text: string, file: string): Htpasswd {
  const hashes = new Map<string, string>()
  const lineOf = new Map<string, number>()
  for (const [index, raw] of text.replace(/^\uFEFF/, '').split(/\r?\n/).entries()) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    const number = index + 1
    const fail = (got: string): never => {
      throw new TypeError(`Expected line ${number} of the htpasswd file \`${file}\` to be \`user:hash\` with ${ACCEPTED}, got ${got}`)
    }
    const colon = line.indexOf(':')
    // The refused line is never quoted: it may hold a plaintext password.
    if (colon === -1) fail('a line without a colon')
    const user = line.slice(0, colon)
    const hash = line.slice(colon + 1).split(':', 1)[0] ?? ''
    if (user === '') fail('an empty user name')
    if (CONTROL_REGEXP.test(user)) fail('a user name with control characters')
    const first = lineOf.get(user)
    if (first !== undefined) fail(`user \`${user}\` again (first on line ${first})`)
    if (!isAcceptedHash(hash)) fail(`${describeRefusedHash(hash)} for user \`${user}\``)
    hashes.set(user, hash)
    lineOf.set(user, number)
  }
  return {hashes, dummyHash: pickDummyHash(hashes.values())}
}

// True when password is the user's; an unknown user costs one check against the dummy hash, so user names cannot be
// probed by timing (except where one file mixes bcrypt costs, which no single dummy can hide).
export async function verifyUser(htpasswd: Htpasswd, user: string, password: string): Promise<boolean> {
  const hash = htpasswd.hashes.get(user)
  const matches = await verifyPassword(password, hash ?? htpasswd.dummyHash)
  return hash !== undefined && matches
}

// True when password (as UTF-8) matches a bcrypt, APR1 or SHA1 hash; the digests are compared in constant time.
export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  if (BCRYPT_REGEXP.test(hash)) {
    // Hashing with the stored salt (its first 29 characters: version, cost, salt) and comparing is bcrypt's check.
    const computed = await limitBcrypt(() => bcrypt.hash(password, hash.slice(0, 29)))
    return isSameText(computed, hash)
  }
  if (APR1_REGEXP.test(hash)) {
    // apache-md5 hashes one byte per character; htpasswd hashed the UTF-8 bytes of the password.
    return isSameText(aprMd5(Buffer.from(password, 'utf8').toString('latin1'), hash), hash)
  }
  if (SHA1_REGEXP.test(hash)) {
    return isSameBytes(createHash('sha1').update(password, 'utf8').digest(), Buffer.from(hash.slice('{SHA}'.length), 'base64'))
  }
  return false
}

function describeRefusedHash(hash: string): string {
  return REFUSED_KINDS.find(([pattern]) => pattern.test(hash))?.[1] ?? 'a plaintext password or an unsupported hash'
}

function isAcceptedHash(hash: string): boolean {
  const bcryptCost = BCRYPT_REGEXP.exec(hash)?.[1]
  if (bcryptCost !== undefined) return Number(bcryptCost) >= MIN_BCRYPT_COST && Number(bcryptCost) <= MAX_BCRYPT_COST
  return APR1_REGEXP.test(hash) || SHA1_REGEXP.test(hash)
}

function isSameBytes(a: Buffer, b: Buffer): boolean {
  // timingSafeEqual needs equal lengths; the formats fix them, so a difference here says nothing secret.
  return a.length === b.length && timingSafeEqual(a, b)
}

function isSameText(a: string, b: string): boolean {
  return isSameBytes(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'))
}

function pickDummyHash(hashes: Iterable<string>): string {
  let bcryptCost = -1
  let hasApr1 = false
  for (const hash of hashes) {
    const cost = BCRYPT_REGEXP.exec(hash)?.[1]
    if (cost !== undefined) bcryptCost = Math.max(bcryptCost, Number(cost))
    else if (APR1_REGEXP.test(hash)) hasApr1 = true
  }
  if (bcryptCost >= 0) return `$2y$${String(bcryptCost).padStart(2, '0')}$${DUMMY_BCRYPT_SALT_AND_DIGEST}`
  // An empty file has no users to hide, so the cheapest dummy will do.
  return hasApr1 ? DUMMY_APR1 : DUMMY_SHA1
}
