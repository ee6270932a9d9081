// Which argv runs a script: interpreter table, shebang scripts, php-cgi, missing interpreters, TypeScript pages.
import {execFile} from 'node:child_process'
import {existsSync} from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import {promisify} from 'node:util'
import {describe, expect, test} from 'vitest'
import {normalizeConfig, type RawConfig} from '../../src/config.js'
import {createCommandResolver, SAFE_PATH, type CommandResolverOptions} from '../../src/cgi/interpreter.js'
import type {ScriptRoute} from '../../src/route.js'
import {makeTempDir} from '../helpers/temp-dir.js'

const run = promisify(execFile)

async function setup(raw: RawConfig = {}, options: CommandResolverOptions = {}) {
  const dir = await makeTempDir('interpreter')
  const cgiBin = path.join(dir, 'cgi-bin')
  await fs.mkdir(cgiBin)
  const config = normalizeConfig({cgiBin, htdocs: dir, cacheDir: path.join(dir, 'cache'), ...raw}, dir)
  const resolver = createCommandResolver(config, options)
  const script = async (name: string, content = '#!/bin/sh\necho\n', mode = 0o644): Promise<ScriptRoute> => {
    const scriptFilename = path.join(cgiBin, name)
    await fs.writeFile(scriptFilename, content, {mode})
    await fs.chmod(scriptFilename, mode)
    return {scriptName: `/cgi-bin/${name}`, pathInfo: '', scriptFilename, nph: false, mount: null, inCgiBin: true}
  }
  return {dir, config, resolver, script}
}

// Where the resolver should find a command: the first directory of the safe PATH holding it.
function onSafePath(command: string): string {
  const found = SAFE_PATH.split(':').map((dir) => path.join(dir, command)).find((file) => existsSync(file))
  if (found === undefined) throw new Error(`test needs ${command} installed on ${SAFE_PATH}`)
  return found
}

describe('commandFor', () => {
  test.each([
    ['hello.py', 'python3'],
    ['HELLO.PY', 'python3'],
    ['hello.pl', 'perl'],
    ['hello.sh', 'sh'],
    ['hello.mjs', 'node'],
  ])('runs %s with %s from the safe PATH, the script as the only argument', async (name, command) => {
    const {resolver, script} = await setup()
    const route = await script(name)
    expect(await resolver.commandFor(route)).toEqual([onSafePath(command), route.scriptFilename])
  })

  test('runs .php with php-cgi and no arguments at all (no script path for argv injection)', async () => {
    const {resolver, script} = await setup()
    const route = await script('hello.php', '<?php echo "php ok";')
    expect(await resolver.commandFor(route)).toEqual([onSafePath('php-cgi')])
  })

  test('php-cgi runs the script from SCRIPT_FILENAME once REDIRECT_STATUS is set', async () => {
    const {resolver, script} = await setup()
    const route = await script('hello.php', '<?php echo "php ok ", $_SERVER["REQUEST_METHOD"];')
    const [program, ...args] = await resolver.commandFor(route)
    const env = {SCRIPT_FILENAME: route.scriptFilename, REDIRECT_STATUS: '200', REQUEST_METHOD: 'GET', QUERY_STRING: '-s'}
    const {stdout} = await run(program!, args, {env})
    expect(stdout).toMatch(/^Content-type: text\/html; charset=UTF-8\r?\n\r?\nphp ok GET$/)
  })

  test('passes the extra words of an interpreter command before the script', async () => {
    const {resolver, script} = await setup({interpreters: {'.py': ['python3', '-u']}})
    const route = await script('unbuffered.py')
    expect(await resolver.commandFor(route)).toEqual([onSafePath('python3'), '-u', route.scriptFilename])
  })

  test('runs a script with an unknown extension or none directly when it is executable', async () => {
    const {resolver, script} = await setup()
    for (const name of ['hello', 'hello.cgi']) {
      const route = await script(name, '#!/bin/sh\necho\n', 0o755)
      expect(await resolver.commandFor(route)).toEqual([route.scriptFilename])
    }
  })

  test('refuses a script with an unknown extension that is not executable (403)', async () => {
    const {resolver, script} = await setup()
    const route = await script('hello.cgi', '#!/bin/sh\necho\n', 0o644)
    await expect(resolver.commandFor(route)).rejects.toMatchObject({status: 403, code: 'CGI_ERR_FORBIDDEN'})
  })

  test('does not need the x bit for a script with a known extension', async () => {
    const {resolver, script} = await setup()
    const route = await script('plain.py', 'print()\n', 0o600)
    expect(await resolver.commandFor(route)).toEqual([onSafePath('python3'), route.scriptFilename])
  })

  test('fails with a setup error (500) naming an interpreter that is not installed', async () => {
    const {resolver, script} = await setup({interpreters: {'.xyz': ['definitely-not-installed-xyz']}})
    const route = await script('page.xyz')
    await expect(resolver.commandFor(route)).rejects.toMatchObject({
      status: 500,
      code: 'CGI_ERR_SCRIPT_SETUP',
      message: expect.stringContaining('"definitely-not-installed-xyz" for .xyz'),
    })
  })

  test('looks a missing interpreter up again only after missingRecheckMs', async () => {
    const dir = await makeTempDir('interpreter')
    const tool = path.join(dir, 'tool')
    const raw = {interpreters: {'.abc': [tool]}}
    const eager = await setup(raw, {missingRecheckMs: 0})
    const patient = await setup(raw, {missingRecheckMs: 60_000})
    const eagerRoute = await eager.script('page.abc')
    const patientRoute = await patient.script('page.abc')
    await expect(eager.resolver.commandFor(eagerRoute)).rejects.toMatchObject({code: 'CGI_ERR_SCRIPT_SETUP'})
    await expect(patient.resolver.commandFor(patientRoute)).rejects.toMatchObject({code: 'CGI_ERR_SCRIPT_SETUP'})
    await fs.writeFile(tool, '#!/bin/sh\n', {mode: 0o755})
    expect(await eager.resolver.commandFor(eagerRoute)).toEqual([tool, eagerRoute.scriptFilename])
    await expect(patient.resolver.commandFor(patientRoute)).rejects.toMatchObject({code: 'CGI_ERR_SCRIPT_SETUP'})
  })

  test('runs a program mount as the program itself, whatever the path', async () => {
    const {config, resolver} = await setup({mounts: [{prefix: '/git/', program: '/usr/lib/git-core/git-http-backend'}]})
    const mount = config.mounts[0]!
    const route: ScriptRoute = {
      scriptName: '/git', pathInfo: '/repo.git/info/refs', scriptFilename: mount.program, nph: false, mount, inCgiBin: false,
    }
    expect(await resolver.commandFor(route)).toEqual(['/usr/lib/git-core/git-http-backend'])
  })

  test('runs a .ts page with node and source maps on its cached JavaScript', async () => {
    const {config, resolver, script} = await setup()
    const route = await script('page.ts', 'const n: number = 6 * 7\nconsole.log(`Content-Type: text/plain\\n\\n${n}`)\n')
    const argv = await resolver.commandFor(route)
    expect(argv).toEqual([process.execPath, '--enable-source-maps', expect.stringMatching(/\.mjs$/)])
    expect(path.dirname(argv[2]!)).toBe(config.cacheDir)
    const {stdout} = await run(argv[0]!, argv.slice(1))
    expect(stdout).toBe('Content-Type: text/plain\n\n42\n')
  })
})
