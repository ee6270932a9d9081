// Scale-out behind a real load balancer (issue "Operations", part 4): deploy/nginx/cgibox.conf in front of two
// instances of the built cgibox, each configured from deploy/cgibox.json. The client's address through the proxy,
// a forged X-Forwarded-For, request ids, /.cgibox/ kept from the public, a 10 MB upload streamed through, and a
// SIGTERM of one instance under steady traffic that no request notices. Skipped, saying so, without nginx.
import {spawn, type ChildProcess} from 'node:child_process'
import {createHash, randomBytes} from 'node:crypto'
import {readFileSync} from 'node:fs'
import {writeFile} from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, onTestFinished, test} from 'vitest'
import type {RawConfig} from '../../src/config.js'
import {BUILD_TIMEOUT_MS, REPO, buildCli, type Build} from '../helpers/build.js'
import {findNginx, startNginx, type RunningNginx} from '../helpers/nginx.js'
import {FIXTURES, parseEnvDump} from '../helpers/server.js'
import {makeTempDir} from '../helpers/temp-dir.js'

const NGINX = findNginx()
if (NGINX === null) console.log('nginx.test.ts: skipped: nginx is not installed (Debian: apt-get install nginx; .ci/run does)')

const DEPLOY_CONFIG = JSON.parse(readFileSync(path.join(REPO, 'deploy', 'cgibox.json'), 'utf8')) as RawConfig
const START_TIMEOUT_MS = 10_000
const EXIT_TIMEOUT_MS = 10_000
const REQUEST_TIMEOUT_MS = 10_000
/**
 * Another loopback address, for a client distinct from the proxy: a client on 127.0.0.1, an address of trustProxy, is
 * taken for a proxy, and an X-Forwarded-For it forged would be believed (README "Running behind nginx").
 */
const OTHER_CLIENT = '127.0.0.2'

interface Instance {
  readonly name: string
  readonly url: string
  readonly port: number
  readonly child: ChildProcess
  /** Resolves with the exit code (or signal name) once the process has exited. */
  readonly exited: Promise<number | string>
  output(): string
}

interface Site {
  readonly nginx: RunningNginx
  readonly a: Instance
  readonly b: Instance
}

