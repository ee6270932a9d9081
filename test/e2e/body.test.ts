// Request bodies go to the script's stdin while its stdout is read: no deadlock, no whole body in memory.
import {createHash, randomBytes} from 'node:crypto'
import http from 'node:http'
import {describe, expect, test} from 'vitest'
import {rawRequest} from '../helpers/http.js'
import {startTestServer} from '../helpers/server.js'

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')

// Posts `chunks` with Transfer-Encoding: chunked (no Content-Length) and returns status and body.
function postChunked(port: number, path: string, chunks: Buffer[]): Promise<{status: number; body: Buffer}> {
  return new Promise((resolve, reject) => {
    const request = http.request({host: '127.0.0.1', port, path, method: 'POST', headers: {'Transfer-Encoding': 'chunked'}}, (response) => {
      const parts: Buffer[] = []
      response.on('data', (chunk: Buffer) => parts.push(chunk))
      response.on('end', () => resolve({status: response.statusCode ?? 0, body: Buffer.concat(parts)}))
      response.on('error', reject)
    })
    request.on('error', reject)
    for (const chunk of chunks) request.write(chunk)
    request.end()
  })
}

describe('request bodies', () => {
  test('a 10 MB POST to a cat script comes back byte-identical', async () => {
    const {url} = await startTestServer()
    const body = randomBytes(10 * 1024 * 1024)
    const response = await fetch(`${url}cgi-bin/cat.sh`, {method: 'POST', body})
    expect(response.status).toBe(200)
    const echoed = Buffer.from(await response.arrayBuffer())
    expect(echoed.length).toBe(body.length)
    expect(sha256(echoed)).toBe(sha256(body))
  })

  test('a chunked body reaches a script that reads exactly CONTENT_LENGTH bytes', async () => {
    const {port} = await startTestServer()
    const chunks = [randomBytes(1000), randomBytes(70_000), randomBytes(5)]
    const all = Buffer.concat(chunks)
    const {status, body} = await postChunked(port, '/cgi-bin/read-exact.py', chunks)
    expect(status).toBe(200)
    expect(body.toString()).toBe(`${all.length} ${sha256(all)}\n`)
  })

  test('a chunked body reaches a script that reads to EOF', async () => {
    const {port} = await startTestServer()
    const chunks = [randomBytes(300_000), randomBytes(17)]
    const {status, body} = await postChunked(port, '/cgi-bin/cat.sh', chunks)
    expect(status).toBe(200)
    expect(sha256(body)).toBe(sha256(Buffer.concat(chunks)))
  })

  test('a body over maxBodyBytes is refused with 413 before the script runs', async () => {
    const server = await startTestServer({maxBodyBytes: 1000})
    const response = await fetch(`${server.url}cgi-bin/cat.sh`, {method: 'POST', body: randomBytes(5000)})
    expect(response.status).toBe(413)
    expect(server.log.runs).toHaveLength(0)
  })

  test('a chunked body over maxBodyBytes is refused with 413', async () => {
    const server = await startTestServer({maxBodyBytes: 1000})
    const raw = (await rawRequest(server.port,
      'POST /cgi-bin/cat.sh HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n' +
      `7d0\r\n${'x'.repeat(2000)}\r\n0\r\n\r\n`)).toString('latin1')
    expect(raw).toMatch(/^HTTP\/1\.1 413 /)
    expect(server.log.runs).toHaveLength(0)
  })

  test('a script that exits without reading a 10 MB body still delivers its whole response', async () => {
    const {url} = await startTestServer()
    for (let round = 0; round < 3; round++) {
      const response = await fetch(`${url}cgi-bin/ignore-body.sh`, {method: 'POST', body: randomBytes(10 * 1024 * 1024)})
      expect(response.status).toBe(200)
      expect((await response.arrayBuffer()).byteLength).toBe(1_048_576)
    }
  })

  test('a script that never reads its body still answers', async () => {
    const {url} = await startTestServer()
    const response = await fetch(`${url}cgi-bin/status.sh?200`, {method: 'POST', body: randomBytes(2 * 1024 * 1024)})
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('body\n')
  })
})
