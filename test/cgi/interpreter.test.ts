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
    return {scriptName: `/cgi-bin/${name}`, pathInfo: '', scriptFilename, nph: false, location: null, isProgram: false}
  }
  const argvOf = async (route: ScriptRoute) => (await resolver.commandFor(route)).argv
  return {dir, config, resolver, script, argvOf}
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
    const {script, argvOf} = await setup()
    const route = await script(name)
    expect(await argvOf(route)).toEqual([onSafePath(command), route.scriptFilename])
  })

  test('runs .php with php-cgi and no arguments at all (no script path for argv injection)', async () => {
    const {script, argvOf} = await setup()
    const route = await script('hello.php', '<?php echo "php ok";')
    expect(await argvOf(route)).toEqual([onSafePath('php-cgi')])
  })

  test('php-cgi runs the script from SCRIPT_FILENAME once REDIRECT_STATUS is set', async () => {
    const {script, argvOf} = await setup()
    const route = await script('hello.php', '<?php echo "php ok ", $_SERVER["REQUEST_METHOD"];')
    const [program, ...args] = await argvOf(route)
    const env = {SCRIPT_FILENAME: route.scriptFilename, REDIRECT_STATUS: '200', REQUEST_METHOD: 'GET', QUERY_STRING: '-s'}
    const {stdout} = await run(program!, args, {env})
    expect(stdout).toMatch(/^Content-type: text\/html; charset=UTF-8\r?\n\r?\nphp ok GET$/)
  })

  test('passes the extra words of an interpreter command before the script', async () => {
    const {script, argvOf} = await setup({interpreters: {'.py': ['python3', '-u']}})
    const route = await script('unbuffered.py')
    expect(await argvOf(route)).toEqual([onSafePath('python3'), '-u', route.scriptFilename])
  })

  test('runs a script with an unknown extension or none directly when it is executable', async () => {
    const {script, argvOf} = await setup()
    for (const name of ['hello', 'hello.cgi']) {
      const route = await script(name, '#!/bin/sh\necho\n', 0o755)
      expect(await argvOf(route)).toEqual([route.scriptFilename])
    }
  })

  test('refuses a script with an unknown extension that is not executable (403)', async () => {
    const {resolver, script} = await setup()
    const route = await script('hello.cgi', '#!/bin/sh\necho\n', 0o644)
    await expect(resolver.commandFor(route)).rejects.toMatchObject({status: 403, code: 'CGI_ERR_FORBIDDEN'})
  })

  test('does not need the x bit for a script with a known extension', async () => {
    const {script, argvOf} = await setup()
    const route = await script('plain.py', 'print()\n', 0o600)
    expect(await argvOf(route)).toEqual([onSafePath('python3'), route.scriptFilename])
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
    expect(await eager.argvOf(eagerRoute)).toEqual([tool, eagerRoute.scriptFilename])
    await expect(patient.resolver.commandFor(patientRoute)).rejects.toMatchObject({code: 'CGI_ERR_SCRIPT_SETUP'})
  })

  test('runs the program of a location as the program itself, whatever the path', async () => {
    const {config, argvOf} = await setup({mounts: [{prefix: '/git/', program: '/usr/lib/git-core/git-http-backend'}]})
    const location = config.locations[0]!
    const route: ScriptRoute = {
      scriptName: '/git', pathInfo: '/repo.git/info/refs', scriptFilename: location.program!, nph: false, location,
      isProgram: true,
    }
    expect(await argvOf(route)).toEqual(['/usr/lib/git-core/git-http-backend'])
  })

  test('runs a .ts page with node and source maps on its cached JavaScript', async () => {
    const {config, script, argvOf} = await setup()
    const route = await script('page.ts', 'const n: number = 6 * 7\nconsole.log(`Content-Type: text/plain\\n\\n${n}`)\n')
    const argv = await argvOf(route)
    expect(argv).toEqual([process.execPath, '--enable-source-maps', expect.stringMatching(/\.mjs$/)])
    expect(path.dirname(argv[2]!)).toBe(config.cacheDir)
    const {stdout} = await run(argv[0]!, argv.slice(1))
    expect(stdout).toBe('Content-Type: text/plain\n\n42\n')
  })
})

