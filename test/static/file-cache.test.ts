// The in-memory hot path for static files, through the real server: same bytes and headers as send, 304s, ranges
// left to send, and edits and deletions seen once the validity window has passed. Then the cache itself behind the
// real router and serveFile, wired as server.ts wires them, for what only its stats show: one body per real file.
import http from 'node:http'
import {mkdir, rm, stat, symlink, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {describe, expect, test} from 'vitest'
import {normalizeConfig} from '../../src/config.js'
import {NotFoundError} from '../../src/errors.js'
import {createRouter} from '../../src/router.js'
import {createFileCache, type FileCache, type FileCacheOptions} from '../../src/static/file-cache.js'
import {serveFile} from '../../src/static/serve-file.js'
import {UPLOAD_MANIFEST} from '../../src/static/upload-manifest.js'
import {FIXTURES, startTestServer} from '../helpers/server.js'
import {listenForTest} from '../helpers/static-server.js'
import {makeTempDir} from '../helpers/temp-dir.js'

interface Reply {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

function get(port: number, target: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    http.request({host: '127.0.0.1', port, path: target, method, headers, agent: false}, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => {
        body += chunk
      })
      response.on('end', () => resolve({status: response.statusCode ?? 0, headers: response.headers, body}))
    }).on('error', reject).end()
  })
}

async function site(staticCacheMs: number) {
  const htdocs = await makeTempDir('file-cache')
  await writeFile(path.join(htdocs, 'page.html'), '<p>first</p>\n')
  const server = await startTestServer({htdocs, staticCacheMs})
  return {htdocs, server, file: path.join(htdocs, 'page.html')}
}

const REPRESENTATION = ['content-type', 'etag', 'last-modified', 'cache-control', 'accept-ranges', 'x-content-type-options', 'content-length']

describe('small static files from memory', () => {
  test('a repeated GET returns the same bytes and representation headers as the first (send)', async () => {
    const {server} = await site(60_000)
    const first = await get(server.port, '/page.html')
    const second = await get(server.port, '/page.html')
    expect(second.status).toBe(200)
    expect(second.body).toBe(first.body)
    for (const name of REPRESENTATION) expect(second.headers[name], name).toBe(first.headers[name])
  })

  test('an edit is seen once the validity window has passed', async () => {
    const {server, file} = await site(300)
    expect((await get(server.port, '/page.html')).body).toBe('<p>first</p>\n')
    await expect.poll(async () => (await get(server.port, '/page.html')).headers.etag, {timeout: 2_000}).toBeDefined()
    await writeFile(file, '<p>second, longer</p>\n')
    await expect.poll(async () => (await get(server.port, '/page.html')).body, {timeout: 5_000}).toBe('<p>second, longer</p>\n')
  })

  test('with staticCacheMs 0 an edit is seen at once', async () => {
    const {server, file} = await site(0)
    await get(server.port, '/page.html')
    await get(server.port, '/page.html')
    await writeFile(file, '<p>changed</p>\n')
    expect((await get(server.port, '/page.html')).body).toBe('<p>changed</p>\n')
  })

  test('a deleted file is not found once the window has passed', async () => {
    const {server, file} = await site(200)
    await get(server.port, '/page.html')
    await get(server.port, '/page.html')
    await rm(file)
    await expect.poll(async () => (await get(server.port, '/page.html')).status, {timeout: 5_000}).toBe(404)
  })

  test('If-None-Match with the ETag gets a 304 without a body', async () => {
    const {server} = await site(60_000)
    const {headers} = await get(server.port, '/page.html')
    await get(server.port, '/page.html')
    const cached = await get(server.port, '/page.html', {'If-None-Match': String(headers.etag)})
    expect(cached.status).toBe(304)
    expect(cached.body).toBe('')
    expect(cached.headers.etag).toBe(headers.etag)
  })

  test('a Range request is answered by send with 206', async () => {
    const {server} = await site(60_000)
    await get(server.port, '/page.html')
    await get(server.port, '/page.html')
    const partial = await get(server.port, '/page.html', {Range: 'bytes=3-7'})
    expect(partial.status).toBe(206)
    expect(partial.body).toBe('first')
    expect(partial.headers['content-range']).toBe('bytes 3-7/13')
  })

  test('HEAD gets the headers and no body', async () => {
    const {server} = await site(60_000)
    await get(server.port, '/page.html')
    await get(server.port, '/page.html')
    const head = await get(server.port, '/page.html', {}, 'HEAD')
    expect(head.status).toBe(200)
    expect(head.body).toBe('')
    expect(head.headers['content-length']).toBe('13')
  })

  test('POST to a remembered file is still 405', async () => {
    const {server} = await site(60_000)
    await get(server.port, '/page.html')
    await get(server.port, '/page.html')
    const post = await get(server.port, '/page.html', {}, 'POST')
    expect(post.status).toBe(405)
    expect(post.headers.allow).toBe('GET, HEAD')
  })
})

