// A .ts page is built by the server, before any sandbox: it may import only from its roots.
import {mkdir, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {expect, test} from 'vitest'
import {createTsRunner} from '../../src/cgi/ts-runner.js'
import {makeTempDir} from '../helpers/temp-dir.js'

test.each([
  ['a text import of /etc/passwd', `import text from '/etc/passwd' with {type: 'text'}\nconsole.log(text)\n`],
  ['a JSON import outside the roots', `import data from '../outside/secret.json'\nconsole.log(data)\n`],
])('%s is refused at build time (CGI_ERR_SCRIPT_SETUP)', async (_name, page) => {
  const dir = await makeTempDir('ts-confine')
  await mkdir(path.join(dir, 'site'))
  await mkdir(path.join(dir, 'outside'))
  await writeFile(path.join(dir, 'outside', 'secret.json'), '{"apiKey": "TOP-SECRET"}')
  await writeFile(path.join(dir, 'site', 'page.ts'), page)
  const runner = createTsRunner(path.join(dir, 'cache'), [path.join(dir, 'site')])
  await expect(runner.compile(path.join(dir, 'site', 'page.ts'))).rejects.toMatchObject({code: 'CGI_ERR_SCRIPT_SETUP'})
})

test('imports inside the roots still build', async () => {
  const dir = await makeTempDir('ts-confine')
  await mkdir(path.join(dir, 'site', 'lib'), {recursive: true})
  await writeFile(path.join(dir, 'site', 'lib', 'data.json'), '{"ok": true}')
  await writeFile(path.join(dir, 'site', 'page.ts'), `import data from './lib/data.json'\nconsole.log(data.ok)\n`)
  const runner = createTsRunner(path.join(dir, 'cache'), [path.join(dir, 'site')])
  await expect(runner.compile(path.join(dir, 'site', 'page.ts'))).resolves.toMatch(/\.mjs$/)
})
