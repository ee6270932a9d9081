import {describe, expect, test} from 'vitest'
import {createHeaderParser, type CgiHead} from '../../src/cgi/response-parser.js'
import {BadGatewayError} from '../../src/errors.js'

const CHUNKINGS = [
  {chunking: 'in one chunk', chunkSize: Number.POSITIVE_INFINITY},
  {chunking: 'byte by byte', chunkSize: 1},
  {chunking: 'in 3-byte chunks', chunkSize: 3},
]

// Feeds `input` (latin1) in chunks of chunkSize; returns the head and every body byte, or throws what the parser threw.
function parse(input: string, {maxHeaderBytes = 1024, chunkSize = Number.POSITIVE_INFINITY} = {}) {
  const bytes = Buffer.from(input, 'latin1')
  const parser = createHeaderParser(maxHeaderBytes)
  for (let offset = 0; offset < bytes.length; offset += chunkSize) {
    const result = parser.feed(bytes.subarray(offset, offset + chunkSize))
    if (result.done) {
      const body = Buffer.concat([result.rest, bytes.subarray(offset + chunkSize)]).toString('latin1')
      return {head: result.head, body}
    }
  }
  parser.finish()
  throw new Error('finish() should have thrown: the input has no end of headers')
}

function errorOf(run: () => unknown): unknown {
  try {
    run()
  } catch (error) {
    return error
  }
  throw new Error('expected an error')
}

function head(fields: Partial<CgiHead>): CgiHead {
  return {status: null, statusText: null, location: null, contentType: null, headers: [], dropped: [], ...fields}
}

