// A WSGI application run as CGI through wsgiref.handlers.CGIHandler (issue #4 point 3), driven by fetch:
// the query string, a POST body, statuses other than 200 and the application's own headers.
import {randomBytes} from 'node:crypto'
import {describe, expect, test} from 'vitest'
import {parseReport, sha256, startLegacyServer} from '../helpers/legacy.js'

describe('WSGI through wsgiref CGIHandler', () => {
  test('GET with a query string reaches the app through PATH_INFO and QUERY_STRING', async () => {
    const {url} = await startLegacyServer()
    const response = await fetch(`${url}cgi-bin/wsgi-app.py/hello?name=W%C3%A9b`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/plain; charset=utf-8')
    expect(response.headers.get('x-app')).toBe('wsgi')
    expect(await response.text()).toBe('Hello, Wéb! (GET)\n')
  })

  test('a POST body reaches wsgi.input whole', async () => {
    const {url} = await startLegacyServer()
    const body = randomBytes(1024 * 1024)
    const response = await fetch(`${url}cgi-bin/wsgi-app.py/echo`, {
      method: 'POST', body, headers: {'Content-Type': 'application/octet-stream'},
    })
    expect(response.status).toBe(200)
    expect(parseReport(await response.text())).toEqual({
      type: 'application/octet-stream', size: String(body.length), sha256: sha256(body),
    })
  })

  test.each([
    ['/missing', 404, 'Not Found'],
    ['/created', 201, 'Created'],
  ])('the app\'s status for %s comes through as %i %s', async (route, status, statusText) => {
    const {url} = await startLegacyServer()
    const response = await fetch(`${url}cgi-bin/wsgi-app.py${route}`, {redirect: 'manual'})
    expect(response.status).toBe(status)
    expect(response.statusText).toBe(statusText)
    expect(response.headers.get('x-cgi-pid')).toMatch(/^\d+$/)
  })

  test('a 201 keeps its Location and body (Location with a Status is not a redirect)', async () => {
    const {url} = await startLegacyServer()
    const response = await fetch(`${url}cgi-bin/wsgi-app.py/created`, {redirect: 'manual'})
    expect(response.status).toBe(201)
    expect(response.headers.get('location')).toBe('/items/42')
    expect(await response.json()).toEqual({id: 42})
  })
})
