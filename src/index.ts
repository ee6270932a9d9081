// cgibox as a library: `createCgiHandler` gives a `(req, res)` handler for node:http, Express, Fastify (its raw
// request and response) with the same options and guarantees as the command line, like Go's cgi.Handler and the npm
// `cgi` package; `startServer` is the command line's server.
import type {IncomingMessage, ServerResponse} from 'node:http'
import {createApp, type AppOptions} from './app.js'
import {normalizeConfig, type Config, type RawConfig} from './config.js'

export type {Config, Limits, Location, RawConfig} from './config.js'
export type {Logger, AccessRecord, RunRecord} from './log.js'
export {normalizeConfig} from './config.js'
export {startServer, type RunningServer, type ServerOptions} from './server.js'

export interface CgiHandler {
  /** Serves one request; never throws (errors become responses). */
  (req: IncomingMessage, res: ServerResponse, next?: unknown): void
  /** The sandbox levels in use and what they enforce, a line each. */
  readonly sandbox: string
  readonly config: Config
  /** Lets running scripts finish for shutdownGraceMs, kills the rest, and removes cgibox's run-time files. */
  close(): Promise<void>
}

// Creates a handler from the same settings as the config file (relative paths against `baseDir`, default: the cwd);
// rejects naming the option when a setting is bad or the sandbox cannot be set up. The handler serves the request's
// `url` as the path (Express: relative to where it is mounted). Connection limits and timeouts are the host server's.
export async function createCgiHandler(settings: RawConfig = {}, options: AppOptions & {baseDir?: string} = {}): Promise<CgiHandler> {
  const config = normalizeConfig(settings, options.baseDir)
  const app = await createApp(config, options)
  const handler = ((req: IncomingMessage, res: ServerResponse) => app.handle(req, res)) as CgiHandler
  return Object.defineProperties(handler, {
    sandbox: {get: () => app.sandboxDescription},
    config: {get: () => app.config},
    close: {
      value: async () => {
        await app.finish(app.config.shutdownGraceMs)
        await app.close()
      },
    },
  })
}
