// Bare node:http servers for the tests that call the static handlers (serveFile, serveDirectory, receiveUpload)
// directly, without the rest of cgibox. Each listens on 127.0.0.1:0 and is closed when the test finishes.
import http, {STATUS_CODES, type IncomingMessage, type RequestListener, type ServerResponse} from 'node:http'
import type {AddressInfo} from 'node:net'
import {onTestFinished} from 'vitest'
import {HttpError} from '../../src/errors.js'

export interface Outcome {
  readonly error?: unknown
}

// Listens with `listener` and returns the server's base URL (http://127.0.0.1:<port>, no trailing slash).
export async function listenForTest(listener: RequestListener): Promise<string> {
  const server = http.createServer(listener)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  onTestFinished(() => new Promise<void>((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  }))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

// Hands every request to `handle`. How each call settled is pushed to `outcomes`; a rejection becomes a bare
// status response (the HttpError's status and headers, else 500), or a destroyed socket once headers were sent.
export async function startHandlerServer(
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
): Promise<{url: string; outcomes: Outcome[]}> {
  const outcomes: Outcome[] = []
  const url = await listenForTest((req, res) => {
    handle(req, res).then(
      () => outcomes.push({}),
      (error: unknown) => {
        outcomes.push({error})
        if (res.headersSent) return res.destroy()
        const status = error instanceof HttpError ? error.status : 500
        res.writeHead(status, error instanceof HttpError ? {...error.headers} : {})
        res.end(STATUS_CODES[status])
      },
    )
  })
  return {url, outcomes}
}
