// The server's log: one access line per request (Combined/Common Log Format, or JSON) and one record per script
// run, each with an ISO timestamp and the request id that joins them (also sent back as X-Request-Id). Everything a
// client must not see (script stderr, paths, causes) goes here; tests inject their own sink.
import pino from 'pino'

export type LogFormat = 'text' | 'json'
export type AccessFormat = 'combined' | 'common' | 'off'

export interface RunRecord {
  readonly requestId: string
  readonly script: string
  readonly pid: number
  readonly code: number | null
  readonly signal: string | null
  /** Why cgibox killed the run (deadline, output-cap, client-gone, shutdown, …), or null when it ended by itself. */
  readonly killReason: string | null
  /** What the sandbox saw, e.g. the memory or process limit was hit. */
  readonly limitHit: string | null
  readonly ms: number
  readonly bytesIn: number
  readonly bytesOut: number
  /** Whether it ran in a warm Python zygote (else exec'd). */
  readonly warm?: boolean
}

export interface AccessRecord {
  readonly requestId: string
  readonly remoteAddress: string
  readonly time: Date
  readonly method: string
  readonly url: string
  readonly httpVersion: string
  readonly status: number
  /** Body bytes sent (not socket bytes: no headers, no chunk framing). */
  readonly bytes: number
  readonly referer: string | undefined
  readonly userAgent: string | undefined
  readonly ms: number
  /** Why a response that had started was cut off (deadline, output-cap, client-gone, error, …), or null. */
  readonly cut: string | null
}

export interface Logger {
  access(record: AccessRecord): void
  run(record: RunRecord): void
  /** A script's stderr, already capped, one call per run. */
  stderr(requestId: string, script: string, text: string): void
  error(message: string, fields?: Record<string, unknown>): void
  info(message: string): void
  /** Writes out anything buffered (at exit). */
  flush?(): void
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

// Formats a date as CLF does: 10/Oct/2000:13:55:36 +0000 (UTC).
export function formatClfDate(date: Date): string {
  const pad = (value: number) => String(value).padStart(2, '0')
  return `${pad(date.getUTCDate())}/${MONTHS[date.getUTCMonth()]}/${date.getUTCFullYear()}:` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`
}

// Formats one access line: the Common or Combined Log Format (body bytes in %b), then `rid=… at=<ISO> ms=…` and, for a
// response cut off after its headers, `cut=<reason>`. Quoted fields escape `"`, `\` and control bytes, so a request
// cannot forge lines.
export function formatAccessLine(record: AccessRecord, format: 'combined' | 'common'): string {
  const common = `${record.remoteAddress} - - [${formatClfDate(record.time)}] ` +
    `"${escapeField(`${record.method} ${record.url} HTTP/${record.httpVersion}`)}" ${record.status} ${record.bytes || '-'}`
  const clf = format === 'common' ? common : `${common} "${escapeField(record.referer ?? '-')}" "${escapeField(record.userAgent ?? '-')}"`
  return `${clf} rid=${record.requestId} at=${record.time.toISOString()} ms=${record.ms}${record.cut ? ` cut=${record.cut}` : ''}`
}

// Formats a run record as one key=value line.
export function formatRunLine(record: RunRecord): string {
  const outcome = record.signal ? `signal=${record.signal}` : `exit=${record.code}`
  return `run ${record.requestId} ${escapeField(record.script)} pid=${record.pid} ${outcome}` +
    ` kill=${record.killReason ?? '-'} limit=${record.limitHit ?? '-'} ms=${record.ms} in=${record.bytesIn} out=${record.bytesOut}` +
    (record.warm ? ' warm=1' : '')
}

// The logger cgibox uses when run from the command line: access lines to stdout, the rest to stderr, each stderr line
// led by its ISO timestamp (text), or JSON lines through pino with `time` (ISO) and `rid`.
export function createConsoleLogger(accessFormat: AccessFormat, format: LogFormat = 'text'): Logger {
  return format === 'json' ? createJsonLogger(accessFormat) : createTextLogger(accessFormat)
}

function createTextLogger(accessFormat: AccessFormat): Logger {
  const now = () => new Date().toISOString()
  return {
    access(record) {
      if (accessFormat !== 'off') process.stdout.write(formatAccessLine(record, accessFormat) + '\n')
    },
    run(record) {
      process.stderr.write(`${now()} ${formatRunLine(record)}\n`)
    },
    stderr(requestId, script, text) {
      const time = now()
      for (const line of text.split('\n')) {
        if (line !== '') process.stderr.write(`${time} stderr ${requestId} ${escapeField(script)}: ${escapeField(line)}\n`)
      }
    },
    error(message, fields) {
      process.stderr.write(`${now()} error: ${escapeField(message)}${fields ? ' ' + JSON.stringify(fields) : ''}\n`)
    },
    info(message) {
      process.stderr.write(`${now()} ${escapeField(message)}\n`)
    },
  }
}

// JSON lines: pino writes them (asynchronously, flushed at exit); pino-pretty reads them. No pretty-printer here.
function createJsonLogger(accessFormat: AccessFormat): Logger {
  const options: pino.LoggerOptions = {base: null, timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'msg'}
  const outDestination = pino.destination({dest: 1, sync: false})
  const errDestination = pino.destination({dest: 2, sync: false})
  const out = pino(options, outDestination)
  const err = pino(options, errDestination)
  return {
    access(record) {
      if (accessFormat === 'off') return
      out.info({
        type: 'access', rid: record.requestId, remote: record.remoteAddress, method: record.method, url: record.url,
        protocol: `HTTP/${record.httpVersion}`, status: record.status, bytes: record.bytes, ms: record.ms,
        referer: record.referer, userAgent: record.userAgent, cut: record.cut ?? undefined,
      }, 'access')
    },
    run(record) {
      const {requestId, ...rest} = record
      err.info({type: 'run', rid: requestId, ...rest}, 'run')
    },
    stderr(requestId, script, text) {
      err.info({type: 'stderr', rid: requestId, script, text}, 'stderr')
    },
    error(message, fields) {
      const {requestId, ...rest} = fields ?? {}
      err.error({type: 'error', rid: requestId, ...rest}, message)
    },
    info(message) {
      err.info({type: 'info'}, message)
    },
    flush() {
      for (const destination of [outDestination, errDestination]) {
        try {
          destination.flushSync()
        } catch {
          // not open yet, or the reader is gone: nothing more can be written anyway
        }
      }
    },
  }
}

function escapeField(text: string): string {
  return text.replace(/[\\"\x00-\x1f\x7f]/g, (char) =>
    char === '"' || char === '\\' ? `\\${char}` : `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`)
}