describe('an executable file with a #! line runs by that line (Apache, lighttpd, http.server --cgi)', () => {
  test.each([
    ['taint.pl', '#!/usr/bin/perl -wT\nprint "ok"\n', '/usr/bin/perl', false],
    ['bashism.sh', '#!/bin/bash\necho $BASH_VERSION\n', '/bin/bash', false],
    ['hello.py', '#!/usr/bin/env python3\nprint()\n', '/usr/bin/env', true],
    ['page.cgi', '#!/bin/sh\necho\n', '/bin/sh', false],
  ])('%s runs itself, its interpreter visible to the run (warm python: %s)', async (name, content, interpreter, warm) => {
    const {resolver, script} = await setup()
    const route = await script(name, content, 0o755)
    expect(await resolver.commandFor(route)).toEqual({
      argv: [route.scriptFilename], readPaths: [interpreter],
      warm: warm ? {interpreter: onSafePath('python3'), script: route.scriptFilename, argv0: 'python3'} : null,
    })
  })

  test.each([
    ['#!/usr/bin/python3', true],
    ['#!/usr/bin/python3 -u', false],
    ['#!/usr/bin/env python3', true],
    ['#!/usr/bin/env -S python3 -u', false],
    ['#!/usr/bin/perl', false],
  ])('%s may start warm: %s', async (line, warm) => {
    const {resolver, script} = await setup()
    const route = await script('page.py', `${line}\nprint()\n`, 0o755)
    expect((await resolver.commandFor(route)).warm != null).toBe(warm)
  })

  test('python3 from the map may start warm; python3 with extra words may not', async () => {
    const plain = await setup()
    expect((await plain.resolver.commandFor(await plain.script('plain.py', 'print()\n', 0o644))).warm)
      .toMatchObject({interpreter: onSafePath('python3')})
    const flagged = await setup({interpreters: {'.py': ['python3', '-u']}})
    expect((await flagged.resolver.commandFor(await flagged.script('plain.py', 'print()\n', 0o644))).warm).toBeNull()
  })

  test.each([
    ['taint.pl', '#!/usr/bin/perl -wT\n', 0o644, 'perl'],
    ['nobang.py', 'print()\n', 0o755, 'python3'],
    ['nobang.sh', 'echo\n', 0o755, 'sh'],
  ])('%s (mode %o) goes through the interpreter map: no #! line or no execute bit', async (name, content, mode, command) => {
    const {script, argvOf} = await setup()
    const route = await script(name, content, mode)
    expect(await argvOf(route)).toEqual([onSafePath(command), route.scriptFilename])
  })

  test('a .ts page always goes through the TypeScript runner, #! line or not', async () => {
    const {script, argvOf} = await setup()
    const route = await script('page.ts', '#!/usr/bin/env node\nconsole.log("Content-Type: text/plain\\n")\n', 0o755)
    expect((await argvOf(route))[0]).toBe(process.execPath)
  })

  test('php-cgi named on a #! line still gets no argument at all', async () => {
    const {script, argvOf} = await setup()
    const route = await script('page.php', `#!${onSafePath('php-cgi')}\n<?php echo 1;`, 0o755)
    expect(await argvOf(route)).toEqual([onSafePath('php-cgi')])
  })

  test('a #! interpreter that goes away is refused once missingRecheckMs has passed; an edited #! line counts at once', async () => {
    const dir = await makeTempDir('interpreter')
    const tool = path.join(dir, 'tool')
    await fs.writeFile(tool, '#!/bin/sh\n', {mode: 0o755})
    const eager = await setup({}, {missingRecheckMs: 0})
    const patient = await setup({}, {missingRecheckMs: 60_000})
    const eagerRoute = await eager.script('page.cgi', `#!${tool}\n`, 0o755)
    const patientRoute = await patient.script('page.cgi', `#!${tool}\n`, 0o755)
    expect(await eager.argvOf(eagerRoute)).toEqual([eagerRoute.scriptFilename])
    expect((await patient.resolver.commandFor(patientRoute)).readPaths).toEqual([tool])
    await fs.rm(tool)
    await expect(eager.resolver.commandFor(eagerRoute)).rejects.toMatchObject({status: 502})
    // Within the window the checked command is reused (the exec would fail and say so); a new version of the
    // script is a new key and is checked at once.
    expect((await patient.resolver.commandFor(patientRoute)).readPaths).toEqual([tool])
    await fs.writeFile(patientRoute.scriptFilename, `#!${tool} -x\n`)
    await expect(patient.resolver.commandFor(patientRoute)).rejects.toMatchObject({status: 502})
    await fs.writeFile(patientRoute.scriptFilename, '#!/bin/sh -e\n')
    expect((await patient.resolver.commandFor(patientRoute)).readPaths).toEqual(['/bin/sh'])
  })

  test.each([
    ['crlf.py', '#!/usr/bin/env python3\r\nprint()\r\n', 'bad interpreter "python3\\r": CRLF line endings'],
    ['crlf.pl', '#!/usr/bin/perl\r\n', 'bad interpreter "/usr/bin/perl\\r": CRLF line endings'],
    ['missing.rb', '#!/usr/bin/cgibox-no-such-ruby\n', 'bad interpreter "/usr/bin/cgibox-no-such-ruby" (not an executable file)'],
    ['env-missing.py', '#!/usr/bin/env cgibox-no-such-python\n', 'bad interpreter "cgibox-no-such-python" (not found on PATH'],
    ['relative.sh', '#!sh\n', 'bad interpreter "sh"'],
  ])('%s is a 502 whose log line says what is wrong', async (name, content, message) => {
    const {resolver, script} = await setup()
    const route = await script(name, content, 0o755)
    const error = await resolver.commandFor(route).then(() => null, (failure: unknown) => failure)
    expect(error).toMatchObject({status: 502})
    expect((error as Error).message).toContain(message)
  })
})
