// Warm Python: `python3 script` runs fork from a zygote of that python3, past its start-up. A warm run must look like a
// fresh python3 to the script (argv, sys.path, environment, encodings, signals, descriptors, exit codes), share
// nothing with other runs, and stay under every limit a run has; anything a zygote cannot reproduce is exec'd.
import {randomBytes} from 'node:crypto'
import path from 'node:path'
import {describe, expect, test} from 'vitest'
import type {RawConfig} from '../../src/config.js'
import {getFully} from '../helpers/http.js'
import {FIXTURES, startTestServer, type TestServer} from '../helpers/server.js'
import {killMarked, newMarker, processesWithMarker} from '../process/run-helpers.js'

const WARM_CGI = path.join(FIXTURES, 'warm', 'cgi-bin')

async function warmServer(settings: RawConfig = {}): Promise<TestServer> {
  return startTestServer({cgiBin: WARM_CGI, ...settings})
}

// Requests `script` until a run of it was warm (the zygote starts with the first request), then returns that text.
async function warmResponse(server: TestServer, script: string): Promise<string> {
  let text = ''
  await expect.poll(async () => {
    const before = server.log.runs.length
    text = await (await fetch(`${server.url}cgi-bin/${script}`)).text()
    await expect.poll(() => server.log.runs.length, {timeout: 5_000}).toBeGreaterThan(before)
    return server.log.runs.at(-1)!.warm === true
  }, {timeout: 15_000}).toBe(true)
  return text
}

async function coldResponse(settings: RawConfig, script: string): Promise<string> {
  const server = await warmServer({...settings, warmPython: false})
  return (await fetch(`${server.url}cgi-bin/${script}`)).text()
}

// What differs between two runs anyway: the request's own values.
function comparable(report: Record<string, unknown>): Record<string, unknown> {
  const env = {...report.env as Record<string, string>}
  for (const name of ['HTTP_HOST', 'SERVER_PORT']) delete env[name]
  const {uid: _uid, ...rest} = report // a uid of the pool per run at rlimit
  return {...rest, env}
}

