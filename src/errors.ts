// Errors that end a request with a specific HTTP status, with stable codes (fastify FST_ERR_*, undici UND_ERR_*).
// app.ts (sendError) is the only place that turns them into responses; messages go to the log, never to clients.

export interface HttpErrorOptions {
  cause?: unknown
  headers?: Record<string, string>
}

// Base class: a status, a stable code, extra response headers (Allow, Retry-After, Content-Range).
export class HttpError extends Error {
  readonly status: number
  readonly code: string
  readonly headers: Readonly<Record<string, string>>
  constructor(status: number, code: string, message: string, options: HttpErrorOptions = {}) {
    super(message, {cause: options.cause})
    this.name = new.target.name
    this.status = status
    this.code = code
    this.headers = options.headers ?? {}
  }
}

type Options = HttpErrorOptions

export class BadRequestError extends HttpError {
  constructor(message = 'Bad Request', options?: Options) {
    super(400, 'CGI_ERR_BAD_PATH', message, options)
  }
}
// An upload (static/upload.ts) that is not a whole multipart/form-data form with a file, or whose client went away.
export class BadUploadError extends HttpError {
  constructor(message = 'Bad Request', options?: Options) {
    super(400, 'CGI_ERR_BAD_UPLOAD', message, options)
  }
}
export class ForbiddenError extends HttpError {
  constructor(message = 'Forbidden', options?: Options) {
    super(403, 'CGI_ERR_FORBIDDEN', message, options)
  }
}
export class NotFoundError extends HttpError {
  constructor(message = 'Not Found', options?: Options) {
    super(404, 'CGI_ERR_NOT_FOUND', message, options)
  }
}
export class MethodNotAllowedError extends HttpError {
  constructor(allow: string, message = 'Method Not Allowed', options?: Options) {
    super(405, 'CGI_ERR_METHOD', message, {...options, headers: {...options?.headers, Allow: allow}})
  }
}
// The client stopped sending its body (idle past bodyIdleTimeoutMs) or took longer than requestTimeoutMs.
export class RequestTimeoutError extends HttpError {
  constructor(message = 'Request Timeout', options?: Options) {
    super(408, 'CGI_ERR_REQUEST_TIMEOUT', message, options)
  }
}
// The request needs HTTP Basic credentials (a location's auth) and brought none that are valid.
export class UnauthorizedError extends HttpError {
  constructor(challenge: string, message = 'Unauthorized', options?: Options) {
    super(401, 'CGI_ERR_UNAUTHORIZED', message, {...options, headers: {...options?.headers, 'WWW-Authenticate': challenge}})
  }
}
export class PreconditionFailedError extends HttpError {
  constructor(message = 'Precondition Failed', options?: Options) {
    super(412, 'CGI_ERR_PRECONDITION', message, options)
  }
}
export class PayloadTooLargeError extends HttpError {
  constructor(message = 'Payload Too Large', options?: Options) {
    super(413, 'CGI_ERR_BODY_TOO_LARGE', message, options)
  }
}
export class RangeNotSatisfiableError extends HttpError {
  constructor(size: number, message = 'Range Not Satisfiable', options?: Options) {
    super(416, 'CGI_ERR_RANGE', message, {...options, headers: {...options?.headers, 'Content-Range': `bytes */${size}`}})
  }
}
export class InternalServerError extends HttpError {
  constructor(message = 'Internal Server Error', options?: Options) {
    super(500, 'CGI_ERR_INTERNAL', message, options)
  }
}
// The interpreter a script needs is not installed, or the script cannot be prepared (a .ts syntax error).
export class ScriptSetupError extends HttpError {
  constructor(message: string, options?: Options) {
    super(500, 'CGI_ERR_SCRIPT_SETUP', message, options)
  }
}
export class BadGatewayError extends HttpError {
  constructor(message = 'Bad Gateway', options?: Options) {
    super(502, 'CGI_ERR_BAD_RESPONSE', message, options)
  }
}
export class OutputLimitError extends HttpError {
  constructor(message = 'Bad Gateway', options?: Options) {
    super(502, 'CGI_ERR_OUTPUT_LIMIT', message, options)
  }
}
export class ServiceUnavailableError extends HttpError {
  constructor(retryAfterSeconds: number, message = 'Service Unavailable', options?: Options, code = 'CGI_ERR_BUSY') {
    super(503, code, message, {...options, headers: {...options?.headers, 'Retry-After': String(retryAfterSeconds)}})
  }
}
// The spool budget (maxSpoolBytes) is used up: told apart from busy slots in the metrics.
export class SpoolFullError extends ServiceUnavailableError {
  constructor(retryAfterSeconds: number, message: string) {
    super(retryAfterSeconds, message, undefined, 'CGI_ERR_SPOOL_FULL')
  }
}
export class GatewayTimeoutError extends HttpError {
  constructor(message = 'Gateway Timeout', options?: Options) {
    super(504, 'CGI_ERR_TIMEOUT', message, options)
  }
}
