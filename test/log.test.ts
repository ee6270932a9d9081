// The log formats: Common/Combined Log Format lines and run records that a request cannot forge.
import {describe, expect, test} from 'vitest'
import {formatAccessLine, formatClfDate, formatRunLine, type AccessRecord, type RunRecord} from '../src/log.js'

const ACCESS: AccessRecord = {
  requestId: 'r1', remoteAddress: '127.0.0.1', time: new Date(Date.UTC(2000, 9, 10, 13, 55, 36)), method: 'GET', url: '/a?b=1',
  httpVersion: '1.1', status: 200, bytes: 2326, referer: 'http://x/', userAgent: 'curl/8', ms: 12, cut: null,
}
const TAIL = ' rid=r1 at=2000-10-10T13:55:36.000Z ms=12'

describe('access lines', () => {
  test.each([
    ['common', ACCESS, '127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /a?b=1 HTTP/1.1" 200 2326' + TAIL],
    ['combined', ACCESS, '127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /a?b=1 HTTP/1.1" 200 2326 "http://x/" "curl/8"' + TAIL],
    ['combined', {...ACCESS, bytes: 0, referer: undefined, userAgent: undefined},
      '127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /a?b=1 HTTP/1.1" 200 - "-" "-"' + TAIL],
    ['combined', {...ACCESS, url: '/x" 200 1\nforged', userAgent: 'a\\b"c'},
      '127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /x\\" 200 1\\x0aforged HTTP/1.1" 200 2326 "http://x/" "a\\\\b\\"c"' + TAIL],
    // A response cut off after its headers keeps the status it was sent with and says why it was cut.
    ['combined', {...ACCESS, cut: 'deadline'},
      '127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /a?b=1 HTTP/1.1" 200 2326 "http://x/" "curl/8"' + TAIL + ' cut=deadline'],
  ] as const)('%s: %j', (format, record, line) => {
    expect(formatAccessLine(record, format)).toBe(line)
  })

  test('dates are UTC with two-digit fields', () => {
    expect(formatClfDate(new Date(Date.UTC(2026, 0, 2, 3, 4, 5)))).toBe('02/Jan/2026:03:04:05 +0000')
  })
})

describe('run records', () => {
  const RUN: RunRecord = {
    requestId: 'r7', script: '/cgi-bin/env.py', pid: 42, code: 0, signal: null, killReason: null, limitHit: null,
    ms: 21, bytesIn: 0, bytesOut: 1983,
  }
  test.each([
    [RUN, 'run r7 /cgi-bin/env.py pid=42 exit=0 kill=- limit=- ms=21 in=0 out=1983'],
    [{...RUN, code: null, signal: 'SIGKILL', killReason: 'deadline', limitHit: 'memory'},
      'run r7 /cgi-bin/env.py pid=42 signal=SIGKILL kill=deadline limit=memory ms=21 in=0 out=1983'],
    [{...RUN, script: '/cgi-bin/a\nrun r8 forged'}, 'run r7 /cgi-bin/a\\x0arun r8 forged pid=42 exit=0 kill=- limit=- ms=21 in=0 out=1983'],
    [{...RUN, warm: true}, 'run r7 /cgi-bin/env.py pid=42 exit=0 kill=- limit=- ms=21 in=0 out=1983 warm=1'],
  ] as const)('%#: one line per run', (record, line) => {
    expect(formatRunLine(record)).toBe(line)
  })
})
