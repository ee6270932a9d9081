// Incremental parser of a CGI script's header block (RFC 3875 §6): bytes in, status + headers + first body bytes out.
// Pure, with no stream code; the caller decides the final status (Location without Status, §6.2.3/§6.2.4).
import {BadGatewayError} from '../errors.js'

// The parsed header block. Values are latin1 strings, so each byte reaches the client unchanged.
export interface CgiHead {
  /** From `Status:`, 200–599, or null when the script sent none. */
  status: number | null
  /** The reason phrase after the code, or null. */
  statusText: string | null
  location: string | null
  contentType: string | null
  /** Every forwarded header except Status, in order, names as the script wrote them (Location, Content-Type included). */
  headers: Array<[string, string]>
  /** Names of headers that were dropped (unsafe value or framing/hop-by-hop header), for the log. */
  dropped: string[]
}

// `rest` holds the body bytes that came in the same chunk as the end of the header block.
export type ParseResult = {done: false} | {done: true; head: CgiHead; rest: Buffer}

// Feed stdout chunks until done; call finish() at EOF (it throws when the header block never ended).
export interface HeaderParser {
  feed(chunk: Buffer): ParseResult
  finish(): void
}

// A header field name must be an RFC 9110 §5.1 token.
const TOKEN_REGEXP = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
// RFC 9110 §5.5 field-value bytes (HTAB, SP, VCHAR, obs-text): the same set node:http setHeader accepts.
const FIELD_VALUE_REGEXP = /^[\t\x20-\x7e\x80-\xff]*$/
// RFC 3875 §6.3.3: Status: 3-digit code, optionally SP and a reason phrase.
const STATUS_REGEXP = /^([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?$/
// RFC 3875 §6.2: each CGI field may appear at most once.
const CGI_FIELDS = new Set(['status', 'location', 'content-type'])
// The server frames the body itself; a script's framing or hop-by-hop headers could split or hijack the response.
const HOP_BY_HOP_HEADERS = new Set(['transfer-encoding', 'content-length', 'connection', 'keep-alive', 'upgrade', 'trailer', 'te'])

// A parser for one response; the header block (line ends and blank line included) may be at most maxHeaderBytes.
export function createHeaderParser(maxHeaderBytes: number): HeaderParser {
  const fields: Array<[string, string]> = []
  let partialLine: Buffer[] = []
  let headerBytes = 0
  let done = false

  const countBytes = (count: number) => {
    headerBytes += count
    if (headerBytes > maxHeaderBytes) throw new BadGatewayError(`cgi: header block larger than ${maxHeaderBytes} bytes`)
  }

  return {
    feed(chunk) {
      if (done) throw new Error('cgi: feed() called after the end of the header block')
      let start = 0
      for (let newline = chunk.indexOf(0x0a); newline !== -1; newline = chunk.indexOf(0x0a, start)) {
        countBytes(newline + 1 - start)
        partialLine.push(chunk.subarray(start, newline))
        const line = Buffer.concat(partialLine).toString('latin1').replace(/\r$/, '') // \r\n and \n both end a line
        partialLine = []
        start = newline + 1
        if (line === '') {
          done = true
          return {done: true, head: buildHead(fields), rest: chunk.subarray(start)}
        }
        addLine(fields, line)
      }
      countBytes(chunk.length - start)
      if (start < chunk.length) partialLine.push(chunk.subarray(start))
      return {done: false}
    },
    finish() {
      if (!done) throw new BadGatewayError('cgi: script ended before the end of its headers')
    },
  }
}

function addLine(fields: Array<[string, string]>, line: string): void {
  const previous = fields.at(-1)
  if ((line.startsWith(' ') || line.startsWith('\t')) && previous) {
    // RFC 9112 §5.2: a gateway either rejects obs-fold or replaces it with SP; dropping the line could cut a
    // value short (a truncated Content-Security-Policy is weaker), so unfold it.
    previous[1] = [previous[1], trimOws(line)].filter((part) => part !== '').join(' ')
    return
  }
  const colon = line.indexOf(':')
  if (colon === -1) throw new BadGatewayError(`cgi: bogus header line: ${quote(line)}`)
  const name = line.slice(0, colon)
  if (!TOKEN_REGEXP.test(name)) throw new BadGatewayError(`cgi: invalid header name: ${quote(name)}`)
  fields.push([name, trimOws(line.slice(colon + 1))])
}

function buildHead(fields: ReadonlyArray<readonly [string, string]>): CgiHead {
  if (fields.length === 0) throw new BadGatewayError('cgi: no headers')
  const head: CgiHead = {status: null, statusText: null, location: null, contentType: null, headers: [], dropped: []}
  const seen = new Set<string>()
  for (const [name, value] of fields) {
    const key = name.toLowerCase() // field names are case-insensitive (Go compares "Status" exactly)
    if (CGI_FIELDS.has(key)) {
      if (seen.has(key)) throw new BadGatewayError(`cgi: more than one ${name} header`)
      seen.add(key)
    }
    if (key === 'status') {
      parseStatus(value, head)
      continue
    }
    // CR, LF, NUL or another control byte must never reach the client; an empty Location/Content-Type means nothing.
    if (HOP_BY_HOP_HEADERS.has(key) || !FIELD_VALUE_REGEXP.test(value) || (value === '' && CGI_FIELDS.has(key))) {
      head.dropped.push(name)
      continue
    }
    if (key === 'location') head.location = value
    if (key === 'content-type') head.contentType = value
    head.headers.push([name, value])
  }
  // RFC 3875 §6.2 wants Content-Type on a document response. Like Go, a Status alone is enough:
  // git http-backend answers `Status: 404 Not Found` with no Content-Type and no body.
  if (head.contentType === null && head.location === null && head.status === null) {
    throw new BadGatewayError('cgi: missing required Content-Type in headers')
  }
  return head
}

function parseStatus(value: string, head: CgiHead): void {
  const match = STATUS_REGEXP.exec(value)
  const status = Number(match?.[1])
  // 1xx are interim responses: sent as final ones, the client would wait for a response that never comes.
  if (!match || status < 200 || status > 599) throw new BadGatewayError(`cgi: bogus status: ${quote(value)}`)
  head.status = status
  head.statusText = trimOws(match[2] ?? '') || null
}

function quote(text: string): string {
  return JSON.stringify(text.length > 100 ? `${text.slice(0, 100)}…` : text)
}

function trimOws(text: string): string {
  return text.replace(/^[ \t]+|[ \t]+$/g, '')
}
