// htpasswd parsing (tables of good and refused lines) and password checks against real hashes: published vectors,
// hashes pasted from Apache's htpasswd, and hashes htpasswd makes during the run.
import bcrypt from 'bcryptjs'
import {describe, expect, test} from 'vitest'
import {parseHtpasswd, verifyPassword, verifyUser} from '../../src/auth/htpasswd.js'
import {caught} from '../helpers/caught.js'
import {HTPASSWD_INSTALLED, htpasswdHash} from '../helpers/htpasswd.js'

// Only named in messages: parseHtpasswd reads no file.
const FILE = '/etc/cgibox/users.htpasswd'

// 'U*U': the first test vector of Openwall's crypt_blowfish (wrapper.c), the reference bcrypt.
const BCRYPT_2A = '$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW'
// The same suite's 72-byte vector: bcrypt reads 72 bytes of password, so Apache ignores the rest too.
const BCRYPT_72 = '$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui'
const PASSWORD_72 = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'
// Made once with Apache htpasswd 2.4 and pasted: `htpasswd -nbB -C 5 bob 'battery staple'`, `-nbm alice 'correct
// horse'`, `-nbm u 'pässwörd'` (UTF-8 bytes), and {SHA}base64(sha1('password')).
const BCRYPT_2Y = '$2y$05$Ktn/.v0//5hZJe/fsXkmTuSka6q7zeyu9/fP6Dk/UW0t3fgHaKF0q'
const APR1 = '$apr1$P9IHcd4U$nripEDZzUSqUCYS/5CmHm0'
const APR1_UTF8 = '$apr1$lnxAFHrd$2bH03sHK545DlesawuzTn.'
const SHA1 = '{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g='
// bcryptjs writes $2b$; htpasswd writes $2y$.
const BCRYPT_2B = bcrypt.hashSync('two-b', 4)
const BCRYPT_COST_7 = bcrypt.hashSync('seven', 7)
// Refused formats, as `openssl passwd -1` and htpasswd -d, -2 and -5 print them (password `x` or empty).
const MD5_CRYPT = '$1$y232rFDO$Xzm3OA0ZqtOlQ.QHmKvEk1'
const SHA256_CRYPT = '$5$00jy/Dyn4JIRf3h3$gbFgHDu40aP2ugoQIfoHDzT0ftOxXOskWfg89E1RjvB'
const SHA512_CRYPT = '$6$GV/55i/W1SZpJmp8$8m.cQH0IJg1BK3U4p3O4Yzdb0mrn5W23aGe/IzR8.qpUPgY8B0Ykg3YFMsJp6r1FVZss8TpM3FAZI0txm0DTR/'
const DES_CRYPT = 'A0BPVpWCkcv5o'

const usersOf = (text: string) => Object.fromEntries(parseHtpasswd(text, FILE).hashes)

describe('parseHtpasswd: lines it takes', () => {
  test.each([
    ['one bcrypt user', `bob:${BCRYPT_2Y}\n`, {bob: BCRYPT_2Y}],
    ['the three kinds and the three bcrypt versions', `a:${BCRYPT_2A}\nb:${BCRYPT_2B}\ny:${BCRYPT_2Y}\nm:${APR1}\ns:${SHA1}\n`,
      {a: BCRYPT_2A, b: BCRYPT_2B, y: BCRYPT_2Y, m: APR1, s: SHA1}],
    ['comments and blank lines', `# users of git\n\nalice:${APR1}\n   \n\t\n  # indented comment\nbob:${SHA1}`,
      {alice: APR1, bob: SHA1}],
    ['CRLF line endings', `# users\r\nalice:${APR1}\r\n\r\nbob:${SHA1}\r\n`, {alice: APR1, bob: SHA1}],
    ['surrounding whitespace', `  alice:${APR1}  \n\tbob:${SHA1}\t\n`, {alice: APR1, bob: SHA1}],
    ['a UTF-8 byte order mark', `\uFEFFalice:${APR1}\n`, {alice: APR1}],
    ['a field after the hash (ignored, as mod_authn_file does)', `alice:${APR1}:Alice Liddell\n`, {alice: APR1}],
    ['no final newline', `alice:${APR1}`, {alice: APR1}],
    ['non-ASCII and spaced user names', `jürgen:${SHA1}\njohn doe:${APR1}\n`, {'jürgen': SHA1, 'john doe': APR1}],
    ['an empty file', '', {}],
    ['only comments', '# nobody yet\n', {}],
  ])('%s', (_, text, expected) => {
    expect(usersOf(text)).toEqual(expected)
  })
})

