// The Python legacy programs with warm Python on (the default): cgi.FieldStorage, a WSGI app under CGIHandler and a
// Mercurial-like app importing heavy modules answer exactly as when each run starts a fresh python3, and do run warm.
import {randomBytes} from 'node:crypto'
import {describe, expect, test} from 'vitest'
import {startLegacyServer} from '../helpers/legacy.js'
import type {TestServer} from '../helpers/server.js'

interface Answer {
  readonly status: number
  readonly contentType: string | null
  readonly body: string
}

type Ask = (url: string) => Promise<Answer>

async function answer(response: Response): Promise<Answer> {
  return {status: response.status, contentType: response.headers.get('content-type'), body: await response.text()}
}

const upload = randomBytes(256 * 1024)
const CASES: [string, string, Ask][] = [
  ['cgi.FieldStorage upload', 'upload.py', async (url) => {
    const form = new FormData()
    form.append('note', 'warm')
    form.append('file', new Blob([upload]), 'data.bin')
    return answer(await fetch(url, {method: 'POST', body: form}))
  }],
  ['a WSGI app under wsgiref CGIHandler', 'wsgi-app.py/hello?name=Ada', async (url) => answer(await fetch(url))],
  ['a Mercurial-like app importing heavy modules', 'heavy-app.py?name=Ada', async (url) => answer(await fetch(url))],
]

// Asks until a run was warm (the zygote starts with the first request) and returns that answer.
async function warmAnswer(server: TestServer, url: string, ask: Ask): Promise<Answer> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const before = server.log.runs.length
    const result = await ask(url)
    await expect.poll(() => server.log.runs.length, {timeout: 5_000}).toBeGreaterThan(before)
    if (server.log.runs.at(-1)!.warm) return result
  }
  throw new Error('no warm run in 50 requests')
}

describe.each(CASES)('%s', (_title, script, ask) => {
  test('answers the same warm as with a fresh python3 per run', async () => {
    const warm = await startLegacyServer()
    const cold = await startLegacyServer({warmPython: false})
    const warmResult = await warmAnswer(warm, `${warm.url}cgi-bin/${script}`, ask)
    const coldResult = await ask(`${cold.url}cgi-bin/${script}`)
    expect(warmResult.status).toBe(200)
    expect(warmResult).toEqual(coldResult)
    await expect.poll(() => cold.log.runs.length, {timeout: 5_000}).toBe(1)
    expect(cold.log.runs[0]!.warm).toBe(false)
  })
})
