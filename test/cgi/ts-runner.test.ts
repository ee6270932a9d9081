// TypeScript pages: transpiled once per change of any input, cached on disk, run by real node with source maps.
import {execFile} from 'node:child_process'
import fs from 'node:fs/promises'
import path from 'node:path'
import {setTimeout} from 'node:timers/promises'
import {promisify} from 'node:util'
import {describe, expect, test} from 'vitest'
import {createTsRunner} from '../../src/cgi/ts-runner.js'
import {ScriptSetupError} from '../../src/errors.js'
import {makeTempDir} from '../helpers/temp-dir.js'

const run = promisify(execFile)

// A temp dir with the pages and a cache dir; every file written gets an mtime in the past, one second apart,
// so a test decides when a file counts as edited (a file modified during a build is rebuilt once more).
async function setup() {
  const dir = await makeTempDir('ts')
  const cacheDir = path.join(dir, 'cache')
  let clockSec = Math.floor(Date.now() / 1000) - 1000
  const write = async (name: string, content: string): Promise<string> => {
    const file = path.join(dir, name)
    await fs.mkdir(path.dirname(file), {recursive: true})
    await fs.writeFile(file, content)
    clockSec += 1
    await fs.utimes(file, clockSec, clockSec)
    return file
  }
  return {dir, cacheDir, runner: createTsRunner(cacheDir), write}
}

// Runs the cached JavaScript the way the resolver's argv does.
async function runNode(output: string): Promise<{stdout: string; stderr: string; code: number}> {
  try {
    const {stdout, stderr} = await run(process.execPath, ['--enable-source-maps', output])
    return {stdout, stderr, code: 0}
  } catch (error) {
    const {stdout, stderr, code} = error as {stdout: string; stderr: string; code: number}
    return {stdout, stderr, code}
  }
}

const page = (body: string): string => `interface Reply { readonly text: string }\nconst reply: Reply = {text: ${body}}\n` +
  'console.log(`Content-Type: text/plain\\n\\n${reply.text}`)\n'