describe.skipIf(NGINX === null)('two cgibox instances behind nginx (deploy/nginx/cgibox.conf)', () => {
  let build: Build | null = null

  beforeAll(async () => {
    build = await buildCli()
  }, BUILD_TIMEOUT_MS + 10_000)

  afterAll(async () => {
    await build?.remove()
  })

  // Starts `node dist/cli.js --config <file>`: deploy/cgibox.json on the fixture tree, port 0, `settings` on top.
  // The instance prints its name as INSTANCE to scripts; it is SIGKILLed when the test finishes if still running.
  async function startInstance(name: string, dir: string, settings: RawConfig = {}): Promise<Instance> {
    const file = path.join(dir, `${name}.json`)
    await writeFile(file, JSON.stringify({
      ...DEPLOY_CONFIG,
      port: 0,
      htdocs: path.join(FIXTURES, 'htdocs'),
      cgiBin: path.join(FIXTURES, 'cgi-bin'),
      sandbox: 'none',
      env: {INSTANCE: name},
      ...settings,
    }))
    const child = spawn(process.execPath, [build!.cliPath, '--config', file], {cwd: dir, stdio: ['ignore', 'pipe', 'pipe']})
    let output = ''
    child.stdout!.setEncoding('utf8').on('data', (text: string) => { output += text })
    child.stderr!.setEncoding('utf8').on('data', (text: string) => { output += text })
    const exited = new Promise<number | string>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal ?? -1)))
    onTestFinished(async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL')
        await exited
      }
    })
    const deadline = Date.now() + START_TIMEOUT_MS
    for (;;) {
      const match = /http:\/\/127\.0\.0\.1:(\d+)\//.exec(output)
      if (match) return {name, url: match[0], port: Number(match[1]), child, exited, output: () => output}
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`cgibox ${name} exited before listening: ${output}`)
      if (Date.now() > deadline) throw new Error(`cgibox ${name} printed no URL in ${START_TIMEOUT_MS} ms: ${output}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  // Instances a and b (b with the second uid pool, as the README's recipe has it) and nginx in front of them.
  async function startSite(settings: RawConfig = {}): Promise<Site> {
    const dir = await makeTempDir('nginx')
    const [a, b] = await Promise.all([
      startInstance('a', dir, settings),
      startInstance('b', dir, {uidPoolStart: 62_000, ...settings}),
    ])
    const nginx = await startNginx(NGINX!, dir, [a.port, b.port], '/hello.txt')
    return {nginx, a, b}
  }

  test('a script through nginx sees the client as REMOTE_ADDR; an X-Forwarded-For the client forged is not believed', async () => {
    const {nginx, a} = await startSite()
    // The client on 127.0.0.2: nginx appends that address to what the client sent, cgibox trusts 127.0.0.1 (nginx).
    const forged = await request(nginx.port, '/cgi-bin/env.py', {
      localAddress: OTHER_CLIENT, headers: {'X-Forwarded-For': '203.0.113.9', 'X-Request-Id': 'chosen-by-the-client'},
    })
    expect(forged.status).toBe(200)
    const env = parseEnvDump(forged.body.toString())
    expect(env.REMOTE_ADDR).toBe(OTHER_CLIENT)
    expect(env.HTTP_X_FORWARDED_FOR).toBe(`203.0.113.9, ${OTHER_CLIENT}`)
    expect(env.SCRIPT_NAME).toBe('/cgi-bin/env.py')
    expect(env.INSTANCE).toMatch(/^[ab]$/)
    // nginx's $request_id replaces the client's, and cgibox takes it for its response (and its logs).
    expect(env.HTTP_X_REQUEST_ID).toMatch(/^[0-9a-f]{32}$/)
    expect(forged.headers['x-request-id']).toBe(env.HTTP_X_REQUEST_ID)
    await expect.poll(async () => (await nginx.accessLog()).includes(`rid=${env.HTTP_X_REQUEST_ID}`), {timeout: 5_000}).toBe(true)

    // An ordinary client on 127.0.0.1 is seen as itself.
    const plain = parseEnvDump(await (await fetch(`${nginx.url}cgi-bin/env.py`, {signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)})).text())
    expect(plain.REMOTE_ADDR).toBe('127.0.0.1')

    // /.cgibox/ is not served through the proxy, whatever the spelling; straight to an instance on loopback it is.
    for (const target of ['/.cgibox/health', '/.cgibox/status?format=json', '/%2Ecgibox/health', '//.cgibox/metrics']) {
      expect((await request(nginx.port, target, {localAddress: OTHER_CLIENT})).status, target).toBe(404)
    }
    expect((await fetch(`${a.url}.cgibox/health`)).status).toBe(200)
  })

  test('a 10 MB upload arrives whole through nginx, with Content-Length and chunked', async () => {
    const {nginx} = await startSite()
    const body = randomBytes(10 * 1024 * 1024)
    const expected = `length=${body.length}\nsha256=${createHash('sha256').update(body).digest('hex')}\n`
    const sized = await request(nginx.port, '/cgi-bin/hash-stdin.py', {method: 'POST', body})
    expect(sized.status).toBe(200)
    expect(sized.body.toString()).toBe(`${expected}content-length=${body.length}\n`)
    // Chunked: nginx passes it on chunked (HTTP/1.1, unbuffered), cgibox spools it and gives an exact CONTENT_LENGTH.
    const chunks = Array.from({length: 40}, (_, index) => body.subarray(index * 262_144, (index + 1) * 262_144))
    const chunked = await request(nginx.port, '/cgi-bin/hash-stdin.py', {method: 'POST', chunks})
    expect(chunked.status).toBe(200)
    expect(chunked.body.toString()).toBe(`${expected}content-length=${body.length}\n`)
  })

  test('SIGTERM to one instance under steady traffic: every request gets its 200, the instance exits 0, the other serves on', async () => {
    const {nginx, a} = await startSite({drainMs: 500, shutdownGraceMs: 5_000})
    const results: {path: string; status: number | string; instance?: string}[] = []
    let streaming = true
    // 8 clients, each asking for a small script and a static file in turn, as fast as they are answered.
    const clients = Array.from({length: 8}, async (_, client) => {
      for (let round = 0; streaming; round++) {
        const target = (client + round) % 2 === 0 ? '/cgi-bin/env.py' : '/hello.txt'
        try {
          const response = await fetch(new URL(target, nginx.url), {signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)})
          const text = await response.text()
          results.push({path: target, status: response.status, instance: target === '/hello.txt' ? undefined : parseEnvDump(text).INSTANCE})
        } catch (error) {
          results.push({path: target, status: (error as Error).message})
        }
      }
    })
    const stopStreaming = async () => {
      streaming = false
      await Promise.all(clients)
    }
    onTestFinished(stopStreaming)
    // SIGTERM in the middle: once both instances have answered scripts, and with traffic going on until a while
    // after the instance has exited.
    const instancesSeen = () => new Set(results.map((result) => result.instance).filter(Boolean)).size
    await expect.poll(() => results.length >= 8 && instancesSeen() === 2, {timeout: 15_000, interval: 20}).toBe(true)
    const servedBefore = results.length
    a.child.kill('SIGTERM')
    // Health says so at once (nginx does not ask, but an active checker would), while requests are still served.
    const drainHealth = await pollHealth(a.url)
    const code = await withTimeout(a.exited, EXIT_TIMEOUT_MS, 'the instance given SIGTERM did not exit')
    const servedUntilExit = results.length
    // Traffic goes on after the instance has gone: a few more answers (from b) before the stream stops.
    await expect.poll(() => results.length, {timeout: 10_000, interval: 20}).toBeGreaterThan(servedUntilExit + 4)
    await stopStreaming()

    const failed = results.filter((result) => result.status !== 200)
    expect(failed, JSON.stringify(failed.slice(0, 5))).toEqual([])
    expect(code, a.output()).toBe(0)
    expect(drainHealth).toBe(503)
    expect(results.length).toBeGreaterThan(servedUntilExit)
    // Once a is gone, b answers everything.
    for (let round = 0; round < 6; round++) {
      const response = await fetch(`${nginx.url}cgi-bin/env.py`, {signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS)})
      expect(response.status).toBe(200)
      expect(parseEnvDump(await response.text()).INSTANCE).toBe('b')
    }
    const retried = (await nginx.accessLog()).split('\n').filter((line) => /upstream=\S+, /.test(line)).length
    console.log(`nginx.test.ts: ${results.length} requests, all 200: ${servedBefore} before the SIGTERM, ` +
      `${servedUntilExit - servedBefore} until the instance exited, ${results.length - servedUntilExit} after; ` +
      `nginx passed ${retried} on to the other instance`)
  })
})

interface Reply {
  readonly status: number
  readonly headers: http.IncomingHttpHeaders
  readonly body: Buffer
}

// One request on a new connection (node:http, so the client's own address can be chosen); `body` goes with a
// Content-Length, `chunks` chunked. Rejects on a socket error or after REQUEST_TIMEOUT_MS.
function request(port: number, target: string, {method = 'GET', headers = {}, body, chunks, localAddress}: {
  method?: string; headers?: Record<string, string>; body?: Buffer; chunks?: Buffer[]; localAddress?: string
} = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const outgoing = http.request({
      host: '127.0.0.1', port, path: target, method, localAddress, agent: false, timeout: REQUEST_TIMEOUT_MS,
      headers: {...headers, ...body === undefined ? {} : {'Content-Length': String(body.length)}},
    }, (response) => {
      const parts: Buffer[] = []
      response.on('data', (chunk: Buffer) => parts.push(chunk))
      response.on('end', () => resolve({status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(parts)}))
      response.on('error', reject)
    })
    outgoing.on('timeout', () => outgoing.destroy(new Error(`${method} ${target}: no answer within ${REQUEST_TIMEOUT_MS} ms`)))
    outgoing.on('error', reject)
    if (body !== undefined) outgoing.end(body)
    else {
      for (const chunk of chunks ?? []) outgoing.write(chunk)
      outgoing.end()
    }
  })
}

// The first health status other than 200 after a SIGTERM (a refused connection is 'refused'), polled for 5 s at most.
async function pollHealth(url: string): Promise<number | string> {
  const deadline = Date.now() + 5_000
  while (Date.now() < deadline) {
    const status = await fetch(`${url}.cgibox/health`, {signal: AbortSignal.timeout(1_000)}).then(
      async (response) => { await response.arrayBuffer(); return response.status }, () => 'refused')
    if (status !== 200) return status
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  return 200
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