describe('accepted header blocks', () => {
  const cases: Array<{title: string; input: string; expected: CgiHead; body: string}> = [
    {
      title: 'a document response gives its Content-Type and the body after the blank line',
      input: 'Content-Type: text/plain\r\n\r\nhello',
      expected: head({contentType: 'text/plain', headers: [['Content-Type', 'text/plain']]}),
      body: 'hello',
    },
    {
      title: '\\n-only line ends are accepted',
      input: 'Content-Type: text/plain\nX-A: 1\n\nhello',
      expected: head({contentType: 'text/plain', headers: [['Content-Type', 'text/plain'], ['X-A', '1']]}),
      body: 'hello',
    },
    {
      title: 'mixed \\r\\n and \\n line ends are accepted',
      input: 'Content-Type: a\r\nX-A: 1\n\r\nbody',
      expected: head({contentType: 'a', headers: [['Content-Type', 'a'], ['X-A', '1']]}),
      body: 'body',
    },
    {
      title: 'the body is empty when the blank line is the last thing',
      input: 'Content-Type: a\r\n\r\n',
      expected: head({contentType: 'a', headers: [['Content-Type', 'a']]}),
      body: '',
    },
    {
      title: 'body bytes are kept raw, blank lines included',
      input: 'Content-Type: a\n\nline1\r\n\r\nStatus: 500\n',
      expected: head({contentType: 'a', headers: [['Content-Type', 'a']]}),
      body: 'line1\r\n\r\nStatus: 500\n',
    },
    {
      title: 'Status gives the code and reason phrase and is not among the headers',
      input: 'Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\n',
      expected: head({status: 404, statusText: 'Not Found', contentType: 'text/plain', headers: [['Content-Type', 'text/plain']]}),
      body: '',
    },
    {
      title: 'Status without a reason phrase has a null statusText',
      input: 'Status: 201\r\nContent-Type: a\r\n\r\n',
      expected: head({status: 201, contentType: 'a', headers: [['Content-Type', 'a']]}),
      body: '',
    },
    {
      title: 'Status 200 is the lowest accepted code',
      input: 'Status: 200\r\nContent-Type: a\r\n\r\n',
      expected: head({status: 200, contentType: 'a', headers: [['Content-Type', 'a']]}),
      body: '',
    },
    {
      title: 'Status 599 is the highest accepted code',
      input: 'Status: 599 Edge\r\nContent-Type: a\r\n\r\n',
      expected: head({status: 599, statusText: 'Edge', contentType: 'a', headers: [['Content-Type', 'a']]}),
      body: '',
    },
    {
      title: 'a Status: 204 block needs no Content-Type',
      input: 'Status: 204\r\n\r\n',
      expected: head({status: 204}),
      body: '',
    },
    {
      title: 'a Status: 304 block needs no Content-Type',
      input: 'Status: 304 Not Modified\r\nETag: "x"\r\n\r\n',
      expected: head({status: 304, statusText: 'Not Modified', headers: [['ETag', '"x"']]}),
      body: '',
    },
    {
      title: 'a Status: 404 block without Content-Type is accepted, as git http-backend sends it',
      input: 'Status: 404 Not Found\r\nExpires: Fri, 01 Jan 1980 00:00:00 GMT\r\n\r\n',
      expected: head({status: 404, statusText: 'Not Found', headers: [['Expires', 'Fri, 01 Jan 1980 00:00:00 GMT']]}),
      body: '',
    },
    {
      title: 'a Location-only block is accepted',
      input: 'Location: /other\r\n\r\n',
      expected: head({location: '/other', headers: [['Location', '/other']]}),
      body: '',
    },
    {
      title: 'a colon inside a value is part of the value',
      input: 'Location: http://example.test:8080/a?b=c:d\r\n\r\n',
      expected: head({location: 'http://example.test:8080/a?b=c:d', headers: [['Location', 'http://example.test:8080/a?b=c:d']]}),
      body: '',
    },
    {
      title: 'field names are compared case-insensitively and kept as written',
      input: 'STATUS: 302 Found\r\nlocation: /x\r\ncontent-TYPE: text/html\r\n\r\n',
      expected: head({
        status: 302, statusText: 'Found', location: '/x', contentType: 'text/html',
        headers: [['location', '/x'], ['content-TYPE', 'text/html']],
      }),
      body: '',
    },
    {
      title: 'optional whitespace around a value is trimmed',
      input: 'Content-Type: \t text/plain \t\r\nX-Empty:\r\nX-Tight:1\r\n\r\n',
      expected: head({contentType: 'text/plain', headers: [['Content-Type', 'text/plain'], ['X-Empty', ''], ['X-Tight', '1']]}),
      body: '',
    },
    {
      title: 'repeated headers are kept in order',
      input: 'Content-Type: a\r\nSet-Cookie: a=1\r\nX-B: 2\r\nSet-Cookie: b=2\r\n\r\n',
      expected: head({contentType: 'a', headers: [['Content-Type', 'a'], ['Set-Cookie', 'a=1'], ['X-B', '2'], ['Set-Cookie', 'b=2']]}),
      body: '',
    },
    {
      title: 'a folded line (obs-fold) is joined to its header with one space',
      input: 'Content-Type: text/html;\r\n   charset=utf-8\r\n\r\n',
      expected: head({contentType: 'text/html; charset=utf-8', headers: [['Content-Type', 'text/html; charset=utf-8']]}),
      body: '',
    },
    {
      title: 'a LF inside a value (only possible by folding) becomes a space',
      input: 'Content-Type: a\r\nX-A: one\n\ttwo\r\n\r\n',
      expected: head({contentType: 'a', headers: [['Content-Type', 'a'], ['X-A', 'one two']]}),
      body: '',
    },
    {
      title: 'HTAB inside a value is kept',
      input: 'Content-Type: a\r\nX-A: one\ttwo\r\n\r\n',
      expected: head({contentType: 'a', headers: [['Content-Type', 'a'], ['X-A', 'one\ttwo']]}),
      body: '',
    },
    {
      title: 'bytes above 0x7f pass through unchanged as latin1',
      input: 'Content-Type: a\r\nX-A: caf\xe9\r\n\r\n\xff',
      expected: head({contentType: 'a', headers: [['Content-Type', 'a'], ['X-A', 'caf\xe9']]}),
      body: '\xff',
    },
  ]
  test.each(cases.flatMap((testCase) => CHUNKINGS.map((chunking) => ({...testCase, ...chunking}))))(
    '$title ($chunking)',
    ({input, chunkSize, expected, body}) => {
      expect(parse(input, {chunkSize})).toEqual({head: expected, body})
    },
  )
})