describe('parseHtpasswd: lines it refuses, with file and line number', () => {
  // [case, file text, line number, words the message uses, a secret the message must not repeat]
  test.each([
    ['MD5-crypt', `alice:${MD5_CRYPT}\n`, 1, 'MD5-crypt ($1$) hash', MD5_CRYPT],
    ['SHA-256-crypt', `alice:${APR1}\nbob:${SHA256_CRYPT}\n`, 2, 'SHA-256-crypt ($5$) hash', SHA256_CRYPT],
    ['SHA-512-crypt', `alice:${APR1}\n\nbob:${SHA512_CRYPT}\n`, 3, 'SHA-512-crypt ($6$) hash', SHA512_CRYPT],
    ['crypt(3) DES', `# DES\nalice:${DES_CRYPT}\n`, 2, 'crypt(3) DES hash', DES_CRYPT],
    ['plaintext', `alice:hunter2\n`, 1, 'plaintext password', 'hunter2'],
    ['an empty password field', `alice:\n`, 1, 'plaintext password', undefined],
    ['an unknown $-format', `alice:$2x$05$${'a'.repeat(53)}\n`, 1, 'unsupported hash', undefined],
    ['a truncated bcrypt hash', `alice:${BCRYPT_2Y.slice(0, -1)}\n`, 1, 'malformed bcrypt hash', BCRYPT_2Y.slice(7, -1)],
    ['bcrypt cost 03', `alice:${BCRYPT_2A.replace('$05$', '$03$')}\n`, 1, 'cost outside 04 to 31', undefined],
    ['bcrypt cost 32', `alice:${BCRYPT_2A.replace('$05$', '$32$')}\n`, 1, 'cost outside 04 to 31', undefined],
    ['a truncated APR1 hash', `alice:${APR1.slice(0, -2)}\n`, 1, 'malformed APR1 hash', APR1.slice(6, -2)],
    ['a SHA1 hash that is not 20 bytes', `alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9==\n`, 1, 'malformed SHA1 hash', undefined],
    ['a missing colon', `# one\n\nalice ${APR1}\n`, 3, 'a line without a colon', APR1],
    ['a missing colon after CRLF lines', `alice:${APR1}\r\n\r\nbob\r\n`, 3, 'a line without a colon', undefined],
    ['an empty user name', `:${APR1}\n`, 1, 'an empty user name', APR1],
    ['a control character in the user name', `al\u0001ice:${APR1}\n`, 1, 'control characters', APR1],
    ['a user listed twice', `alice:${APR1}\nalice:${SHA1}\n`, 2, 'user `alice` again (first on line 1)', SHA1],
  ])('%s', (_, text, line, words, secret) => {
    const error = caught(() => parseHtpasswd(text, FILE))
    expect(error).toBeInstanceOf(TypeError)
    const {message} = error as TypeError
    expect(message).toContain(`Expected line ${line} of the htpasswd file \`${FILE}\``)
    expect(message).toContain(words)
    expect(message).toContain('a bcrypt ($2y$, $2a$, $2b$), APR1 ($apr1$) or SHA1 ({SHA}) hash')
    if (secret !== undefined) expect(message).not.toContain(secret)
  })

  test.skipIf(!HTPASSWD_INSTALLED).each([
    ['-d', 'crypt(3) DES hash'],
    ['-p', 'plaintext password'],
    ['-2', 'SHA-256-crypt ($5$) hash'],
    ['-5', 'SHA-512-crypt ($6$) hash'],
  ])('htpasswd %s output is refused as a %s', (flag, words) => {
    const error = caught(() => parseHtpasswd(`# made by htpasswd\nalice:${htpasswdHash([flag], 'not-kept')}\n`, FILE))
    expect(error).toBeInstanceOf(TypeError)
    expect((error as TypeError).message).toContain(`line 2 of the htpasswd file \`${FILE}\``)
    expect((error as TypeError).message).toContain(words)
    expect((error as TypeError).message).not.toContain('not-kept')
  })
})

