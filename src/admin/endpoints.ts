// The reserved prefix /.cgibox/ (never a file or a script: the router hides dotfiles): health for load balancers,
// Prometheus metrics, the status page. Answered to loopback clients and the addresses of adminAllow only; everyone
// else gets the 404 any other missing path gets. The client is the one trustProxy names: behind a proxy on loopback,
// the proxy's own address would let every client in.
import type {IncomingMessage, ServerResponse} from 'node:http'
import {createAddressList} from '../address-list.js'
import type {Metrics} from '../metrics.js'
import {renderStatusPage, type Status} from './status-page.js'

/** The reserved URL prefix of the admin endpoints. */
export const ADMIN_PREFIX = '/.cgibox/'

export interface AdminSources {
  /** False while draining: health answers 503 so load balancers stop sending. */
  accepting(): boolean
  readonly metrics: Metrics
  status(): Status
}

/**
 * Answers an admin request (true), or leaves it (false: not an admin path, or not an allowed client). `client` is the
 * client's address: the peer, or the address a trusted proxy named (app.ts clientAddress).
 */
export type AdminHandler = (req: IncomingMessage, res: ServerResponse, url: string, client: string) => Promise<boolean>

// Builds the handler; `allow` holds addresses and CIDR ranges (IPv4 and IPv6) besides loopback.
export function createAdminHandler(allow: readonly string[], sources: AdminSources): AdminHandler {
  const allowed = createAddressList(allow, 'adminAllow', true)
  return async (req, res, url, client) => {
    if (!url.startsWith(ADMIN_PREFIX)) return false
    if (!allowed.has(client)) return false
    const query = url.indexOf('?')
    const name = (query === -1 ? url : url.slice(0, query)).slice(ADMIN_PREFIX.length)
    const format = new URLSearchParams(query === -1 ? '' : url.slice(query + 1)).get('format')
    res.setHeader('Cache-Control', 'no-store')
    res.setHeader('X-Content-Type-Options', 'nosniff')
    switch (name) {
      case 'health': {
        const accepting = sources.accepting()
        send(res, accepting ? 200 : 503, 'text/plain; charset=utf-8', accepting ? 'ok\n' : 'draining\n')
        return true
      }
      case 'metrics':
        send(res, 200, sources.metrics.registry.contentType, await sources.metrics.registry.metrics())
        return true
      case 'status': {
        const status = sources.status()
        if (format === 'json') send(res, 200, 'application/json; charset=utf-8', JSON.stringify(status, null, 2) + '\n')
        else {
          res.setHeader('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'")
          send(res, 200, 'text/html; charset=utf-8', renderStatusPage(status))
        }
        return true
      }
      default:
        return false
    }
  }
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.statusCode = status
  res.setHeader('Content-Type', type)
  res.setHeader('Content-Length', Buffer.byteLength(body))
  res.end(res.req.method === 'HEAD' ? undefined : body)
}
