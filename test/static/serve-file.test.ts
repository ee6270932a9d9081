// serveFile end to end: a real HTTP server calls it directly with fixture paths (send's nums.txt / name.txt).
import {writeFile} from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {describe, expect, test} from 'vitest'
import {MethodNotAllowedError, NotFoundError, PreconditionFailedError, RangeNotSatisfiableError} from '../../src/errors.js'
import {serveFile} from '../../src/static/serve-file.js'
import {startHandlerServer, type Outcome} from '../helpers/static-server.js'
import {makeTempDir} from '../helpers/temp-dir.js'

const FIXTURES = fileURLToPath(new URL('../fixtures/static/', import.meta.url))

// Starts a server that maps the URL path to a file under root and serves it; errors become bare status responses.
function startServer(root = FIXTURES): Promise<{url: string; outcomes: Outcome[]}> {
  return startHandlerServer((req, res) => {
    const filePath = path.join(root, decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname))
    return serveFile(req, res, filePath)
  })
}

// A request through node:http; fetch adds Cache-Control: no-cache to conditional requests, which makes send answer 200.
async function request(url: string, headers: Record<string, string> = {}): Promise<{status: number; headers: http.IncomingHttpHeaders; body: string}> {
  return new Promise((resolve, reject) => {
    http.get(url, {headers}, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => (body += chunk))
      response.on('end', () => resolve({status: response.statusCode ?? 0, headers: response.headers, body}))
    }).on('error', reject)
  })
}