describe('verifyPassword', () => {
  test.each([
    ['bcrypt $2a$ (Openwall vector)', BCRYPT_2A, 'U*U', true],
    ['bcrypt $2a$, one character more', BCRYPT_2A, 'U*U*', false],
    ['bcrypt reads 72 bytes', BCRYPT_72, `${PASSWORD_72}chars after 72 are ignored`, true],
    ['bcrypt reads 72 bytes, so the prefix alone matches', BCRYPT_72, PASSWORD_72, true],
    ['bcrypt reads 72 bytes, so one byte less does not', BCRYPT_72, PASSWORD_72.slice(0, -1), false],
    ['bcrypt $2y$ from htpasswd', BCRYPT_2Y, 'battery staple', true],
    ['bcrypt $2y$, other case', BCRYPT_2Y, 'Battery staple', false],
    ['bcrypt $2b$ from bcryptjs', BCRYPT_2B, 'two-b', true],
    ['bcrypt $2b$, wrong', BCRYPT_2B, 'two-a', false],
    ['APR1 from htpasswd', APR1, 'correct horse', true],
    ['APR1, last letter changed', APR1, 'correct horsE', false],
    ['APR1 of a UTF-8 password', APR1_UTF8, 'pässwörd', true],
    ['APR1 of a UTF-8 password, ASCII look-alike', APR1_UTF8, 'passworth', false],
    ['SHA1', SHA1, 'password', true],
    ['SHA1, other case', SHA1, 'Password', false],
    ['SHA1, empty password', SHA1, '', false],
    ['never plaintext', 'secret', 'secret', false],
    ['never SHA-512-crypt', SHA512_CRYPT, '', false],
  ])('%s', async (_, hash, password, expected) => {
    expect(await verifyPassword(password, hash)).toBe(expected)
  })

  describe.skipIf(!HTPASSWD_INSTALLED)('hashes htpasswd makes now', () => {
    const passwords = ['s3cret', 'pässwörd ☃', 'with:colons:inside', ' spaces around ', '']
    test.each([
      ['bcrypt (-B -C 4)', ['-B', '-C', '4']],
      ['APR1 (-m)', ['-m']],
      ['SHA1 (-s)', ['-s']],
    ])('%s: each password verifies, a changed one does not', async (_, flags) => {
      for (const password of passwords) {
        const hash = htpasswdHash(flags, password)
        expect(parseHtpasswd(`alice:${hash}\n`, FILE).hashes.get('alice')).toBe(hash)
        expect(await verifyPassword(password, hash)).toBe(true)
        expect(await verifyPassword(`${password}x`, hash)).toBe(false)
      }
    })
  })
})

describe('verifyUser', () => {
  const users = parseHtpasswd(`alice:${APR1}\nbob:${BCRYPT_2Y}\ncarol:${SHA1}\n`, FILE)

  test.each([
    ['alice', 'correct horse', true],
    ['bob', 'battery staple', true],
    ['carol', 'password', true],
    ['alice', 'battery staple', false],
    ['bob', 'correct horse', false],
    ['mallory', 'correct horse', false],
    ['mallory', 'password', false],
    ['Alice', 'correct horse', false],
    ['__proto__', 'password', false],
    ['constructor', 'password', false],
  ])('%s with %j → %s', async (user, password, expected) => {
    expect(await verifyUser(users, user, password)).toBe(expected)
  })

  // The dummy is what an unknown user costs: it must be a well-formed hash of the costliest kind in the file, or a miss
  // would return early and tell names apart by timing.
  test.each([
    ['bcrypt at its highest cost', `a:${BCRYPT_2A}\nb:${BCRYPT_COST_7}\nc:${APR1}\n`, '$2y$07$'],
    ['bcrypt over APR1 and SHA1', `c:${APR1}\nd:${SHA1}\na:${BCRYPT_2Y}\n`, '$2y$05$'],
    ['APR1 over SHA1', `d:${SHA1}\nc:${APR1}\n`, '$apr1$'],
    ['SHA1 only', `d:${SHA1}\n`, '{SHA}'],
    ['an empty file', '', '{SHA}'],
  ])('an unknown user is checked against %s', async (_, text, prefix) => {
    const {dummyHash} = parseHtpasswd(text, FILE)
    expect(dummyHash.startsWith(prefix)).toBe(true)
    expect(usersOf(`ghost:${dummyHash}\n`)).toEqual({ghost: dummyHash})
    expect(await verifyUser(parseHtpasswd(text, FILE), 'ghost', '')).toBe(false)
  })
})
