// The in-memory hot path for small static files, through the real server: same bytes and headers as send,
// 304s, ranges left to send, and edits and deletions seen once the validity window has passed.
import http from 'node:http'
import {rm, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {describe, expect, test} from 'vitest'
import {startTestServer} from '../helpers/server.js'
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