// A server that answers like server.ts's dispatch: the cache first, else route, serve with send, and remember.
// `routed` lists the requests the cache did not answer.
async function startCacheServer(htdocs: string, options: FileCacheOptions): Promise<{port: number; cache: FileCache; routed: string[]}> {
  const router = await createRouter(normalizeConfig({htdocs, cgiBin: `${FIXTURES}cgi-bin`}))
  const cache = createFileCache(options)
  const routed: string[] = []
  const url = await listenForTest((req, res) => {
    const pathname = req.url ?? '/'
    if (cache.serve(req, res, pathname)) return
    routed.push(pathname)
    void (async () => {
      const route = await router.resolveRoute(pathname)
      if (route.kind !== 'static') throw new NotFoundError(`test: ${pathname} is not a static file`)
      await serveFile(req, res, route.filePath)
      cache.remember(pathname, route.filePath, res)
    })().catch(() => {
      if (!res.headersSent) res.writeHead(404)
      res.end()
    })
  })
  return {port: Number(new URL(url).port), cache, routed}
}

// Every spelling the router resolves to /sub/a.txt that varies the leading slashes (1…slashes) and which of the
// 8 characters of `sub` and `a.txt` are percent-encoded: slashes × 256 request paths.
function spellingsOfSubA(slashes: number): string[] {
  const paths: string[] = []
  for (let count = 1; count <= slashes; count++) {
    for (let mask = 0; mask < 256; mask++) {
      let index = 0
      const spell = (char: string) => ((mask >> index++) & 1 ? `%${char.charCodeAt(0).toString(16).toUpperCase()}` : char)
      paths.push(`${'/'.repeat(count)}${[...'sub'].map(spell).join('')}/${[...'a.txt'].map(spell).join('')}`)
    }
  }
  return paths
}

describe('memory per real file', () => {
  // Regression: the cache was keyed by the raw request path; 54 250 spellings of one file (`//sub/a.txt`,
  // `/%73ub/a.txt`, …) took the server from 105 to 626 MiB.
  test('2 048 spellings of one file share one body; aliases stay at maxAliases and the counted bytes bounded', async () => {
    const htdocs = await makeTempDir('file-cache')
    await mkdir(path.join(htdocs, 'sub'))
    const body = 'x'.repeat(64 * 1024)
    await writeFile(path.join(htdocs, 'sub', 'a.txt'), body)
    const maxAliases = 500
    const {port, cache} = await startCacheServer(htdocs, {validMs: 60_000, maxAliases})
    expect((await get(port, '/sub/a.txt')).status).toBe(200)
    await expect.poll(() => cache.stats().files).toBe(1)

    const spellings = spellingsOfSubA(8)
    expect(new Set(spellings).size).toBe(2_048)
    const agent = new http.Agent({keepAlive: true, maxSockets: 1})
    try {
      for (const spelling of spellings) {
        const reply = await getWith(agent, port, spelling)
        if (reply.status !== 200 || reply.length !== body.length) throw new Error(`${spelling}: ${reply.status}, ${reply.length} bytes`)
      }
    } finally {
      agent.destroy()
    }
    const stats = cache.stats()
    expect(stats.files).toBe(1)
    expect(stats.aliases).toBe(maxAliases)
    const longest = Math.max(...spellings.map((spelling) => spelling.length))
    // One body with its headers and path, plus maxAliases paths, each with the cache's own per-entry estimate.
    expect(stats.bytes).toBeLessThan(body.length + 4_096 + maxAliases * (longest + 256))
  }, 60_000)

  test('a second spelling is answered from the body already in memory (the file is deleted in between)', async () => {
    const htdocs = await makeTempDir('file-cache')
    await writeFile(path.join(htdocs, 'a.txt'), 'kept')
    const {port, cache} = await startCacheServer(htdocs, {validMs: 60_000})
    await get(port, '/a.txt')
    await expect.poll(() => cache.stats().files).toBe(1)
    expect((await get(port, '//%61.txt')).body).toBe('kept') // routed, then aliased to the body in memory
    expect(cache.stats()).toMatchObject({files: 1, aliases: 2})
    await rm(path.join(htdocs, 'a.txt'))
    expect(await get(port, '//%61.txt')).toMatchObject({status: 200, body: 'kept'})
  })

  test('a request path over 1 KiB is served but never remembered', async () => {
    const htdocs = await makeTempDir('file-cache')
    await writeFile(path.join(htdocs, 'a.txt'), 'a')
    const {port, cache} = await startCacheServer(htdocs, {validMs: 60_000})
    await get(port, '/a.txt')
    await expect.poll(() => cache.stats().files).toBe(1)
    expect((await get(port, `${'/'.repeat(2_000)}a.txt`)).status).toBe(200)
    expect(cache.stats().aliases).toBe(1)
  })

  test('an alias is routed again after validMs, even while another path keeps its body fresh (a retargeted symlink)', async () => {
    const htdocs = await makeTempDir('file-cache')
    await writeFile(path.join(htdocs, 'v1.txt'), 'one')
    await writeFile(path.join(htdocs, 'v2.txt'), 'two')
    await symlink('v1.txt', path.join(htdocs, 'current.txt'))
    const {port, cache, routed} = await startCacheServer(htdocs, {validMs: 300})
    expect((await get(port, '/current.txt')).body).toBe('one')
    await expect.poll(() => cache.stats().files).toBe(1)
    await get(port, '/v1.txt') // a second alias of the same body
    await rm(path.join(htdocs, 'current.txt'))
    await symlink('v2.txt', path.join(htdocs, 'current.txt'))
    // Through /v1.txt only: once its body has expired, been checked (v1.txt is unchanged) and is answered from memory
    // again, /current.txt was routed longer than validMs ago.
    await expect.poll(async () => {
      const before = routed.length
      await get(port, '/v1.txt')
      return routed.length === before && routed.filter((pathname) => pathname === '/v1.txt').length >= 2
    }, {timeout: 5_000, interval: 20}).toBe(true)
    expect((await get(port, '/current.txt')).body).toBe('two')
  })

  test('maxFiles bounds the bodies: the oldest goes first', async () => {
    const htdocs = await makeTempDir('file-cache')
    for (const name of ['a', 'b', 'c']) await writeFile(path.join(htdocs, `${name}.txt`), name)
    const {port, cache} = await startCacheServer(htdocs, {validMs: 60_000, maxFiles: 2})
    for (const [index, name] of ['a', 'b', 'c'].entries()) {
      await get(port, `/${name}.txt`)
      await expect.poll(() => cache.stats().aliases).toBe(index + 1)
    }
    expect(cache.stats().files).toBe(2)
    await rm(path.join(htdocs, 'a.txt'))
    await rm(path.join(htdocs, 'c.txt'))
    expect((await get(port, '/a.txt')).status).toBe(404) // dropped: routed again, and gone
    expect((await get(port, '/c.txt')).body).toBe('c') // the newest is still in memory
  })
})

