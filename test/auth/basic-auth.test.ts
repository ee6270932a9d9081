// HTTP Basic authentication against real htpasswd files in a temp dir: good and bad credentials, strict header
// parsing, the challenge, and the file changing, breaking and vanishing under a running checker.
import {chmod, mkdir, rename, rm, utimes, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {describe, expect, onTestFinished, test} from 'vitest'
import {createBasicAuth, formatChallenge, parseBasicCredentials, type BasicAuthOptions} from '../../src/auth/basic-auth.js'
import {HTPASSWD_INSTALLED, htpasswdHash} from '../helpers/htpasswd.js'
import {makeTempDir} from '../helpers/temp-dir.js'

// Made with Apache htpasswd 2.4 and pasted (see htpasswd.test.ts): `-B -C 5` 'battery staple', `-m` 'correct horse',
// `-m` 'pässwörd', and {SHA} of 'password'.
const BOB_BCRYPT = '$2y$05$Ktn/.v0//5hZJe/fsXkmTuSka6q7zeyu9/fP6Dk/UW0t3fgHaKF0q'
const ALICE_APR1 = '$apr1$P9IHcd4U$nripEDZzUSqUCYS/5CmHm0'
const JURGEN_APR1 = '$apr1$lnxAFHrd$2bH03sHK545DlesawuzTn.'
const CAROL_SHA1 = '{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g='
const USERS = `# test users\nalice:${ALICE_APR1}\nbob:${BOB_BCRYPT}\ncarol:${CAROL_SHA1}\njürgen:${JURGEN_APR1}\n`
// 'new password', as `htpasswd -s` and `htpasswd -m` wrote it (the APR1 one is as long as ALICE_APR1).
const ALICE_NEW_SHA1 = '{SHA}ofxWjoEE2RWAB5WUEBA1uS4/zOE='
const ALICE_NEW_APR1 = '$apr1$MPixwwW9$9.8EzH9EhUhklkaD8FcXE1'
// The expect.poll budget for a change on disk to be seen (the check interval is 1 s).
const SEEN_WITHIN_MS = 5_000

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`
const b64 = (bytes: string | Buffer) => Buffer.from(bytes).toString('base64')

async function usersFile(text: string): Promise<string> {
  const file = path.join(await makeTempDir('auth'), 'users.htpasswd')
  await writeFile(file, text)
  return file
}

async function startAuth(htpasswd: string, options: Partial<BasicAuthOptions> = {}) {
  const auth = await createBasicAuth({realm: 'git', htpasswd, ...options})
  onTestFinished(() => auth.close())
  return auth
}

describe('authenticate', () => {
  test.each([
    ['alice', 'correct horse', 'APR1'],
    ['bob', 'battery staple', 'bcrypt'],
    ['carol', 'password', 'SHA1'],
    ['jürgen', 'pässwörd', 'APR1 with UTF-8 user and password'],
  ])('%s with the right password (%s) is let in', async (user, password) => {
    const auth = await startAuth(await usersFile(USERS))
    expect(await auth.authenticate(basic(user, password))).toBe(user)
  })

  test.each([
    ['a wrong password', 'alice', 'correct horse!'],
    ['another user\'s password', 'alice', 'battery staple'],
    ['an empty password', 'carol', ''],
    ['an unknown user', 'mallory', 'correct horse'],
    ['a user name in another case', 'Alice', 'correct horse'],
    ['the password as Latin-1 would be another password', 'jürgen', 'p\u00c3\u00a4ssw\u00c3\u00b6rd'],
  ])('%s → null', async (_, user, password) => {
    const auth = await startAuth(await usersFile(USERS))
    expect(await auth.authenticate(basic(user, password))).toBeNull()
  })

  test.skipIf(!HTPASSWD_INSTALLED).each([
    ['bcrypt (-B -C 4)', ['-B', '-C', '4']],
    ['APR1 (-m)', ['-m']],
    ['SHA1 (-s)', ['-s']],
  ])('a file htpasswd wrote with %s lets its users in', async (_, flags) => {
    const lines = [['zoë', 'mot de passe ☃'], ['dave', 'pa:ss:word'], ['erin', '']]
      .map(([user, password]) => `${user!}:${htpasswdHash(flags, password!, user)}`)
    const auth = await startAuth(await usersFile(`${lines.join('\n')}\n`))
    expect(await auth.authenticate(basic('zoë', 'mot de passe ☃'))).toBe('zoë')
    expect(await auth.authenticate(basic('dave', 'pa:ss:word'))).toBe('dave')
    expect(await auth.authenticate(basic('erin', ''))).toBe('erin')
    expect(await auth.authenticate(basic('dave', 'pa'))).toBeNull()
    expect(await auth.authenticate(basic('zoë', 'mot de passe'))).toBeNull()
  })

  test('many requests with the same credentials at once are all let in', async () => {
    const auth = await startAuth(await usersFile(USERS))
    const results = await Promise.all(Array.from({length: 20}, () => auth.authenticate(basic('bob', 'battery staple'))))
    expect(results).toEqual(Array.from({length: 20}, () => 'bob'))
  })
})

describe('parseBasicCredentials', () => {
  test.each([
    ['the usual form', `Basic ${b64('alice:pw')}`, {user: 'alice', password: 'pw'}],
    ['a lower-case scheme', `basic ${b64('alice:pw')}`, {user: 'alice', password: 'pw'}],
    ['an upper-case scheme', `BASIC ${b64('alice:pw')}`, {user: 'alice', password: 'pw'}],
    ['two spaces after the scheme', `Basic  ${b64('alice:pw')}`, {user: 'alice', password: 'pw'}],
    ['colons in the password (split at the first)', `Basic ${b64('alice:a:b:')}`, {user: 'alice', password: 'a:b:'}],
    ['an empty password', `Basic ${b64('alice:')}`, {user: 'alice', password: ''}],
    ['UTF-8', `Basic ${b64('jürgen:pässwörd')}`, {user: 'jürgen', password: 'pässwörd'}],
    ['a byte order mark kept as part of the user', `Basic ${b64('\uFEFFalice:pw')}`, {user: '\uFEFFalice', password: 'pw'}],
  ])('%s', (_, header, expected) => {
    expect(parseBasicCredentials(header)).toEqual(expected)
  })

  // Each of these would give alice:pw to a lenient parser.
  test.each([
    ['no header', undefined],
    ['an empty header', ''],
    ['the scheme alone', 'Basic'],
    ['the scheme and a space', 'Basic '],
    ['not base64', 'Basic !!!'],
    ['another scheme', `Bearer ${b64('alice:pw')}`],
    ['Digest', 'Digest username="alice", realm="git"'],
    ['no colon', `Basic ${b64('alicepw')}`],
    ['an empty user-id', `Basic ${b64(':pw')}`],
    ['missing padding', `Basic ${b64('alice:pw').replace(/=+$/, '')}`],
    ['extra padding', `Basic ${b64('alice:pw')}=`],
    ['padding in the middle', `Basic ${b64('ab')}${b64('alice:pw')}`],
    ['base64url characters', `Basic ${b64('alice:pw?>').replace(/\//g, '_').replace(/\+/g, '-')}`],
    ['a leading space', ` Basic ${b64('alice:pw')}`],
    ['a trailing space', `Basic ${b64('alice:pw')} `],
    ['a second token', `Basic ${b64('alice:pw')} ${b64('alice:pw')}`],
    ['auth-params instead of a token', 'Basic user="alice", password="pw"'],
    ['a tab instead of a space', `Basic\t${b64('alice:pw')}`],
    ['no space after the scheme', `Basic${b64('alice:pw')}`],
    ['bytes that are not UTF-8', `Basic ${b64(Buffer.from('alice:p\u00e4ss', 'latin1'))}`],
    ['a control character in the user-id', `Basic ${b64('ali\u0000ce:pw')}`],
    ['a control character in the password', `Basic ${b64('alice:p\nw')}`],
    ['DEL in the password', `Basic ${b64('alice:pw\u007f')}`],
    ['credentials longer than 4096 characters', `Basic ${b64(`alice:${'p'.repeat(4000)}`)}`],
  ])('%s → null', (_, header) => {
    expect(parseBasicCredentials(header)).toBeNull()
  })

  test('each rejected header is also rejected by authenticate', async () => {
    const auth = await startAuth(await usersFile(`alice:${ALICE_APR1}\nlatin:${JURGEN_APR1}\n`))
    for (const header of ['Basic', 'Basic !!!', `Bearer ${b64('alice:correct horse')}`, `Basic ${b64('alicecorrect horse')}`,
      `Basic ${b64('alice:correct horse').replace(/=+$/, '')}`, `Basic ${b64(Buffer.from('latin:pässwörd', 'latin1'))}`]) {
      expect(await auth.authenticate(header)).toBeNull()
    }
    expect(await auth.authenticate(`basic ${b64('alice:correct horse')}`)).toBe('alice')
  })
})

