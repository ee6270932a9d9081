// Uploads into listed directories (issue 4, item 4) through a real cgibox: safe names, no overwrite, size cap,
// no scripts, no cgi-bin, and no file left behind by a failed or abandoned upload.
import {createHash, randomBytes} from 'node:crypto'
import {mkdir, readdir, readFile, stat, symlink, writeFile} from 'node:fs/promises'
import {STATUS_CODES} from 'node:http'
import path from 'node:path'
import {describe, expect, test} from 'vitest'
import {normalizeConfig} from '../../src/config.js'
import {BadUploadError, ForbiddenError, HttpError} from '../../src/errors.js'
import {createBodySpooler} from '../../src/limits/body-limit.js'
import {normalizeUploadName, receiveUpload, UPLOAD_TEMP_PREFIX, type UploadOptions} from '../../src/static/upload.js'
import {parseManifest, UPLOAD_MANIFEST} from '../../src/static/upload-manifest.js'
import {openSocket, rawRequest} from '../helpers/http.js'
import {FIXTURES, startTestServer, type TestServer} from '../helpers/server.js'
import {listenForTest} from '../helpers/static-server.js'
import {makeTempDir} from '../helpers/temp-dir.js'

const BOUNDARY = 'cgibox-test-boundary-7f3a'
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex')
const SCRIPT_EXTENSIONS = new Set(['.py', '.ts', '.mts', '.pl', '.php', '.rb', '.sh', '.cgi', '.js', '.mjs'])

interface Part {
  /** Everything after `form-data; name="file"` in Content-Disposition, raw (e.g. `; filename="../x"`). */
  readonly disposition: string
  readonly content: Buffer
  readonly contentType?: string
}

