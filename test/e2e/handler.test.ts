// cgibox embedded: `createCgiHandler` from the package, behind a plain node:http server and behind Express, with the
// same routing, environment and limits as the command line (Go's cgi.Handler, the npm `cgi` package).
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import express from 'express'
import {expect, onTestFinished, test} from 'vitest'
import {createCgiHandler} from '../../src/index.js'
import {FIXTURES, parseEnvDump} from '../helpers/server.js'

const SETTINGS = {htdocs: `${FIXTURES}htdocs`, cgiBin: `${FIXTURES}cgi-bin`, sandbox: 'none', accessLog: 'off'}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  onTestFinished(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

test('behind node:http: scripts, files and limits as with the command line', async () => {
  const handler = await createCgiHandler({...SETTINGS, timeoutMs: 800, killGraceMs: 100})
  onTestFinished(() => handler.close())
  expect(handler.sandbox).toMatch(/^sandbox: none /)
  const url = await listen(http.createServer(handler))
  const env = parseEnvDump(await (await fetch(`${url}/cgi-bin/env.py/extra?a=1`)).text())
  expect(env).toMatchObject({SCRIPT_NAME: '/cgi-bin/env.py', PATH_INFO: '/extra', QUERY_STRING: 'a=1', GATEWAY_INTERFACE: 'CGI/1.1'})
  expect(await (await fetch(`${url}/hello.txt`)).text()).toBe('hello static\n')
  // The deadline holds inside someone else's server too.
  expect((await fetch(`${url}/cgi-bin/spin.sh`)).status).toBe(504)
})

test('behind Express, mounted under a path: the handler serves the path relative to its mount', async () => {
  const handler = await createCgiHandler(SETTINGS)
  onTestFinished(() => handler.close())
  const app = express()
  app.get('/api/ping', (_req, res) => {
    res.send('pong')
  })
  app.use('/site', handler)
  const url = await listen(http.createServer(app))
  expect(await (await fetch(`${url}/api/ping`)).text()).toBe('pong')
  const response = await fetch(`${url}/site/cgi-bin/env.py`)
  expect(response.status).toBe(200)
  expect(parseEnvDump(await response.text()).SCRIPT_NAME).toBe('/cgi-bin/env.py')
  expect(await (await fetch(`${url}/site/hello.txt`)).text()).toBe('hello static\n')
  expect((await fetch(`${url}/site/nowhere`)).status).toBe(404)
})

test('a bad setting is refused when the handler is created, naming it', async () => {
  await expect(createCgiHandler({...SETTINGS, timeoutMs: -1})).rejects.toThrow(/`timeoutMs`/)
})

test('behind Fastify, through its raw request and response', async () => {
  const {default: Fastify} = await import('fastify')
  const handler = await createCgiHandler(SETTINGS)
  onTestFinished(() => handler.close())
  const fastify = Fastify()
  // Fastify must leave request bodies unread: the script reads them from the raw request.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', (_request, _payload, done) => done(null))
  fastify.get('/api/ping', async () => 'pong')
  fastify.all('/*', (request, reply) => {
    reply.hijack() // cgibox writes the response itself
    handler(request.raw, reply.raw)
  })
  await fastify.listen({port: 0, host: '127.0.0.1'})
  onTestFinished(() => fastify.close())
  const address = fastify.server.address() as AddressInfo
  const url = `http://127.0.0.1:${address.port}`
  expect(await (await fetch(`${url}/api/ping`)).text()).toBe('pong')
  const env = parseEnvDump(await (await fetch(`${url}/cgi-bin/env.py/x`, {method: 'POST', body: 'a=1'})).text())
  expect(env).toMatchObject({SCRIPT_NAME: '/cgi-bin/env.py', PATH_INFO: '/x', REQUEST_METHOD: 'POST', CONTENT_LENGTH: '3'})
  expect(await (await fetch(`${url}/hello.txt`)).text()).toBe('hello static\n')
  expect(await (await fetch(`${url}/cgi-bin/cat.sh`, {method: 'POST', body: 'the body, whole'})).text()).toBe('the body, whole')
})