describe('large files from memory', () => {
  // A 1 MiB file streamed by send: ~500 req/s; from memory ~1 900 (wrk -t2 -c16; bench/static-files.js).
  const MIB = Buffer.alloc(1024 * 1024, 'abcdefghijklmnop')

  async function cachedMib() {
    const htdocs = await makeTempDir('file-cache')
    await writeFile(path.join(htdocs, '1m.bin'), MIB)
    const server = await startCacheServer(htdocs, {validMs: 60_000})
    const first = await get(server.port, '/1m.bin')
    await expect.poll(() => server.cache.stats().files).toBe(1)
    await rm(path.join(htdocs, '1m.bin')) // from here on only memory can answer a whole 200
    return {...server, first}
  }

  test('a 1 MiB file is kept with the default limits and served whole from memory', async () => {
    const {port, first} = await cachedMib()
    const again = await get(port, '/1m.bin')
    expect(again.status).toBe(200)
    expect(again.body).toBe(MIB.toString())
    for (const name of REPRESENTATION) expect(again.headers[name], name).toBe(first.headers[name])
  })

  test('If-None-Match with its ETag is a 304 without a body; HEAD has the length and no body', async () => {
    const {port, first} = await cachedMib()
    expect(await get(port, '/1m.bin', {'If-None-Match': String(first.headers.etag)})).toMatchObject({status: 304, body: ''})
    const head = await get(port, '/1m.bin', {}, 'HEAD')
    expect(head).toMatchObject({status: 200, body: ''})
    expect(head.headers['content-length']).toBe(String(MIB.length))
  })

  test('a Range request still goes to send (the file is gone, so 404 proves it was not answered from memory)', async () => {
    const {port} = await cachedMib()
    expect((await get(port, '/1m.bin', {Range: 'bytes=0-3'})).status).toBe(404)
  })
})

describe('uploads from memory', () => {
  test('a file named in the upload manifest is replayed with CSP sandbox and nosniff', async () => {
    const htdocs = await makeTempDir('file-cache')
    const file = path.join(htdocs, 'up.html')
    await writeFile(file, '<script>alert(document.domain)</script>')
    await writeFile(path.join(htdocs, UPLOAD_MANIFEST), `${(await stat(file, {bigint: true})).ino} up.html\n`)
    const {port, cache} = await startCacheServer(htdocs, {validMs: 60_000})
    expect((await get(port, '/up.html')).headers['content-security-policy']).toBe('sandbox')
    await expect.poll(() => cache.stats().files).toBe(1)
    await rm(file)
    const cached = await get(port, '/up.html')
    expect(cached.status).toBe(200)
    expect(cached.headers['content-security-policy']).toBe('sandbox')
    expect(cached.headers['x-content-type-options']).toBe('nosniff')
  })
})

function getWith(agent: http.Agent, port: number, target: string): Promise<{status: number; length: number}> {
  return new Promise((resolve, reject) => {
    http.get({host: '127.0.0.1', port, path: target, agent}, (response) => {
      let length = 0
      response.on('data', (chunk: Buffer) => {
        length += chunk.length
      })
      response.on('end', () => resolve({status: response.statusCode ?? 0, length}))
    }).on('error', reject)
  })
}