describe.each(['none', 'rlimit'] as const)('at sandbox level %s', (sandbox) => {
  test('a warm run sees exactly what a fresh python3 run sees', async () => {
    const warm = JSON.parse(await warmResponse(await warmServer({sandbox}), 'probe.py')) as Record<string, unknown>
    const cold = JSON.parse(await coldResponse({sandbox}, 'probe.py')) as Record<string, unknown>
    expect(comparable(warm)).toEqual(comparable(cold))
    expect(warm).toMatchObject({argv: [path.join(WARM_CGI, 'probe.py')], path0: WARM_CGI, cwd: WARM_CGI, name: '__main__', fds: [0, 1, 2]})
  })

  test('nothing passes from one warm run to the next: globals, builtins, environment, cwd, open files', async () => {
    const server = await warmServer({sandbox})
    await warmResponse(server, 'leaky.py')
    for (let run = 0; run < 3; run++) {
      const text = await (await fetch(`${server.url}cgi-bin/leaky.py`)).text()
      expect(text).toBe(`{'visits': 1, 'builtins': False, 'env': None, 'cwd': '${WARM_CGI}', 'fds': [0, 1, 2]}\natexit ran\n`)
    }
    expect(server.log.runs.slice(-3).map((record) => record.warm)).toEqual([true, true, true])
  })

  test('a warm run cannot find earlier runs\' requests in its memory: the zygote never reads a plan', async () => {
    const server = await warmServer({sandbox})
    await warmResponse(server, 'probe.py')
    const canary = () => `cgibox-leak-canary-${randomBytes(16).toString('hex')}`
    const earlier = canary()
    for (let run = 0; run < 3; run++) {
      const before = server.log.runs.length
      const response = await fetch(`${server.url}cgi-bin/probe.py?${earlier}`, {headers: {cookie: `session=${earlier}`}})
      expect(await response.text()).toContain('"HTTP_COOKIE"')
      await expect.poll(() => server.log.runs.length, {timeout: 5_000}).toBe(before + 1)
      expect(server.log.runs.at(-1)!.warm).toBe(true)
    }
    const own = canary() // the scan finds what is in its memory: its own request's cookie
    const before = server.log.runs.length
    const found = (await (await fetch(`${server.url}cgi-bin/memscan.py`, {headers: {cookie: `session=${own}`}})).text()).split('\n')
    await expect.poll(() => server.log.runs.length, {timeout: 5_000}).toBe(before + 1)
    expect(server.log.runs.at(-1)!.warm).toBe(true)
    expect(found).toContain(own)
    expect(found).not.toContain(earlier)
  })

  test('exit codes, SystemExit messages and tracebacks are those of python3, with the script\'s frames only', async () => {
    const server = await warmServer({sandbox})
    await warmResponse(server, 'fail.py?exit')
    const records = async (query: string) => {
      const before = server.log.runs.length
      await (await fetch(`${server.url}cgi-bin/fail.py?${query}`)).text()
      await expect.poll(() => server.log.runs.length, {timeout: 5_000}).toBe(before + 1)
      return {record: server.log.runs.at(-1)!, stderr: server.log.stderrs.filter((entry) => entry.requestId === server.log.runs.at(-1)!.requestId).map((entry) => entry.text).join('')}
    }
    expect((await records('exit')).record).toMatchObject({code: 3, warm: true})
    const message = await records('message')
    expect(message.record).toMatchObject({code: 1, warm: true})
    expect(message.stderr).toContain('a message for stderr')
    const raised = await records('raise')
    expect(raised.record).toMatchObject({code: 1, warm: true})
    expect(raised.stderr).toMatch(/^Traceback \(most recent call last\):\n {2}File "[^"]*fail\.py", line \d+, in <module>\n.*RuntimeError: boom from the script/s)
    expect(raised.stderr).not.toContain('launcher.py')
    expect(raised.stderr).not.toContain('runpy')
  })

  test('the deadline kills a warm run and the processes it started', async () => {
    const server = await warmServer({sandbox, timeoutMs: 1_500, killGraceMs: 200})
    await warmResponse(server, 'probe.py')
    const marker = newMarker()
    try {
      const response = await getFully(server.port, `/cgi-bin/spawner.py?${marker}`)
      expect(response.complete).toBe(false)
      await expect.poll(() => server.log.runs.find((record) => record.script === '/cgi-bin/spawner.py')?.killReason, {timeout: 10_000}).toBe('deadline')
      expect(server.log.runs.find((record) => record.script === '/cgi-bin/spawner.py')?.warm).toBe(true)
      await expect.poll(() => processesWithMarker(marker), {timeout: 5_000}).toEqual([])
    } finally {
      killMarked(marker)
    }
  })

  test('the output cap stops a warm run', async () => {
    const server = await warmServer({sandbox, maxOutputBytes: 100_000})
    await warmResponse(server, 'probe.py')
    await getFully(server.port, '/cgi-bin/flood.py')
    await expect.poll(() => server.log.runs.find((record) => record.script === '/cgi-bin/flood.py'), {timeout: 10_000})
      .toMatchObject({killReason: 'output-cap', warm: true})
  })
})

describe('what a zygote cannot reproduce is exec\'d', () => {
  // The setting applies to probe.py only; leaky.py on the same server goes warm first, so a ready zygote was there
  // for every one of the runs that must still be exec'd.
  test.each<[string, RawConfig, string]>([
    ['a #! line with flags (python3 -u)', {}, 'unbuffered.py'],
    ['PYTHON* variables in the environment', {env: {PYTHONDONTWRITEBYTECODE: '1'}}, 'probe.py'],
    ['another locale', {env: {LANG: 'C'}}, 'probe.py'],
    ['warmPython off for the location', {warmPython: false}, 'probe.py'],
    ['the bwrap level', {sandbox: 'bwrap'}, 'probe.py'],
  ])('%s', async (_title, settings, script) => {
    const server = await warmServer({sandbox: 'none', locations: [{prefix: `/cgi-bin/${script}`, ...settings}]})
    await warmResponse(server, 'leaky.py')
    const before = server.log.runs.length
    for (let run = 0; run < 4; run++) expect((await fetch(`${server.url}cgi-bin/${script}`)).status).toBe(200)
    await expect.poll(() => server.log.runs.length, {timeout: 5_000}).toBe(before + 4)
    expect(server.log.runs.slice(before).map((record) => [record.script, record.warm ?? false]))
      .toEqual(Array.from({length: 4}, () => [`/cgi-bin/${script}`, false]))
  })

  test('python3 -u still runs unbuffered', async () => {
    const server = await warmServer({sandbox: 'none'})
    expect(await (await fetch(`${server.url}cgi-bin/unbuffered.py`)).text()).toBe('True\n')
  })
})
