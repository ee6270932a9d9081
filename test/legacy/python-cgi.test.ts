// A Python script using the standard `cgi` module's FieldStorage, unchanged, driven by fetch (issue #4 point 3).
// Python 3.11 warns that `cgi` is deprecated; that warning is the script's stderr and goes to cgibox's log.
import {randomBytes} from 'node:crypto'
import {describe, expect, test} from 'vitest'
import {parseReport, sha256, startLegacyServer} from '../helpers/legacy.js'

describe('Python cgi.FieldStorage', () => {
  test('a multipart upload of 3 MiB arrives whole (FieldStorage sees its name, size and SHA-256)', async () => {
    const server = await startLegacyServer()
    const data = randomBytes(3 * 1024 * 1024)
    const form = new FormData()
    form.append('note', 'quarterly report')
    form.append('file', new Blob([data], {type: 'application/pdf'}), 'report.pdf')
    const response = await fetch(`${server.url}cgi-bin/upload.py`, {method: 'POST', body: form})
    expect(response.status).toBe(200)
    expect(response.headers.get('x-cgi-pid')).toMatch(/^\d+$/)
    expect(parseReport(await response.text())).toEqual({
      filename: 'report.pdf', size: String(data.length), sha256: sha256(data), note: 'quarterly report',
    })
    // The deprecation warning is stderr: it reaches the log, never the client.
    await expect.poll(() => server.log.stderrs.map((entry) => entry.text).join('')).toContain("DeprecationWarning: 'cgi'")
  })

  test('a form without the file field gets the script\'s own answer, not a server error', async () => {
    const {url} = await startLegacyServer()
    const form = new FormData()
    form.append('note', 'forgot the attachment')
    const response = await fetch(`${url}cgi-bin/upload.py`, {method: 'POST', body: form})
    expect(response.status).toBe(200)
    expect(parseReport(await response.text())).toEqual({error: 'no file'})
  })
})