describe('dropped headers', () => {
  test.each<{title: string; line: string; dropped: string}>([
    {title: 'a value containing CR is dropped', line: 'X-A: a\rInjected: 1', dropped: 'X-A'},
    {title: 'a value containing NUL is dropped', line: 'X-A: a\0b', dropped: 'X-A'},
    {title: 'a value containing ESC is dropped', line: 'X-A: a\x1b[31m', dropped: 'X-A'},
    {title: 'a value containing DEL is dropped', line: 'X-A: a\x7f', dropped: 'X-A'},
    {title: 'a value ending in a stray CR is dropped', line: 'X-A: a\r', dropped: 'X-A'},
    {title: 'Transfer-Encoding is dropped: the server frames the body', line: 'Transfer-Encoding: chunked', dropped: 'Transfer-Encoding'},
    {title: 'Content-Length is dropped: the server frames the body', line: 'content-length: 5', dropped: 'content-length'},
    {title: 'Connection is dropped', line: 'Connection: close', dropped: 'Connection'},
    {title: 'Keep-Alive is dropped', line: 'Keep-Alive: timeout=5', dropped: 'Keep-Alive'},
    {title: 'Upgrade is dropped', line: 'Upgrade: websocket', dropped: 'Upgrade'},
    {title: 'Trailer is dropped', line: 'Trailer: X-Checksum', dropped: 'Trailer'},
    {title: 'TE is dropped', line: 'TE: trailers', dropped: 'TE'},
  ])('$title and recorded', ({line, dropped}) => {
    const {head: parsed} = parse(`Content-Type: text/plain\r\n${line}\r\nX-After: 1\r\n\r\n`)
    expect(parsed.headers).toEqual([['Content-Type', 'text/plain'], ['X-After', '1']])
    expect(parsed.dropped).toEqual([dropped])
  })

  test('an empty Location is dropped and does not count as a Location', () => {
    const {head: parsed} = parse('Location:\r\nContent-Type: a\r\n\r\n')
    expect(parsed).toEqual(head({contentType: 'a', headers: [['Content-Type', 'a']], dropped: ['Location']}))
  })
})

describe('rejected header blocks', () => {
  const cases: Array<{title: string; input: string}> = [
    {title: 'a line without a colon', input: 'Content-Type: a\r\nbogus\r\n\r\n'},
    {title: 'an HTTP status line', input: 'HTTP/1.1 200 OK\r\nContent-Type: a\r\n\r\n'},
    {title: 'a folded line before any header', input: ' Content-Type: a\r\n\r\n'},
    {title: 'a space before the colon', input: 'Content-Type : a\r\n\r\n'},
    {title: 'an empty header name', input: ': a\r\nContent-Type: a\r\n\r\n'},
    {title: 'a header name with a non-token character', input: 'X(A): 1\r\nContent-Type: a\r\n\r\n'},
    {title: 'Status 99', input: 'Status: 99 Low\r\nContent-Type: a\r\n\r\n'},
    {title: 'Status 100 (interim responses are not final)', input: 'Status: 100\r\nContent-Type: a\r\n\r\n'},
    {title: 'Status 199', input: 'Status: 199 Hint\r\nContent-Type: a\r\n\r\n'},
    {title: 'Status 600', input: 'Status: 600 High\r\nContent-Type: a\r\n\r\n'},
    {title: 'Status abc', input: 'Status: abc\r\nContent-Type: a\r\n\r\n'},
    {title: 'Status with four digits', input: 'Status: 2000\r\nContent-Type: a\r\n\r\n'},
    {title: 'Status with the reason glued to the code', input: 'Status: 200OK\r\nContent-Type: a\r\n\r\n'},
    {title: 'an empty Status', input: 'Status:\r\nContent-Type: a\r\n\r\n'},
    {title: 'a Status with a control byte in its reason', input: 'Status: 200 O\rK\r\nContent-Type: a\r\n\r\n'},
    {title: 'two Status headers', input: 'Status: 200\r\nstatus: 404\r\nContent-Type: a\r\n\r\n'},
    {title: 'two Content-Type headers', input: 'Content-Type: a\r\nContent-Type: b\r\n\r\n'},
    {title: 'two Location headers', input: 'Location: /a\r\nLocation: /b\r\n\r\n'},
    {title: 'no headers before the blank line (\\r\\n)', input: '\r\nContent-Type: a\r\n\r\n'},
    {title: 'no headers before the blank line (\\n)', input: '\nbody'},
    {title: 'no Content-Type, Location or Status', input: 'X-A: 1\r\n\r\nbody'},
    {title: 'a Content-Type whose value has a control byte, so none is left', input: 'Content-Type: text/html\0\r\n\r\n'},
    {title: 'EOF before any byte', input: ''},
    {title: 'EOF in the middle of a header line', input: 'Content-Type: te'},
    {title: 'EOF after a header line but before the blank line', input: 'Content-Type: a\r\n'},
    {title: 'EOF between the CR and LF of the blank line', input: 'Content-Type: a\r\n\r'},
  ]
  test.each(cases.flatMap((testCase) => CHUNKINGS.map((chunking) => ({...testCase, ...chunking}))))(
    '$title is a bad gateway ($chunking)',
    ({input, chunkSize}) => {
      const error = errorOf(() => parse(input, {chunkSize}))
      expect(error).toBeInstanceOf(BadGatewayError)
      expect(error).toMatchObject({code: 'CGI_ERR_BAD_RESPONSE', status: 502})
    },
  )
})