describe('challenge', () => {
  test.each([
    ['git', 'Basic realm="git", charset="UTF-8"'],
    ['Private area', 'Basic realm="Private area", charset="UTF-8"'],
    ['say "hi"', 'Basic realm="say \\"hi\\"", charset="UTF-8"'],
    ['back\\slash', 'Basic realm="back\\\\slash", charset="UTF-8"'],
    ['",x="', 'Basic realm="\\",x=\\"", charset="UTF-8"'],
  ])('realm %j → %s', async (realm, expected) => {
    expect(formatChallenge(realm)).toBe(expected)
    const auth = await startAuth(await usersFile(USERS), {realm})
    expect(auth.challenge).toBe(expected)
  })

  test.each([
    ['empty', ''],
    ['CRLF (header injection)', 'git\r\nSet-Cookie: x=1'],
    ['a NUL', 'g\0it'],
    ['a tab', 'g\tit'],
    ['non-ASCII', 'Zürich'],
  ])('a realm that is %s is refused at creation', async (_, realm) => {
    const htpasswd = await usersFile(USERS)
    await expect(createBasicAuth({realm, htpasswd})).rejects.toThrow(TypeError)
    await expect(createBasicAuth({realm, htpasswd})).rejects.toThrow(/Expected the `realm` option/)
  })
})

