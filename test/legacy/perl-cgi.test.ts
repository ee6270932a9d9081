// Perl CGI.pm scripts, unchanged, driven by fetch as a browser would (issue #4 point 3): forms by GET and POST,
// a multipart upload of a few MiB, a redirect and a cookie round trip.
import {randomBytes} from 'node:crypto'
import {describe, expect, test} from 'vitest'
import {parseReport, sha256, startLegacyServer} from '../helpers/legacy.js'

describe('Perl CGI.pm', () => {
  describe('forms', () => {
    test('a GET form reaches $q->param through QUERY_STRING', async () => {
      const {url} = await startLegacyServer()
      const response = await fetch(`${url}cgi-bin/form.pl?name=Ada+Lovelace&color=red&color=blue`)
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toBe('text/plain; charset=utf-8')
      expect(response.headers.get('x-cgi-pid')).toMatch(/^\d+$/)
      expect(parseReport(await response.text())).toMatchObject({method: 'GET', name: 'Ada Lovelace', color: 'red,blue'})
    })

    test('a urlencoded POST form reaches $q->param through stdin', async () => {
      const {url} = await startLegacyServer()
      const response = await fetch(`${url}cgi-bin/form.pl`, {
        method: 'POST',
        body: new URLSearchParams([['name', 'Grace & co'], ['color', 'green']]),
      })
      expect(response.status).toBe(200)
      expect(parseReport(await response.text())).toMatchObject({method: 'POST', name: 'Grace & co', color: 'green'})
    })
  })

  test('a multipart upload of 3 MiB arrives whole ($q->upload sees its size and SHA-256)', async () => {
    const {url} = await startLegacyServer()
    const data = randomBytes(3 * 1024 * 1024)
    const form = new FormData()
    form.append('note', 'holiday photos')
    form.append('file', new Blob([data], {type: 'application/octet-stream'}), 'photo.bin')
    const response = await fetch(`${url}cgi-bin/upload.pl`, {method: 'POST', body: form})
    expect(response.status).toBe(200)
    expect(parseReport(await response.text())).toEqual({
      filename: 'photo.bin', size: String(data.length), sha256: sha256(data), note: 'holiday photos',
    })
  })

  test('$q->redirect is a 302 with its Location', async () => {
    const {url} = await startLegacyServer()
    const target = 'https://example.com/landed?from=perl'
    const response = await fetch(`${url}cgi-bin/redirect.pl?to=${encodeURIComponent(target)}`, {redirect: 'manual'})
    expect(response.status).toBe(302)
    expect(response.headers.get('location')).toBe(target)
  })

  test('a -cookie header arrives as Set-Cookie, and the cookie sent back is read by $q->cookie', async () => {
    const {url} = await startLegacyServer()
    const first = await fetch(`${url}cgi-bin/cookie.pl?set=s3cr3t`)
    expect(first.status).toBe(200)
    expect(first.headers.get('set-cookie')).toMatch(/^session=s3cr3t; path=\/$/)
    expect(parseReport(await first.text())).toMatchObject({seen: 'none'})
    const cookie = first.headers.get('set-cookie')!.split(';')[0]!
    const second = await fetch(`${url}cgi-bin/cookie.pl`, {headers: {Cookie: `theme=dark; ${cookie}`}})
    expect(parseReport(await second.text())).toMatchObject({seen: 's3cr3t'})
  })
})
