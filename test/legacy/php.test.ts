// A PHP page under htdocs run through php-cgi (issue #4 point 3), driven by fetch: $_GET, $_POST and $_SERVER.
// php-cgi runs with no arguments; it finds the page in SCRIPT_FILENAME and needs REDIRECT_STATUS (cgi.force_redirect).
import {describe, expect, test} from 'vitest'
import {startLegacyServer} from '../helpers/legacy.js'

interface PhpInfo {
  get: Record<string, unknown>
  post: Record<string, unknown>
  server: Record<string, string | null>
}

describe('PHP through php-cgi', () => {
  test('a GET reaches $_GET and $_SERVER', async () => {
    const {url} = await startLegacyServer()
    const response = await fetch(`${url}info.php?lang=php&tags[]=a&tags[]=b`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('application/json')
    expect(response.headers.get('x-cgi-pid')).toMatch(/^\d+$/)
    const info = await response.json() as PhpInfo
    expect(info.get).toEqual({lang: 'php', tags: ['a', 'b']})
    expect(info.post).toEqual([])
    expect(info.server).toMatchObject({
      SCRIPT_NAME: '/info.php', REQUEST_METHOD: 'GET', QUERY_STRING: 'lang=php&tags[]=a&tags[]=b',
    })
  })

  test('a urlencoded POST reaches $_POST, with the query string still in $_GET', async () => {
    const {url} = await startLegacyServer()
    const response = await fetch(`${url}info.php?page=2`, {
      method: 'POST', body: new URLSearchParams({user: 'ada', note: 'a&b=c'}),
    })
    expect(response.status).toBe(200)
    const info = await response.json() as PhpInfo
    expect(info).toMatchObject({
      get: {page: '2'},
      post: {user: 'ada', note: 'a&b=c'},
      server: {REQUEST_METHOD: 'POST', QUERY_STRING: 'page=2', CONTENT_TYPE: 'application/x-www-form-urlencoded;charset=UTF-8'},
    })
  })

  test('a multipart POST reaches $_POST', async () => {
    const {url} = await startLegacyServer()
    const form = new FormData()
    form.append('title', 'Hello')
    const response = await fetch(`${url}info.php`, {method: 'POST', body: form})
    expect((await response.json() as PhpInfo).post).toEqual({title: 'Hello'})
  })

  test('PATH_INFO after the page reaches $_SERVER and the page still runs', async () => {
    const {url} = await startLegacyServer()
    const response = await fetch(`${url}info.php/extra/path?x=1`)
    expect(response.status).toBe(200)
    expect((await response.json() as PhpInfo).server).toMatchObject({SCRIPT_NAME: '/info.php', PATH_INFO: '/extra/path'})
  })

  test('the page source is never served', async () => {
    const {url} = await startLegacyServer()
    const response = await fetch(`${url}info.php`)
    expect(await response.text()).not.toContain('<?php')
  })
})