describe('creation', () => {
  test('a missing file is a TypeError naming the path', async () => {
    const htpasswd = path.join(await makeTempDir('auth'), 'missing.htpasswd')
    const error = await createBasicAuth({realm: 'git', htpasswd}).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(TypeError)
    expect((error as TypeError).message).toContain(`\`${htpasswd}\` (ENOENT)`)
  })

  test('a directory is a TypeError naming the path', async () => {
    const htpasswd = await makeTempDir('auth')
    const error = await createBasicAuth({realm: 'git', htpasswd}).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(TypeError)
    expect((error as TypeError).message).toContain(`\`${htpasswd}\` (EISDIR)`)
  })

  // Root reads files whatever their mode, so this runs only as another user.
  test.skipIf(process.getuid?.() === 0)('a file without read permission is a TypeError naming the path', async () => {
    const htpasswd = await usersFile(USERS)
    await chmod(htpasswd, 0o000)
    await expect(createBasicAuth({realm: 'git', htpasswd})).rejects.toThrow(`\`${htpasswd}\` (EACCES)`)
  })

  test('a refused line is a TypeError naming the file and the line', async () => {
    const htpasswd = await usersFile(`alice:${ALICE_APR1}\nbob:plaintext\n`)
    const error = await createBasicAuth({realm: 'git', htpasswd}).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(TypeError)
    expect((error as TypeError).message).toContain(`line 2 of the htpasswd file \`${htpasswd}\``)
  })

  test.each([
    ['a relative htpasswd path', {htpasswd: 'users.htpasswd'}, /`htpasswd` option to be an absolute path/],
    ['a negative checkIntervalMs', {checkIntervalMs: -1}, /`checkIntervalMs` option to be an integer >= 0/],
    ['a fractional checkIntervalMs', {checkIntervalMs: 0.5}, /`checkIntervalMs` option to be an integer >= 0/],
  ])('%s is a TypeError', async (_, options, message) => {
    const htpasswd = await usersFile(USERS)
    await expect(createBasicAuth({realm: 'git', htpasswd, ...options})).rejects.toThrow(message)
  })
})