describe('serveFile', () => {
  test.each([
    ['/nums.txt', 'text/plain; charset=utf-8', '123456789'],
    ['/name.txt', 'text/plain; charset=utf-8', 'tobi'],
    ['/data.json', 'application/json; charset=utf-8', '{"name":"tobi"}\n'],
    ['/dir-with-index/index.html', 'text/html; charset=utf-8', '<p>index.html</p>\n'],
  ])('responds 200 to GET %s with Content-Type %s', async (urlPath, type, body) => {
    const {url} = await startServer()
    const response = await fetch(url + urlPath)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe(type)
    expect(response.headers.get('content-length')).toBe(String(Buffer.byteLength(body)))
    expect(response.headers.get('x-content-type-options')).toBe('nosniff')
    expect(response.headers.get('accept-ranges')).toBe('bytes')
    expect(response.headers.get('cache-control')).toBe('public, max-age=0')
    expect(await response.text()).toBe(body)
  })

  test('resolves once the response has finished', async () => {
    const {url, outcomes} = await startServer()
    await (await fetch(`${url}/nums.txt`)).text()
    await expect.poll(() => outcomes).toEqual([{}])
  })

  test('responds to HEAD with the headers of GET and no body', async () => {
    const {url} = await startServer()
    const response = await fetch(`${url}/nums.txt`, {method: 'HEAD'})
    expect(response.status).toBe(200)
    expect(response.headers.get('content-length')).toBe('9')
    expect(response.headers.get('content-type')).toBe('text/plain; charset=utf-8')
    expect(await response.text()).toBe('')
  })

  test.each(['POST', 'PUT', 'DELETE', 'OPTIONS'])('rejects %s with MethodNotAllowedError (405, Allow: GET, HEAD)', async (method) => {
    const {url, outcomes} = await startServer()
    const response = await fetch(`${url}/nums.txt`, {method})
    expect(response.status).toBe(405)
    expect(response.headers.get('allow')).toBe('GET, HEAD')
    expect(outcomes[0]?.error).toBeInstanceOf(MethodNotAllowedError)
  })

  test('rejects with NotFoundError when the file is gone after routing', async () => {
    const {url, outcomes} = await startServer()
    const response = await fetch(`${url}/missing.txt`)
    expect(response.status).toBe(404)
    expect(outcomes[0]?.error).toMatchObject({code: 'CGI_ERR_NOT_FOUND'})
    expect(outcomes[0]?.error).toBeInstanceOf(NotFoundError)
  })

  test('rejects with NotFoundError when the path is a directory now (no redirect)', async () => {
    const {url, outcomes} = await startServer()
    const response = await fetch(`${url}/dir-with-index`, {redirect: 'manual'})
    expect(response.status).toBe(404)
    expect(response.headers.get('location')).toBeNull()
    expect(outcomes[0]?.error).toBeInstanceOf(NotFoundError)
  })

  describe('file names the router accepted are served as they are (no second decoding or path check)', () => {
    test.each([
      ['100%.txt'],
      ['%41.txt'],
      ['..\\x.txt'],
      ['.hidden'],
      ['sp ace & <b>.txt'],
    ])('serves %s', async (name) => {
      const dir = await makeTempDir('serve-file')
      await writeFile(path.join(dir, name), `content of ${name}`)
      await writeFile(path.join(dir, 'A.txt'), 'wrong file')
      const {url} = await startServer(dir)
      const response = await fetch(`${url}/${encodeURIComponent(name)}`)
      expect(response.status).toBe(200)
      expect(await response.text()).toBe(`content of ${name}`)
    })
  })

  describe('conditional GET', () => {
    test('responds 304 to If-None-Match with the ETag it sent, without content headers or body', async () => {
      const {url} = await startServer()
      const etag = (await request(`${url}/nums.txt`)).headers.etag ?? ''
      expect(etag).toMatch(/^W\/"9-/)
      const response = await request(`${url}/nums.txt`, {'If-None-Match': etag})
      expect(response.status).toBe(304)
      expect(response.headers.etag).toBe(etag)
      expect(response.headers['content-type']).toBeUndefined()
      expect(response.headers['content-length']).toBeUndefined()
      expect(response.body).toBe('')
    })

    test('responds 304 to If-Modified-Since equal to Last-Modified', async () => {
      const {url} = await startServer()
      const lastModified = (await request(`${url}/nums.txt`)).headers['last-modified'] ?? ''
      expect(lastModified).not.toBe('')
      const response = await request(`${url}/nums.txt`, {'If-Modified-Since': lastModified})
      expect(response.status).toBe(304)
    })

    test('responds 200 to a matching If-None-Match with Cache-Control: no-cache (what fetch sends)', async () => {
      const {url} = await startServer()
      const etag = (await request(`${url}/nums.txt`)).headers.etag ?? ''
      const response = await request(`${url}/nums.txt`, {'If-None-Match': etag, 'Cache-Control': 'no-cache'})
      expect(response.status).toBe(200)
      expect(response.body).toBe('123456789')
    })

    test('responds 200 to If-None-Match with another ETag', async () => {
      const {url} = await startServer()
      const response = await request(`${url}/nums.txt`, {'If-None-Match': '"other"'})
      expect(response.status).toBe(200)
      expect(response.body).toBe('123456789')
    })

    test('rejects If-Match with another ETag with PreconditionFailedError (412), without the file headers', async () => {
      const {url, outcomes} = await startServer()
      const response = await request(`${url}/nums.txt`, {'If-Match': '"other"'})
      expect(response.status).toBe(412)
      expect(response.headers.etag).toBeUndefined()
      expect(response.headers['last-modified']).toBeUndefined()
      expect(response.headers['content-type']).toBeUndefined()
      expect(outcomes[0]?.error).toBeInstanceOf(PreconditionFailedError)
    })

    test('rejects If-Unmodified-Since before Last-Modified with 412', async () => {
      const {url} = await startServer()
      const response = await request(`${url}/nums.txt`, {'If-Unmodified-Since': 'Thu, 01 Jan 1970 00:00:00 GMT'})
      expect(response.status).toBe(412)
    })

    test('responds 200 to If-Match with its own ETag', async () => {
      const {url} = await startServer()
      const etag = (await request(`${url}/nums.txt`)).headers.etag ?? ''
      const response = await request(`${url}/nums.txt`, {'If-Match': etag})
      expect(response.status).toBe(200)
      expect(response.body).toBe('123456789')
    })
  })

  describe('Range', () => {
    test('responds 206 with Content-Range bytes 2-5/9 and body 3456 to bytes=2-5', async () => {
      const {url} = await startServer()
      const response = await fetch(`${url}/nums.txt`, {headers: {Range: 'bytes=2-5'}})
      expect(response.status).toBe(206)
      expect(response.headers.get('content-range')).toBe('bytes 2-5/9')
      expect(response.headers.get('content-length')).toBe('4')
      expect(await response.text()).toBe('3456')
    })

    test('responds 206 with the last bytes to a suffix range bytes=-3', async () => {
      const {url} = await startServer()
      const response = await fetch(`${url}/nums.txt`, {headers: {Range: 'bytes=-3'}})
      expect(response.status).toBe(206)
      expect(response.headers.get('content-range')).toBe('bytes 6-8/9')
      expect(await response.text()).toBe('789')
    })

    test('rejects bytes=9-50 with RangeNotSatisfiableError (416, Content-Range bytes */9)', async () => {
      const {url, outcomes} = await startServer()
      const response = await fetch(`${url}/nums.txt`, {headers: {Range: 'bytes=9-50'}})
      expect(response.status).toBe(416)
      expect(response.headers.get('content-range')).toBe('bytes */9')
      expect(response.headers.get('etag')).toBeNull()
      expect(outcomes[0]?.error).toBeInstanceOf(RangeNotSatisfiableError)
    })

    test.each([
      ['bytes=1-1,3-', 'several ranges'],
      ['bytes=foo', 'a syntactically invalid range'],
      ['items=2-5', 'another unit'],
    ])('responds 200 with the full body to %s (%s)', async (range) => {
      const {url} = await startServer()
      const response = await fetch(`${url}/nums.txt`, {headers: {Range: range}})
      expect(response.status).toBe(200)
      expect(response.headers.get('content-range')).toBeNull()
      expect(await response.text()).toBe('123456789')
    })

    test('responds 200 with the full body when If-Range names another ETag', async () => {
      const {url} = await startServer()
      const response = await request(`${url}/nums.txt`, {'Range': 'bytes=2-5', 'If-Range': '"other"'})
      expect(response.status).toBe(200)
      expect(response.body).toBe('123456789')
    })

    test('responds 206 when If-Range names the current ETag', async () => {
      const {url} = await startServer()
      const etag = (await request(`${url}/nums.txt`)).headers.etag ?? ''
      const response = await request(`${url}/nums.txt`, {'Range': 'bytes=2-5', 'If-Range': etag})
      expect(response.status).toBe(206)
      expect(response.body).toBe('3456')
    })

    test('responds to HEAD with a range with 206, Content-Length 4 and no body', async () => {
      const {url} = await startServer()
      const response = await fetch(`${url}/nums.txt`, {method: 'HEAD', headers: {Range: 'bytes=2-5'}})
      expect(response.status).toBe(206)
      expect(response.headers.get('content-length')).toBe('4')
      expect(await response.text()).toBe('')
    })
  })

  test('resolves when the client goes away in the middle of a large file', async () => {
    const dir = await makeTempDir('serve-file')
    await writeFile(path.join(dir, 'big.bin'), Buffer.alloc(32 * 1024 * 1024))
    const {url, outcomes} = await startServer(dir)
    await new Promise<void>((resolve, reject) => {
      const request = http.get(`${url}/big.bin`, (response) => {
        response.once('data', () => {
          request.destroy()
          resolve()
        })
      })
      request.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code !== 'ECONNRESET') reject(error)
      })
    })
    await expect.poll(() => outcomes).toEqual([{}])
  })
})