// A multipart/form-data body built by hand, so that filenames reach the server exactly as written (FormData
// would escape or strip them).
function multipart(parts: readonly Part[], {close = true} = {}): Buffer {
  const chunks: Buffer[] = []
  for (const part of parts) {
    chunks.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"${part.disposition}\r\n` +
      `Content-Type: ${part.contentType ?? 'application/octet-stream'}\r\n\r\n`, 'utf8'))
    chunks.push(part.content, Buffer.from('\r\n'))
  }
  if (close) chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`))
  return Buffer.concat(chunks)
}

function postMultipart(url: string, body: Buffer): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    body: new Uint8Array(body),
    headers: {'Content-Type': `multipart/form-data; boundary=${BOUNDARY}`},
    redirect: 'manual',
  })
}

// A fresh site root (removed when the test finishes) with htdocs/ inside it, so a file that escaped htdocs
// would still be found by listFiles(root).
async function makeSite(): Promise<{root: string; htdocs: string}> {
  const root = await makeTempDir('upload')
  const htdocs = path.join(root, 'htdocs')
  await mkdir(htdocs)
  return {root, htdocs}
}

async function startUploadServer(htdocs: string, settings: Record<string, unknown> = {}): Promise<TestServer> {
  return startTestServer({upload: true, htdocs, ...settings})
}

// Every file and directory below dir (dotfiles included), as sorted paths relative to dir.
async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, {recursive: true})
  return entries.sort()
}

describe('upload', () => {
  test('stores a 3 MiB FormData upload byte for byte and answers 303 to the directory with the stored name', async () => {
    const {htdocs} = await makeSite()
    const {url} = await startUploadServer(htdocs)
    const data = randomBytes(3 * 1024 * 1024 + 17)
    const form = new FormData()
    form.append('file', new Blob([data]), 'data.bin')
    const response = await fetch(url, {method: 'POST', body: form, redirect: 'manual'})
    expect(response.status).toBe(303)
    expect(response.headers.get('location')).toBe('/')
    expect(response.headers.get('content-type')).toBe('text/plain; charset=utf-8')
    expect(await response.text()).toBe('data.bin\n')
    expect(await listFiles(htdocs)).toEqual([UPLOAD_MANIFEST, 'data.bin'])
    expect(sha256(await readFile(path.join(htdocs, 'data.bin')))).toBe(sha256(data))
    expect((await stat(path.join(htdocs, 'data.bin'))).mode & 0o777).toBe(0o644)
  })

  test('stores every file of a form into a subdirectory; the redirect leads to its listing, which shows them', async () => {
    const {htdocs} = await makeSite()
    await mkdir(path.join(htdocs, 'sub dir'))
    const {url} = await startUploadServer(htdocs)
    const form = new FormData()
    form.append('file', new Blob(['one']), 'one.txt')
    form.append('file', new Blob(['two']), 'two.txt')
    form.append('note', 'a plain field is ignored')
    const response = await fetch(`${url}sub%20dir/`, {method: 'POST', body: form, redirect: 'manual'})
    expect(response.status).toBe(303)
    expect(response.headers.get('location')).toBe('/sub%20dir/')
    expect(await response.text()).toBe('one.txt\ntwo.txt\n')
    expect(await listFiles(path.join(htdocs, 'sub dir'))).toEqual([UPLOAD_MANIFEST, 'one.txt', 'two.txt'])
    const listing = await fetch(new URL(response.headers.get('location')!, url))
    expect(listing.status).toBe(200)
    const html = await listing.text()
    expect(html).toContain('href="one.txt"')
    expect(html).toContain('<form method="post" enctype="multipart/form-data">')
  })

  describe('hostile filenames', () => {
    test.each([
      ['../x', '; filename="../x"', 'x'],
      ['..\\x', '; filename="..\\x"', 'x'],
      ['../../x via filename*', "; filename*=UTF-8''..%2F..%2Fx", 'x'],
      ['an absolute path', '; filename="/etc/passwd"', 'passwd'],
      ['a Windows path', '; filename="C:\\Windows\\evil.txt"', 'evil.txt'],
      ['.htaccess', '; filename=".htaccess"', 'htaccess'],
      ['dots only', '; filename="..."', 'upload'],
      ['x.py', '; filename="x.py"', 'x.py.txt'],
      ['X.PY', '; filename="X.PY"', 'X.PY.txt'],
      ['nph-a.sh', '; filename="nph-a.sh"', 'nph-a.sh.txt'],
      ['nph- without extension', '; filename="NPH-raw"', 'NPH-raw.txt'],
      ['a PHP page', '; filename="index.php"', 'index.php.txt'],
      ['an interpreter extension (.js)', '; filename="app.js"', 'app.js.txt'],
      ['empty', '; filename=""', 'upload'],
      ['none at all', '', 'upload'],
      ['NUL via filename*', "; filename*=UTF-8''a%00b.txt", 'ab.txt'],
      ['controls and a bidi override', "; filename*=UTF-8''%07a%1B%7F%E2%80%AEtxt.py", 'atxt.py.txt'],
      ['UTF-8', '; filename="été.txt"', 'été.txt'],
      ['1000 characters', `; filename="${'a'.repeat(996)}.txt"`, `${'a'.repeat(251)}.txt`],
    ])('%s is stored inside the directory as the expected name', async (_label, disposition, expected) => {
      const {root, htdocs} = await makeSite()
      await mkdir(path.join(htdocs, 'a', 'b'), {recursive: true})
      const {url} = await startUploadServer(htdocs)
      const content = randomBytes(100)
      const response = await postMultipart(`${url}a/b/`, multipart([{disposition, content}]))
      expect(response.status).toBe(303)
      expect(await response.text()).toBe(`${expected}\n`)
      expect(await listFiles(root)).toEqual(['htdocs', 'htdocs/a', 'htdocs/a/b', `htdocs/a/b/${UPLOAD_MANIFEST}`, `htdocs/a/b/${expected}`])
      expect(await readFile(path.join(htdocs, 'a', 'b', expected))).toEqual(content)
    })

    test('1000 two-byte characters with a script extension are cut on a character boundary, ending in .txt', async () => {
      const {htdocs} = await makeSite()
      const {url} = await startUploadServer(htdocs)
      const response = await postMultipart(url, multipart([{disposition: `; filename="${'é'.repeat(1000)}.py"`, content: Buffer.from('x')}]))
      expect(response.status).toBe(303)
      const [name] = (await listFiles(htdocs)).filter((file) => file !== UPLOAD_MANIFEST)
      expect(name).toBe(`${'é'.repeat(125)}.txt`)
      expect(Buffer.byteLength(name!)).toBeLessThanOrEqual(255)
    })

    test('a raw NUL inside filename="…" is a malformed form: 400 and no file', async () => {
      const {root, htdocs} = await makeSite()
      const {url} = await startUploadServer(htdocs)
      const response = await postMultipart(url, multipart([{disposition: '; filename="a\0b.txt"', content: Buffer.from('x')}]))
      expect(response.status).toBe(400)
      expect(await listFiles(root)).toEqual(['htdocs'])
    })
  })

  describe('existing names', () => {
    test('an existing name gets -1, -2 … and the original stays untouched', async () => {
      const {htdocs} = await makeSite()
      await writeFile(path.join(htdocs, 'a.txt'), 'original')
      const {url} = await startUploadServer(htdocs)
      const first = await postMultipart(url, multipart([{disposition: '; filename="a.txt"', content: Buffer.from('first')}]))
      expect(await first.text()).toBe('a-1.txt\n')
      const both = await postMultipart(url, multipart([
        {disposition: '; filename="a.txt"', content: Buffer.from('second')},
        {disposition: '; filename="a.txt"', content: Buffer.from('third')},
      ]))
      expect(await both.text()).toBe('a-2.txt\na-3.txt\n')
      expect(await readFile(path.join(htdocs, 'a.txt'), 'utf8')).toBe('original')
      expect(await readFile(path.join(htdocs, 'a-1.txt'), 'utf8')).toBe('first')
      expect(await readFile(path.join(htdocs, 'a-3.txt'), 'utf8')).toBe('third')
    })

    test('a symlink with the name is neither followed nor replaced', async () => {
      const {root, htdocs} = await makeSite()
      await writeFile(path.join(root, 'target'), 'outside')
      await symlink(path.join(root, 'target'), path.join(htdocs, 'link.txt'))
      const {url} = await startUploadServer(htdocs)
      const response = await postMultipart(url, multipart([{disposition: '; filename="link.txt"', content: Buffer.from('new')}]))
      expect(await response.text()).toBe('link-1.txt\n')
      expect(await readFile(path.join(root, 'target'), 'utf8')).toBe('outside')
    })

    test('a renamed script whose .txt name exists gets the suffix before .txt', async () => {
      const {htdocs} = await makeSite()
      await writeFile(path.join(htdocs, 'x.py.txt'), 'original')
      const {url} = await startUploadServer(htdocs)
      const response = await postMultipart(url, multipart([{disposition: '; filename="x.py"', content: Buffer.from('new')}]))
      expect(await response.text()).toBe('x.py-1.txt\n')
    })
  })

  describe('size cap', () => {
    test('a Content-Length over maxUploadBytes is refused with 413 and leaves no file', async () => {
      const {root, htdocs} = await makeSite()
      const {url} = await startUploadServer(htdocs, {maxUploadBytes: 10_000})
      const response = await postMultipart(url, multipart([{disposition: '; filename="big.bin"', content: randomBytes(20_000)}]))
      expect(response.status).toBe(413)
      expect(await listFiles(root)).toEqual(['htdocs'])
    })

    test('a chunked body that grows past maxUploadBytes is refused with 413 and leaves no file, not even a temp one', async () => {
      const {root, htdocs} = await makeSite()
      const {port} = await startUploadServer(htdocs, {maxUploadBytes: 10_000})
      const body = multipart([
        {disposition: '; filename="small.txt"', content: randomBytes(1_000)},
        {disposition: '; filename="big.bin"', content: randomBytes(20_000)},
      ])
      const raw = await rawRequest(port, Buffer.concat([
        Buffer.from(`POST / HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\r\n` +
          `Transfer-Encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n`),
        body,
        Buffer.from('\r\n0\r\n\r\n'),
      ]))
      expect(raw.toString('latin1')).toMatch(/^HTTP\/1\.1 413 /)
      expect(await listFiles(root)).toEqual(['htdocs'])
    })

    test('the cap counts the whole request body: a body of exactly maxUploadBytes is stored', async () => {
      const {htdocs} = await makeSite()
      const body = multipart([{disposition: '; filename="fits.bin"', content: randomBytes(5_000)}])
      const {url} = await startUploadServer(htdocs, {maxUploadBytes: body.length})
      expect((await postMultipart(url, body)).status).toBe(303)
    })
  })

  describe('refusals', () => {
    test('uploads are off by default: POST to a directory is 405 with Allow: GET, HEAD', async () => {
      const {root, htdocs} = await makeSite()
      const {url} = await startTestServer({htdocs})
      const response = await postMultipart(url, multipart([{disposition: '; filename="a.txt"', content: Buffer.from('x')}]))
      expect(response.status).toBe(405)
      expect(response.headers.get('allow')).toBe('GET, HEAD')
      expect(await listFiles(root)).toEqual(['htdocs'])
    })

    test.each([
      ['a urlencoded form', 'application/x-www-form-urlencoded', 'file=x'],
      ['a form without a file', `multipart/form-data; boundary=${BOUNDARY}`,
        `--${BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--${BOUNDARY}--\r\n`],
      ['a form without its closing boundary', `multipart/form-data; boundary=${BOUNDARY}`,
        multipart([{disposition: '; filename="a.txt"', content: Buffer.from('x')}], {close: false})],
    ])('%s is a 400 and leaves no file', async (_label, contentType, body) => {
      const {root, htdocs} = await makeSite()
      const {url} = await startUploadServer(htdocs)
      const response = await fetch(url, {
        method: 'POST',
        body: typeof body === 'string' ? body : new Uint8Array(body),
        headers: {'Content-Type': contentType},
      })
      expect(response.status).toBe(400)
      expect(await listFiles(root)).toEqual(['htdocs'])
    })

    test('more than 100 files in one form is a 413 and leaves no file', async () => {
      const {root, htdocs} = await makeSite()
      const {url} = await startUploadServer(htdocs)
      const parts = Array.from({length: 101}, (_, index) => ({disposition: `; filename="f${index}"`, content: Buffer.from('x')}))
      expect((await postMultipart(url, multipart(parts))).status).toBe(413)
      expect(await listFiles(root)).toEqual(['htdocs'])
    })

    test('POST to the script directory is refused by the router and stores nothing there', async () => {
      const {htdocs} = await makeSite()
      const {url} = await startUploadServer(htdocs)
      const before = await listFiles(`${FIXTURES}cgi-bin`)
      const response = await postMultipart(`${url}cgi-bin/`, multipart([{disposition: '; filename="evil"', content: Buffer.from('x')}]))
      expect(response.status).toBe(403)
      expect(await listFiles(`${FIXTURES}cgi-bin`)).toEqual(before)
    })

    test('receiveUpload itself refuses a directory inside cgi-bin with ForbiddenError, before reading the body', async () => {
      const {root, htdocs} = await makeSite()
      const cgiBin = path.join(htdocs, 'scripts')
      await mkdir(path.join(cgiBin, 'inner'), {recursive: true})
      const config = normalizeConfig({htdocs, cgiBin})
      const meter = createBodySpooler({dir: root, maxSpoolBytes: config.maxSpoolBytes, bodyIdleTimeoutMs: config.bodyIdleTimeoutMs}).meter
      const options: UploadOptions = {...config, urlPath: '/', meter}
      const errors: unknown[] = []
      const url = await listenForTest((req, res) => {
        receiveUpload(req, res, path.join(cgiBin, 'inner'), options).catch((error: unknown) => {
          errors.push(error)
          const status = error instanceof HttpError ? error.status : 500
          res.writeHead(status, {Connection: 'close'}).end(STATUS_CODES[status])
        })
      })
      const response = await postMultipart(`${url}/`,
        multipart([{disposition: '; filename="evil"', content: Buffer.from('x')}]))
      expect(response.status).toBe(403)
      expect(errors[0]).toBeInstanceOf(ForbiddenError)
      expect(await listFiles(root)).toEqual(['htdocs', 'htdocs/scripts', 'htdocs/scripts/inner'])
    })
  })

  describe('abandoned uploads', () => {
    test.each([
      ['in the middle of the only file', [{disposition: '; filename="half.bin"', content: randomBytes(300_000)}]],
      ['after a first complete file, in the middle of the second', [
        {disposition: '; filename="whole.bin"', content: randomBytes(50_000)},
        {disposition: '; filename="half.bin"', content: randomBytes(300_000)},
      ]],
    ])('a client that disconnects %s leaves neither a file nor a temp file', async (_label, parts) => {
      const {root, htdocs} = await makeSite()
      const {port} = await startUploadServer(htdocs)
      const socket = await openSocket(port)
      const body = multipart(parts, {close: false})
      socket.write(`POST / HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=${BOUNDARY}\r\n` +
        `Content-Length: ${body.length + 1_000_000}\r\n\r\n`)
      socket.write(body)
      // The upload is in progress: its temp file exists (hidden), and nothing has its final name yet.
      await expect.poll(async () => (await readdir(htdocs)).some((name) => name.startsWith(UPLOAD_TEMP_PREFIX)),
        {timeout: 5_000}).toBe(true)
      expect(await readdir(htdocs)).not.toContain('whole.bin')
      socket.destroy()
      await expect.poll(() => listFiles(root), {timeout: 5_000}).toEqual(['htdocs'])
    })
  })

  test('an uploaded x.py is stored as x.py.txt and served as static text, not run', async () => {
    const {htdocs} = await makeSite()
    const {url, log} = await startUploadServer(htdocs)
    const source = Buffer.from('print("Content-Type: text/plain")\nprint()\nprint("RAN")\n')
    const response = await postMultipart(url, multipart([{disposition: '; filename="x.py"', content: source}]))
    expect(await response.text()).toBe('x.py.txt\n')
    const served = await fetch(`${url}x.py.txt`)
    expect(served.status).toBe(200)
    expect(served.headers.get('content-type')).toMatch(/^text\/plain/)
    expect(Buffer.from(await served.arrayBuffer())).toEqual(source)
    expect(log.runs).toHaveLength(0)
    expect((await fetch(`${url}x.py`)).status).toBe(404)
  })
})

// Regression: uploaded .html and .svg were served as active content from the site's origin, and an uploaded
// index.html replaced the directory listing (stored XSS).
describe('uploaded active content', () => {
  const SCRIPT_HTML = Buffer.from('<!DOCTYPE html><script>fetch("/secret").then(r => r.text()).then(alert)</script>')
  const SCRIPT_SVG = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(document.domain)"><script>alert(1)</script></svg>')

  async function upload(url: string, name: string, content: Buffer): Promise<string> {
    const response = await postMultipart(url, multipart([{disposition: `; filename="${name}"`, content}]))
    expect(response.status).toBe(303)
    return (await response.text()).trim()
  }

  test.each([
    ['x.html', SCRIPT_HTML, 'text/html; charset=utf-8'],
    ['x.svg', SCRIPT_SVG, 'image/svg+xml'],
  ])('an uploaded %s is served with CSP sandbox and nosniff, on every request', async (name, content, type) => {
    const {htdocs} = await makeSite()
    const {url} = await startUploadServer(htdocs)
    expect(await upload(url, name, content)).toBe(name)
    for (let round = 0; round < 3; round++) { // the later rounds may come from the in-memory cache
      const served = await fetch(`${url}${name}`)
      expect(served.status).toBe(200)
      expect(served.headers.get('content-type')).toBe(type)
      expect(served.headers.get('content-security-policy')).toBe('sandbox')
      expect(served.headers.get('x-content-type-options')).toBe('nosniff')
      expect(Buffer.from(await served.arrayBuffer())).toEqual(content)
    }
  })

  test('the manifest names each upload with the inode of the stored file, and is neither listed nor served', async () => {
    const {htdocs} = await makeSite()
    const {url} = await startUploadServer(htdocs)
    await upload(url, 'a.html', SCRIPT_HTML)
    await upload(url, 'a.html', SCRIPT_HTML)
    const names = parseManifest(await readFile(path.join(htdocs, UPLOAD_MANIFEST), 'utf8'))
    expect([...names.keys()]).toEqual(['a.html', 'a-1.html'])
    for (const [name, inodes] of names) expect([...inodes]).toEqual([String((await stat(path.join(htdocs, name), {bigint: true})).ino)])
    expect(await (await fetch(url)).text()).not.toContain(UPLOAD_MANIFEST)
    expect((await fetch(`${url}${UPLOAD_MANIFEST}`)).status).toBe(404)
  })

  test('an uploaded index.html does not replace the listing; it is listed, and served sandboxed by name', async () => {
    const {htdocs} = await makeSite()
    await mkdir(path.join(htdocs, 'sub'))
    const {url} = await startUploadServer(htdocs)
    expect(await upload(`${url}sub/`, 'index.html', SCRIPT_HTML)).toBe('index.html')
    const listing = await fetch(`${url}sub/`)
    expect(listing.status).toBe(200)
    expect(listing.headers.get('content-security-policy')).toBe("default-src 'none'; style-src 'unsafe-inline'")
    const html = await listing.text()
    expect(html).toContain('<h1>Index of /sub/</h1>')
    expect(html).toContain('href="index.html"')
    expect(html).not.toContain('<script')
    expect((await fetch(`${url}sub/index.html`)).headers.get('content-security-policy')).toBe('sandbox')
  })

  test("the site's own index.html stays the index, without CSP sandbox, after an index.html was uploaded beside it", async () => {
    const {htdocs} = await makeSite()
    await writeFile(path.join(htdocs, 'index.html'), '<p>site</p>')
    const {url} = await startUploadServer(htdocs)
    expect(await upload(url, 'index.html', SCRIPT_HTML)).toBe('index-1.html')
    const index = await fetch(url)
    expect(index.headers.get('content-security-policy')).toBeNull()
    expect(await index.text()).toBe('<p>site</p>')
    expect((await fetch(`${url}index.html`)).headers.get('content-security-policy')).toBeNull()
    expect((await fetch(`${url}index-1.html`)).headers.get('content-security-policy')).toBe('sandbox')
  })

  test("a manifest line with another inode (an upload that lost the name in a race) does not mark the site's file", async () => {
    const {htdocs} = await makeSite()
    await writeFile(path.join(htdocs, 'index.html'), '<p>site</p>')
    const {ino} = await stat(path.join(htdocs, 'index.html'), {bigint: true})
    await writeFile(path.join(htdocs, UPLOAD_MANIFEST), `${ino + 1n} index.html\n`)
    const {url} = await startUploadServer(htdocs)
    const index = await fetch(url)
    expect(await index.text()).toBe('<p>site</p>')
    expect(index.headers.get('content-security-policy')).toBeNull()
  })

  test('an upload stays sandboxed when the server runs again without --upload', async () => {
    const {htdocs} = await makeSite()
    const uploading = await startUploadServer(htdocs)
    await upload(uploading.url, 'x.html', SCRIPT_HTML)
    const {url} = await startTestServer({htdocs})
    expect((await fetch(`${url}x.html`)).headers.get('content-security-policy')).toBe('sandbox')
  })
})

describe('parseManifest', () => {
  test.each<[string, string, Record<string, string[]>]>([
    ['one line', '12 a.html\n', {'a.html': ['12']}],
    ['names with spaces keep them', '12 my page.html\n', {'my page.html': ['12']}],
    ['two inodes for one name', '12 a\n13 a\n', {a: ['12', '13']}],
    ['a last line without its newline', '12 a\n13 b', {a: ['12'], b: ['13']}],
    ['lines without a name or an inode are skipped', '12\n 12\n12 \n\n7 ok\n', {ok: ['7']}],
    ['empty', '', {}],
  ])('%s', (_label, text, expected) => {
    const parsed = Object.fromEntries([...parseManifest(text)].map(([name, inodes]) => [name, [...inodes]]))
    expect(parsed).toEqual(expected)
  })
})

describe('normalizeUploadName', () => {
  test.each([
    ['a.txt', 0, 'a.txt'],
    ['a.txt', 1, 'a-1.txt'],
    ['a.tar.gz', 2, 'a.tar-2.gz'],
    ['README', 3, 'README-3'],
    ['x.py', 0, 'x.py.txt'],
    ['x.py', 1, 'x.py-1.txt'],
    ['x.Rb', 0, 'x.Rb.txt'],
    ['x.py.', 0, 'x.py.'],
    ['x.html', 0, 'x.html'],
    ['a/b\\c', 0, 'c'],
    ['..', 0, 'upload'],
    [undefined, 0, 'upload'],
    ['\0\n\r', 0, 'upload'],
    ['. .hidden', 0, ' .hidden'],
    [`${'a'.repeat(300)}.txt`, 12, `${'a'.repeat(248)}-12.txt`],
    [`a.${'b'.repeat(300)}`, 1, `a.${'b'.repeat(251)}-1`],
  ])('%j with suffix %i → %j', (raw, suffix, expected) => {
    expect(normalizeUploadName(raw, suffix, SCRIPT_EXTENSIONS)).toBe(expected)
  })

  test('a long name whose cut would end in a script extension still gets .txt', () => {
    // Cutting `aaa….py.bbbb…` at 255 bytes leaves `aaa….py`: the check runs on the cut name, not the raw one.
    const raw = `${'a'.repeat(252)}.py.${'b'.repeat(40)}`
    const name = normalizeUploadName(raw, 0, SCRIPT_EXTENSIONS)
    expect(name.endsWith('.txt')).toBe(true)
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(255)
  })
})

describe('BadUploadError', () => {
  test('is a 400 with its own code', () => {
    expect(new BadUploadError()).toMatchObject({status: 400, code: 'CGI_ERR_BAD_UPLOAD', name: 'BadUploadError'})
    expect(new BadUploadError()).toBeInstanceOf(HttpError)
  })
})
