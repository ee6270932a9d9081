import {expect, test} from 'vitest'
import {parseEnvDump, startTestServer} from '../helpers/server.js'

test('env.py sees SCRIPT_NAME, PATH_INFO and QUERY_STRING', async () => {
  const {url} = await startTestServer()
  const response = await fetch(`${url}cgi-bin/env.py/extra/path?a=b`)
  expect(response.status).toBe(200)
  const env = parseEnvDump(await response.text())
  expect(env).toMatchObject({SCRIPT_NAME: '/cgi-bin/env.py', PATH_INFO: '/extra/path', QUERY_STRING: 'a=b'})
})