describe('header block size limit', () => {
  const block = 'Content-Type: text/plain\r\nX-Pad: aaaaaaaaaa\r\n\r\n'
  const lfBlock = 'Content-Type: text/plain\nX-Pad: aaaaaaaaaa\n\n'

  test.each(CHUNKINGS.flatMap((chunking) => [
    {title: 'a block of exactly the limit is accepted', input: `${block}body`, maxHeaderBytes: block.length, ...chunking},
    {title: 'a \\n-only block of exactly the limit is accepted', input: lfBlock, maxHeaderBytes: lfBlock.length, ...chunking},
    {title: 'body bytes after the block do not count', input: block + 'b'.repeat(5000), maxHeaderBytes: block.length, ...chunking},
  ]))('$title ($chunking)', ({input, maxHeaderBytes, chunkSize}) => {
    expect(parse(input, {maxHeaderBytes, chunkSize}).head.contentType).toBe('text/plain')
  })

  test.each(CHUNKINGS.flatMap((chunking) => [
    {title: 'a block one byte past the limit', input: `${block}body`, maxHeaderBytes: block.length - 1, ...chunking},
    {title: 'a \\n-only block one byte past the limit', input: lfBlock, maxHeaderBytes: lfBlock.length - 1, ...chunking},
    {title: 'a block with no end that passes the limit', input: 'X-Pad: ' + 'a'.repeat(100), maxHeaderBytes: 50, ...chunking},
  ]))('$title is a bad gateway ($chunking)', ({input, maxHeaderBytes, chunkSize}) => {
    const error = errorOf(() => parse(input, {maxHeaderBytes, chunkSize}))
    expect(error).toBeInstanceOf(BadGatewayError)
    expect(error).toMatchObject({code: 'CGI_ERR_BAD_RESPONSE'})
  })

  test('a header line that never ends fails as soon as it passes the limit, before EOF', () => {
    const parser = createHeaderParser(64)
    expect(parser.feed(Buffer.alloc(64, 'a'))).toEqual({done: false})
    expect(() => parser.feed(Buffer.from('a'))).toThrow(BadGatewayError)
  })
})

describe('parser lifecycle', () => {
  test('feed returns done: false until the blank line arrives', () => {
    const parser = createHeaderParser(1024)
    expect(parser.feed(Buffer.from('Content-Type: a\r\n'))).toEqual({done: false})
    expect(parser.feed(Buffer.alloc(0))).toEqual({done: false})
    expect(parser.feed(Buffer.from('\r\nbody'))).toMatchObject({done: true, rest: Buffer.from('body')})
  })

  test('finish after the end of the headers does not throw', () => {
    const parser = createHeaderParser(1024)
    parser.feed(Buffer.from('Content-Type: a\n\n'))
    expect(() => parser.finish()).not.toThrow()
  })

  test('feed after the end of the headers is a programming error, not a bad gateway', () => {
    const parser = createHeaderParser(1024)
    parser.feed(Buffer.from('Content-Type: a\n\n'))
    const error = errorOf(() => parser.feed(Buffer.from('more')))
    expect(error).toBeInstanceOf(Error)
    expect(error).not.toBeInstanceOf(BadGatewayError)
  })
})