describe('createTsRunner', () => {
  test('transpiles on the first request and node runs the result', async () => {
    const {runner, write, cacheDir} = await setup()
    const source = await write('page.ts', page('"first"'))
    const output = await runner.compile(source)
    expect(path.dirname(output)).toBe(cacheDir)
    expect(output).toMatch(/\.mjs$/)
    expect((await runNode(output)).stdout).toBe('Content-Type: text/plain\n\nfirst\n')
    expect(runner.stats).toEqual({builds: 1, hits: 0, diskHits: 0})
  })

  test('answers a warm request from stat() checks without building', async () => {
    const {runner, write} = await setup()
    const source = await write('page.ts', page('"warm"'))
    const first = await runner.compile(source)
    expect(await runner.compile(source)).toBe(first)
    expect(await runner.compile(source)).toBe(first)
    expect(runner.stats).toEqual({builds: 1, hits: 2, diskHits: 0})
  })

  test('sees an edit of the page on the next request', async () => {
    const {runner, write} = await setup()
    const source = await write('page.ts', page('"before"'))
    await runner.compile(source)
    await write('page.ts', page('"after"'))
    expect((await runNode(await runner.compile(source))).stdout).toContain('after')
    expect(runner.stats.builds).toBe(2)
  })

  test('sees an edit of an imported module on the next request', async () => {
    const {runner, write} = await setup()
    await write('lib/greeting.ts', 'export const greeting: string = "hello"\n')
    const source = await write('page.ts', 'import {greeting} from "./lib/greeting.js"\nconsole.log(greeting)\n')
    expect((await runNode(await runner.compile(source))).stdout).toBe('hello\n')
    await write('lib/greeting.ts', 'export const greeting: string = "goodbye"\n')
    expect((await runNode(await runner.compile(source))).stdout).toBe('goodbye\n')
  })

  test('transpiles once for 10 concurrent first requests', async () => {
    const {runner, write} = await setup()
    const source = await write('page.ts', page('"once"'))
    const outputs = await Promise.all(Array.from({length: 10}, () => runner.compile(source)))
    expect(new Set(outputs).size).toBe(1)
    expect(runner.stats.builds).toBe(1)
  })

  test('transpiles once for 10 concurrent requests after an edit', async () => {
    const {runner, write} = await setup()
    const source = await write('page.ts', page('"v1"'))
    await runner.compile(source)
    await write('page.ts', page('"v2"'))
    await Promise.all(Array.from({length: 10}, () => runner.compile(source)))
    expect(runner.stats.builds).toBe(2)
  })

  test('reuses the cache of a previous process (restart) and still sees later edits', async () => {
    const {runner, write, cacheDir} = await setup()
    const source = await write('page.ts', page('"kept"'))
    const output = await runner.compile(source)
    const restarted = createTsRunner(cacheDir)
    expect(await restarted.compile(source)).toBe(output)
    expect(restarted.stats).toEqual({builds: 0, hits: 0, diskHits: 1})
    await write('page.ts', page('"changed"'))
    expect((await runNode(await createTsRunner(cacheDir).compile(source))).stdout).toContain('changed')
  })

  test('rebuilds when the cached file was removed', async () => {
    const {runner, write} = await setup()
    const source = await write('page.ts', page('"again"'))
    await fs.rm(await runner.compile(source))
    expect((await runNode(await runner.compile(source))).stdout).toContain('again')
    expect(runner.stats.builds).toBe(2)
  })

  test('builds again when the page was modified while it was being built', async () => {
    const {runner, write} = await setup()
    const source = await write('page.ts', page('"racy"'))
    const now = Date.now() / 1000
    await fs.utimes(source, now, now) // as if saved just as the build started
    await runner.compile(source)
    await setTimeout(100) // the rebuild then starts well after the mtime and trusts it
    await runner.compile(source)
    await runner.compile(source)
    expect(runner.stats).toMatchObject({builds: 2, hits: 1})
  })

  test('fails a syntax error with a setup error (500) carrying esbuild\'s message', async () => {
    const {runner, write} = await setup()
    const source = await write('broken.ts', 'const x: number = (1 +\nconsole.log(x\n')
    const error = await runner.compile(source).catch((caught: unknown) => caught)
    expect(error).toBeInstanceOf(ScriptSetupError)
    expect(error).toMatchObject({status: 500, code: 'CGI_ERR_SCRIPT_SETUP'})
    expect((error as Error).message).toContain(`${source}:3:1: Expected ")" but found end of file`)
  })

  test('runs a page with a type error (esbuild does not type-check)', async () => {
    const {runner, write} = await setup()
    const source = await write('typo.ts', 'const n: number = "not a number"\nconsole.log(n)\n')
    expect((await runNode(await runner.compile(source))).stdout).toBe('not a number\n')
  })

  test('reports the .ts file and line of a thrown error in the stack trace', async () => {
    const {runner, write} = await setup()
    await write('lib/fail.ts', 'type Code = number\n\nexport function fail(code: Code): never {\n  throw new Error(`failed ${code}`)\n}\n')
    const source = await write('page.ts', 'import {fail} from "./lib/fail.js"\n\ninterface A { b: number }\nconst a: A = {b: 7}\nfail(a.b)\n')
    const {stderr, code} = await runNode(await runner.compile(source))
    expect(code).not.toBe(0)
    expect(stderr).toContain('Error: failed 7')
    expect(stderr).toContain(`at fail (${path.dirname(source)}/lib/fail.ts:4:9)`)
    expect(stderr).toContain(`${source}:5:1`)
  })

  test('loads packages from node_modules next to the page, as node would (import condition, not module)', async () => {
    const {runner, write} = await setup()
    await write('node_modules/dual/package.json', JSON.stringify({
      name: 'dual', exports: {module: './bundler.mjs', import: './esm.mjs', require: './cjs.cjs'},
    }))
    await write('node_modules/dual/esm.mjs', 'export const flavour = "esm"\n')
    await write('node_modules/dual/cjs.cjs', 'exports.flavour = "cjs"\n')
    await write('node_modules/dual/bundler.mjs', 'export const flavour = "bundler"\n')
    const source = await write('page.mts', 'import {flavour} from "dual"\nconsole.log(flavour)\n')
    const result = await runNode(await runner.compile(source))
    expect(result).toMatchObject({stdout: 'esm\n', code: 0})
  })

  test('writes the cache readable by other users: directory 0755, files 0644', async () => {
    const {runner, write, cacheDir} = await setup()
    const output = await runner.compile(await write('page.ts', page('"modes"')))
    expect((await fs.stat(cacheDir)).mode & 0o777).toBe(0o755)
    for (const file of await fs.readdir(cacheDir)) {
      expect((await fs.stat(path.join(cacheDir, file))).mode & 0o777).toBe(0o644)
    }
    expect(await fs.readdir(cacheDir)).toEqual(expect.arrayContaining([path.basename(output)]))
  })

  test('refuses a cache directory that others can write to', async () => {
    const {runner, write, cacheDir} = await setup()
    await fs.mkdir(cacheDir)
    await fs.chmod(cacheDir, 0o777)
    const source = await write('page.ts', page('"planted"'))
    await expect(runner.compile(source)).rejects.toMatchObject({code: 'CGI_ERR_SCRIPT_SETUP'})
  })
})
