// The README's CGI environment table is the whole list: a script receives no variable it does not name (PWD, HOME,
// HTTP_TRANSFER_ENCODING, anything of cgibox's own), and every variable it names is really set when it applies.
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {writeFile} from 'node:fs/promises'
import bcrypt from 'bcryptjs'
import {describe, expect, test} from 'vitest'
import {REPO} from '../helpers/build.js'
import {startTestServer} from '../helpers/server.js'
import {makeTempDir} from '../helpers/temp-dir.js'

// The variable names of the README's "CGI environment" table (`HTTP_*` stays a pattern).
function readmeVariables(): string[] {
  const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## CGI environment'), readme.indexOf('## Writing a script'))
  return [...section.matchAll(/^\| ((?:`[A-Z_*]+`(?:, )?)+) \|/gm)].flatMap((match) => [...match[1]!.matchAll(/`([A-Z_*]+)`/g)].map((name) => name[1]!))
}

describe.each(['none', 'rlimit', 'bwrap'] as const)('at sandbox level %s', (sandbox) => {
  test('a script gets exactly the variables the README lists', async () => {
    const listed = readmeVariables()
    expect(listed).toContain('REMOTE_USER')
    const htpasswd = path.join(await makeTempDir('env-readme'), '.htpasswd')
    await writeFile(htpasswd, `ada:${bcrypt.hashSync('pw', 4).replace(/^\$2b\$/, '$2y$')}\n`)
    const server = await startTestServer({sandbox, locations: [{prefix: '/cgi-bin/', auth: {realm: 'r', htpasswd}}]})
    // Every kind of input there is: a streamed (chunked, so spooled) body, a content type, PATH_INFO, a query, auth.
    const response = await fetch(`${server.url}cgi-bin/environ.pl/extra/path?a=1`, {
      method: 'POST',
      headers: {
        'Authorization': `Basic ${Buffer.from('ada:pw').toString('base64')}`, 'Content-Type': 'text/plain',
        'Cookie': 'a=1', 'X-Custom': 'yes', 'Proxy': 'http://evil.example',
      },
      body: new Blob(['hello']).stream(),
      duplex: 'half',
    } as RequestInit)
    expect(response.status).toBe(200)
    const received = (await response.text()).trim().split('\n').map((line) => line.slice(0, line.indexOf('=')))
    const unlisted = received.filter((name) => !listed.includes(name) && !name.startsWith('HTTP_'))
    expect(unlisted).toEqual([])
    // HTTPS only over TLS; TMPDIR outside bwrap (bwrap runs have a private /tmp instead).
    const applicable = listed.filter((name) => name !== 'HTTP_*' && name !== 'HTTPS' && !(name === 'TMPDIR' && sandbox === 'bwrap'))
    expect(applicable.filter((name) => !received.includes(name))).toEqual([])
    expect(received).not.toContain('HTTP_PROXY')
    expect(received).not.toContain('HTTP_TRANSFER_ENCODING')
    expect(received).not.toContain('HTTP_AUTHORIZATION')
  })
})
