// Under bwrap a .ts page sees only its own compiled file, never the shared cache: a page under htdocs must not read
// the compiled cgi-bin/admin/secret.ts (and the API key in it) although cgi-bin/admin is not visible to it.
import {mkdir, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {expect, test} from 'vitest'
import {startTestServer} from '../helpers/server.js'
import {makeTempDir} from '../helpers/temp-dir.js'

test('a page under bwrap cannot list or read the other pages in the .ts cache', async () => {
  const site = await makeTempDir('ts-cache')
  const htdocs = path.join(site, 'htdocs')
  const admin = path.join(site, 'cgi-bin', 'admin')
  await mkdir(htdocs)
  await mkdir(admin, {recursive: true})
  await writeFile(path.join(admin, 'secret.ts'), [
    'const apiKey: string = "sk-cgibox-test-secret"',
    'console.log("Content-Type: text/plain\\n")',
    'console.log(apiKey.length)',
  ].join('\n'))
  // The attack: the page's own compiled file lies in the cache; look around it for other pages' code.
  await writeFile(path.join(htdocs, 'peek.ts'), [
    'import fs from "node:fs"',
    'import path from "node:path"',
    'const dir = path.dirname(process.argv[1]!)',
    'let found = "nothing"',
    'let listing: string[] = []',
    'try { listing = fs.readdirSync(dir) } catch (error) { listing = [String((error as Error).message)] }',
    'for (const name of listing) {',
    '  try { if (fs.readFileSync(path.join(dir, name), "utf8").includes(["sk-cgibox", "test-secret"].join("-"))) found = name } catch {}',
    '}',
    'console.log("Content-Type: text/plain\\n")',
    'console.log(JSON.stringify({found, listing}))',
  ].join('\n'))
  const server = await startTestServer({sandbox: 'bwrap', htdocs, cgiBin: path.join(site, 'cgi-bin')})
  // The secret page is compiled into the cache first (and works).
  expect(await (await fetch(`${server.url}cgi-bin/admin/secret.ts`)).text()).toBe('21\n')
  const response = await fetch(`${server.url}peek.ts`)
  expect(response.status).toBe(200)
  const {found, listing} = JSON.parse(await response.text()) as {found: string; listing: string[]}
  // It did look where the other pages' code would be: its own compiled file is there, and nothing else of the cache.
  expect(listing.some((name) => name.startsWith('peek-'))).toBe(true)
  expect(found).toBe('nothing')
  expect(listing.some((name) => name.startsWith('secret-'))).toBe(false)
})
