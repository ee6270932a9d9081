// The server's log: one access line per request (Combined/Common Log Format) and one record per script run.
// Everything a client must not see (script stderr, paths, causes) goes here; tests inject their own sink.

export interface RunRecord {
  readonly requestId: number
  readonly script: string
  readonly pid: number
  readonly code: number | null
  readonly signal: string | null
  /** Why cgibox killed the run (deadline, output-cap, client-gone, shutdown, …), or null. */
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
  readonly remoteAddress: string
  readonly time: Date
  readonly method: string
  readonly url: string
  readonly httpVersion: string
  readonly status: number
  readonly bytes: number
  readonly referer: string | undefined
  readonly userAgent: string | undefined
}

export interface Logger {
  access(record: AccessRecord): void
  run(record: RunRecord): void
  /** A script's stderr, already capped, one call per run. */
  stderr(requestId: number, script: string, text: string): void
  error(message: string, fields?: Record<string, unknown>): void
  info(message: string): void
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

// Formats a date as CLF does: 10/Oct/2000:13:55:36 +0000 (UTC).
export function formatClfDate(date: Date): string {
  const pad = (value: number) => String(value).padStart(2, '0')
  return `${pad(date.getUTCDate())}/${MONTHS[date.getUTCMonth()]}/${date.getUTCFullYear()}:` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`
}

// Formats one access line; quoted fields escape `"`, `\` and control bytes so a request cannot forge lines.
export function formatAccessLine(record: AccessRecord, format: 'combined' | 'common'): string {
  const common = `${record.remoteAddress} - - [${formatClfDate(record.time)}] ` +
    `"${escapeField(`${record.method} ${record.url} HTTP/${record.httpVersion}`)}" ${record.status} ${record.bytes || '-'}`
  if (format === 'common') return common
  return `${common} "${escapeField(record.referer ?? '-')}" "${escapeField(record.userAgent ?? '-')}"`
}

// Formats a run record as one key=value line.
export function formatRunLine(record: RunRecord): string {
  const outcome = record.signal ? `signal=${record.signal}` : `exit=${record.code}`
  return `run #${record.requestId} ${escapeField(record.script)} pid=${record.pid} ${outcome}` +
    ` kill=${record.killReason ?? '-'} limit=${record.limitHit ?? '-'} ms=${record.ms} in=${record.bytesIn} out=${record.bytesOut}` +
    (record.warm ? ' warm=1' : '')
}

// The logger cgibox uses when run from the command line: access lines to stdout, the rest to stderr.
export function createConsoleLogger(accessFormat: 'combined' | 'common' | 'off'): Logger {
  return {
    access(record) {
      if (accessFormat !== 'off') process.stdout.write(formatAccessLine(record, accessFormat) + '\n')
    },
    run(record) {
      process.stderr.write(formatRunLine(record) + '\n')
    },
    stderr(requestId, script, text) {
      for (const line of text.split('\n')) {
        if (line !== '') process.stderr.write(`stderr #${requestId} ${escapeField(script)}: ${escapeField(line)}\n`)
      }
    },
    error(message, fields) {
      process.stderr.write(`error: ${escapeField(message)}${fields ? ' ' + JSON.stringify(fields) : ''}\n`)
    },
    info(message) {
      process.stderr.write(`${message}\n`)
    },
  }
}

function escapeField(text: string): string {
  return text.replace(/[\\"\x00-\x1f\x7f]/g, (char) =>
    char === '"' || char === '\\' ? `\\${char}` : `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`)
}
