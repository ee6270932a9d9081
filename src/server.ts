// The HTTP server around the app (app.ts): listening, connection limits and timeouts, and the shutdown order. SIGTERM
// drains: health answers 503 at once, new connections are still taken for drainMs (a load balancer's health check
// notices), then refused; running scripts and requests finish within shutdownGraceMs, and the rest is killed.
import http from 'node:http'
import type {AddressInfo, Socket} from 'node:net'
import {createApp, type App, type AppOptions} from './app.js'
import type {Config} from './config.js'

export interface RunningServer {
  /** `http://HOST:PORT/` with the real port. */
  readonly url: string
  readonly port: number
  readonly server: http.Server
  /** The sandbox levels in use and what they enforce, a line each. */
  readonly sandbox: string
  readonly app: App
  /** Swaps in a new config for new requests (listening address excepted); throws, keeping the old, when it cannot. */
  reload(config: Config): Promise<void>
  /** Drains (health 503), waits drainMs, stops accepting, lets running scripts finish for shutdownGraceMs, kills the rest. */
  close(): Promise<void>
}

export type ServerOptions = AppOptions

/** How often Node checks the header and request timeouts (its default is 30 s, which lets a silent socket live on). */
const CONNECTIONS_CHECKING_INTERVAL_MS = 1_000

// Starts cgibox on config.host:config.port and resolves once it is listening.
export async function startServer(config: Config, options: ServerOptions = {}): Promise<RunningServer> {
  const app = await createApp(config, options)
  const server = http.createServer({
    requestTimeout: config.requestTimeoutMs,
    headersTimeout: config.headersTimeoutMs,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS,
  }, (req, res) => {
    connections.busy(req.socket)
    res.once('close', () => connections.idle(req.socket))
    app.handle(req, res)
  })
  const connections = trackConnections(server, () => app.config.maxConnections)
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(config.port, config.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } catch (error) {
    await app.close()
    throw error
  }
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  let closing: Promise<void> | null = null
  return {
    url: `http://${host}:${address.port}/`,
    port: address.port,
    server,
    get sandbox() { return app.sandboxDescription },
    app,
    reload: (next) => app.reload(next),
    close() {
      closing ??= (async () => {
        app.drain()
        const {drainMs, shutdownGraceMs} = app.config
        if (drainMs > 0) await new Promise((resolve) => setTimeout(resolve, drainMs))
        const closed = new Promise<void>((resolve) => server.close(() => resolve()))
        server.closeIdleConnections()
        await app.finish(shutdownGraceMs)
        connections.destroyAll()
        await closed
      })().finally(() => app.close())
      return closing
    },
  }
}

// Every open connection and whether a request is in flight on it. Past maxConnections, a new connection makes room
// by closing the oldest idle one (a silent socket, one between requests, one still sending its headers); when every
// connection has a request in flight, the new one is closed instead. Service goes on at the cap.
function trackConnections(server: http.Server, maxConnections: () => number) {
  const sockets = new Map<Socket, number>() // socket → requests in flight; insertion order = oldest first
  server.on('connection', (socket: Socket) => {
    if (sockets.size >= maxConnections()) {
      const oldestIdle = [...sockets].find(([, busy]) => busy === 0)?.[0]
      if (oldestIdle === undefined) {
        socket.destroy()
        return
      }
      sockets.delete(oldestIdle)
      oldestIdle.destroy()
    }
    sockets.set(socket, 0)
    socket.once('close', () => sockets.delete(socket))
  })
  return {
    busy(socket: Socket) {
      if (sockets.has(socket)) sockets.set(socket, sockets.get(socket)! + 1)
    },
    idle(socket: Socket) {
      const busy = sockets.get(socket)
      if (busy !== undefined) sockets.set(socket, Math.max(0, busy - 1))
    },
    destroyAll() {
      for (const socket of sockets.keys()) socket.destroy()
    },
  }
}
