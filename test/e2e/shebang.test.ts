// Legacy scripts dropped in as they are: an executable file runs by its #! line, as Apache, lighttpd and Python's
// http.server --cgi run it (`#!/usr/bin/perl -wT` was a 502, a `#!/bin/bash` x.sh ran under sh); a CRLF #! line is
// a 502 whose log line says why.
import {describe, expect, test} from 'vitest'
import {startTestServer} from '../helpers/server.js'

describe.each(['none', 'bwrap'] as const)('at sandbox level %s', (sandbox) => {
  test('#!/usr/bin/perl -wT runs in taint mode', async () => {
    const {url} = await startTestServer({sandbox})
    const response = await fetch(`${url}cgi-bin/taint.pl`)
    expect(response.status).toBe(200)
    expect(await response.text()).toBe('taint mode: on\n')
  })

  test('#!/bin/bash runs a .sh script under bash, not sh', async () => {
    const {url} = await startTestServer({sandbox})
    const response = await fetch(`${url}cgi-bin/bashism.sh`)
    expect(response.status).toBe(200)
    expect(await response.text()).toMatch(/^bash 5\./)
  })

  test('a #! line with CRLF line endings is a 502 whose log says so plainly', async () => {
    const server = await startTestServer({sandbox})
    const response = await fetch(`${server.url}cgi-bin/crlf.py`)
    expect(response.status).toBe(502)
    expect(await response.text()).toBe('502 Bad Gateway\n') // the reason is for the log only
    expect(server.log.errors.map((entry) => entry.message)).toContainEqual(expect.stringContaining('bad interpreter "python3\\r": CRLF line endings'))
  })

  test('a script without the execute bit still runs through the interpreter map', async () => {
    const {url} = await startTestServer({sandbox})
    expect(await (await fetch(`${url}cgi-bin/no-x-bit.py`)).text()).toBe('ran without the x bit\n')
  })
})