describe('the file changing', () => {
  test.each([
    ['rewritten in place', async (file: string, text: string) => writeFile(file, text)],
    ['replaced by rename', async (file: string, text: string) => {
      await writeFile(`${file}.new`, text)
      await rename(`${file}.new`, file)
    }],
  ])('%s: the new password works and the old one no longer does', async (_, replace) => {
    const file = await usersFile(USERS)
    const auth = await startAuth(file)
    expect(await auth.authenticate(basic('alice', 'correct horse'))).toBe('alice')
    await replace(file, `alice:${ALICE_NEW_SHA1}\n`)
    await expect.poll(() => auth.authenticate(basic('alice', 'new password')), {timeout: SEEN_WITHIN_MS}).toBe('alice')
    expect(await auth.authenticate(basic('alice', 'correct horse'))).toBeNull()
    expect(await auth.authenticate(basic('bob', 'battery staple'))).toBeNull()
  })

  // cp -p and rsync -t --inplace write new bytes and then put the old mtime back; only ctime tells.
  test('new contents of the same size under the old mtime are seen', async () => {
    const file = await usersFile(`alice:${ALICE_APR1}\n`)
    const then = new Date('2020-01-01T00:00:00Z')
    await utimes(file, then, then)
    const auth = await startAuth(file)
    expect(await auth.authenticate(basic('alice', 'correct horse'))).toBe('alice')
    await writeFile(file, `alice:${ALICE_NEW_APR1}\n`)
    await utimes(file, then, then)
    await expect.poll(() => auth.authenticate(basic('alice', 'new password')), {timeout: SEEN_WITHIN_MS}).toBe('alice')
    expect(await auth.authenticate(basic('alice', 'correct horse'))).toBeNull()
  })

  test('a remembered success does not survive a change of the file', async () => {
    const file = await usersFile(USERS)
    const auth = await startAuth(file)
    expect(await auth.authenticate(basic('bob', 'battery staple'))).toBe('bob')
    expect(await auth.authenticate(basic('bob', 'battery staple'))).toBe('bob')
    await writeFile(file, `bob:${ALICE_NEW_SHA1}\n`)
    await expect.poll(() => auth.authenticate(basic('bob', 'battery staple')), {timeout: SEEN_WITHIN_MS}).toBeNull()
    expect(await auth.authenticate(basic('bob', 'new password'))).toBe('bob')
  })

  test('a bad version keeps the last good contents and is reported once; a good one is taken again', async () => {
    const file = await usersFile(USERS)
    const messages: string[] = []
    // Interval 0: every call looks at the file, so each call below is one more chance to report twice.
    const auth = await startAuth(file, {checkIntervalMs: 0, onError: (message) => messages.push(message)})
    await writeFile(file, `alice:${ALICE_NEW_SHA1}\nbob:hunter2\n`)
    for (let attempt = 0; attempt < 5; attempt++) {
      expect(await auth.authenticate(basic('alice', 'correct horse'))).toBe('alice')
      expect(await auth.authenticate(basic('alice', 'new password'))).toBeNull()
    }
    expect(messages).toHaveLength(1)
    expect(messages[0]).toContain(`line 2 of the htpasswd file \`${file}\``)
    expect(messages[0]).not.toContain('hunter2')

    await rm(file)
    for (let attempt = 0; attempt < 3; attempt++) {
      expect(await auth.authenticate(basic('alice', 'correct horse'))).toBe('alice')
    }
    expect(messages).toHaveLength(2)
    expect(messages[1]).toContain('ENOENT')
    expect(messages[1]).toContain(file)

    await mkdir(file)
    expect(await auth.authenticate(basic('alice', 'correct horse'))).toBe('alice')
    expect(messages).toHaveLength(3)
    expect(messages[2]).toContain('EISDIR')
    await rm(file, {recursive: true})

    await writeFile(file, `alice:${ALICE_NEW_SHA1}\n`)
    expect(await auth.authenticate(basic('alice', 'new password'))).toBe('alice')
    expect(await auth.authenticate(basic('alice', 'correct horse'))).toBeNull()
    expect(messages).toHaveLength(3)
  })

  test('after close() the file is no longer looked at', async () => {
    const file = await usersFile(USERS)
    const auth = await startAuth(file, {checkIntervalMs: 0})
    auth.close()
    await writeFile(file, `alice:${ALICE_NEW_SHA1}\n`)
    expect(await auth.authenticate(basic('alice', 'new password'))).toBeNull()
    expect(await auth.authenticate(basic('alice', 'correct horse'))).toBe('alice')
  })
})
