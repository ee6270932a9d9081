// Directory answers: renderListing as a table, serveDirectory end to end on a real HTTP server with fixture directories.
import {execFileSync} from 'node:child_process'
import {mkdir, realpath, symlink, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {describe, expect, test} from 'vitest'
import {MethodNotAllowedError, NotFoundError} from '../../src/errors.js'
import {renderListing, serveDirectory, type ListingEntry, type ListingOptions} from '../../src/static/listing.js'
import {startTestServer} from '../helpers/server.js'
import {startHandlerServer, type Outcome} from '../helpers/static-server.js'
import {makeTempDir} from '../helpers/temp-dir.js'

const FIXTURES = fileURLToPath(new URL('../fixtures/static/', import.meta.url))
const MTIME = new Date('2024-05-06T07:08:09Z')

// Starts a server that treats the URL path as a directory under root (also the document root, unless options say
// otherwise); errors become bare status responses.
async function startServer(root: string, options: Partial<ListingOptions> = {}): Promise<{url: string; outcomes: Outcome[]}> {
  const listing: ListingOptions = {upload: false, documentRoot: await realpath(root), ...options}
  return startHandlerServer((req, res) => {
    const urlPath = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    return serveDirectory(req, res, {dirPath: path.join(root, urlPath), urlPath}, listing)
  })
}

function file(name: string, size = 1): ListingEntry {
  return {name, isDirectory: false, size, mtime: MTIME}
}

function directory(name: string): ListingEntry {
  return {name, isDirectory: true, size: 4096, mtime: MTIME}
}

// The links of a listing page, in order, as [href, text] pairs (text still HTML-escaped).
function linksOf(html: string): Array<[string, string]> {
  return [...html.matchAll(/<a href="([^"]*)">([^<]*)<\/a>/g)].map((match) => [match[1] ?? '', match[2] ?? ''])
}

describe('renderListing', () => {
  test('sorts by name in code-unit order, case-sensitive, directories mixed in with a trailing slash', () => {
    const html = renderListing('/', [file('b.txt'), directory('a'), file('B.txt'), file('a-b'), file('_x'), directory('Z')], {upload: false})
    expect(linksOf(html).map(([, text]) => text)).toEqual(['B.txt', 'Z/', '_x', 'a/', 'a-b', 'b.txt'])
  })

  test('does not reorder the array it was given', () => {
    const entries = [file('b'), file('a')]
    renderListing('/', entries, {upload: false})
    expect(entries.map((entry) => entry.name)).toEqual(['b', 'a'])
  })

  test('leaves out dotfiles and dot-directories', () => {
    const html = renderListing('/', [file('.hidden'), directory('.git'), file('visible'), file('.')], {upload: false})
    expect(linksOf(html)).toEqual([['visible', 'visible']])
    expect(html).not.toContain('hidden')
  })

  test.each<[string, string, string]>([
    ['<script>alert(1)</script>.txt', '%3Cscript%3Ealert(1)%3C%2Fscript%3E.txt', '&lt;script&gt;alert(1)&lt;/script&gt;.txt'],
    ['a"b.txt', 'a%22b.txt', 'a&quot;b.txt'],
    ["it's.txt", 'it&#39;s.txt', 'it&#39;s.txt'],
    ['a&b.txt', 'a%26b.txt', 'a&amp;b.txt'],
    ['100% #?.txt', '100%25%20%23%3F.txt', '100% #?.txt'],
    ['javascript:alert(1)', 'javascript%3Aalert(1)', 'javascript:alert(1)'],
    ['日本.txt', '%E6%97%A5%E6%9C%AC.txt', '日本.txt'],
    ['a\\b', 'a%5Cb', 'a\\b'],
  ])('links %s as href %s with text %s', (name, href, text) => {
    expect(linksOf(renderListing('/', [file(name)], {upload: false}))).toEqual([[href, text]])
  })

  test('encodes a directory name and keeps its slash unencoded', () => {
    expect(linksOf(renderListing('/', [directory('a b/c?')], {upload: false}))).toEqual([['a%20b%2Fc%3F/', 'a b/c?/']])
  })

  test.each([
    ['/', []],
    ['/sub/', [['../', '../']]],
    ['/a/b/', [['../', '../']]],
  ])('at %s links to the parent: %j', (urlPath, links) => {
    expect(linksOf(renderListing(urlPath, [], {upload: false}))).toEqual(links)
  })

  test('escapes the URL path in the title and heading', () => {
    const html = renderListing('/<img src=x onerror=alert(1)>/', [], {upload: false})
    expect(html).toContain('<title>Index of /&lt;img src=x onerror=alert(1)&gt;/</title>')
    expect(html).toContain('<h1>Index of /&lt;img src=x onerror=alert(1)&gt;/</h1>')
    expect(html).not.toContain('<img')
  })

  test('shows the size of files, - for directories, and the UTC modification time', () => {
    const html = renderListing('/', [file('f', 1234), directory('d')], {upload: false})
    expect(html).toContain('<td><a href="d/">d/</a></td><td class="size">-</td><td>2024-05-06 07:08</td>')
    expect(html).toContain('<td><a href="f">f</a></td><td class="size">1234</td><td>2024-05-06 07:08</td>')
  })

  test('shows an empty time for an invalid date instead of throwing', () => {
    expect(renderListing('/', [{name: 'f', isDirectory: false, size: 0, mtime: new Date(Number.NaN)}], {upload: false}))
      .toContain('<td class="size">0</td><td></td>')
  })

  test.each([
    [true, true],
    [false, false],
  ])('with upload %s renders the multipart upload form: %s', (upload, shown) => {
    const html = renderListing('/', [], {upload})
    expect(html.includes('<form method="post" enctype="multipart/form-data">')).toBe(shown)
    expect(html.includes('<input type="file" name="file"')).toBe(shown)
  })
})

describe('serveDirectory', () => {
  test('lists a directory without an index: sorted, dotfiles hidden, with the security headers', async () => {
    const {url, outcomes} = await startServer(FIXTURES)
    const response = await fetch(`${url}/dir-without-index/`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(response.headers.get('content-security-policy')).toBe("default-src 'none'; style-src 'unsafe-inline'")
    expect(response.headers.get('x-content-type-options')).toBe('nosniff')
    expect(response.headers.get('cache-control')).toBe('no-cache')
    const html = await response.text()
    expect(response.headers.get('content-length')).toBe(String(Buffer.byteLength(html)))
    expect(linksOf(html)).toEqual([['../', '../'], ['B.txt', 'B.txt'], ['a.txt', 'a.txt'], ['sub/', 'sub/']])
    expect(html).not.toContain('.hidden')
    expect(html).not.toContain('<form')
    await expect.poll(() => outcomes).toEqual([{}])
  })

  test('has no link to the parent at /', async () => {
    const {url} = await startServer(path.join(FIXTURES, 'dir-without-index'))
    expect(linksOf(await (await fetch(`${url}/`)).text())).toEqual([['B.txt', 'B.txt'], ['a.txt', 'a.txt'], ['sub/', 'sub/']])
  })

  test.each([
    ['/dir-with-index/', '<p>index.html</p>\n', 'text/html; charset=utf-8'],
    ['/dir-with-index-htm/', '<p>index.htm</p>\n', 'text/html; charset=utf-8'],
    ['/dir-with-both/', '<p>index.html wins</p>\n', 'text/html; charset=utf-8'],
  ])('serves the index file of %s instead of a listing', async (urlPath, body, type) => {
    const {url} = await startServer(FIXTURES)
    const response = await fetch(url + urlPath)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe(type)
    expect(response.headers.get('etag')).not.toBeNull()
    expect(await response.text()).toBe(body)
  })

  test('serves the index file with ranges, like any static file', async () => {
    const {url} = await startServer(FIXTURES)
    const response = await fetch(`${url}/dir-with-index/`, {headers: {Range: 'bytes=3-7'}})
    expect(response.status).toBe(206)
    expect(await response.text()).toBe('index')
  })

  test('responds to HEAD with Content-Length and no body', async () => {
    const {url} = await startServer(FIXTURES)
    const full = await (await fetch(`${url}/dir-without-index/`)).text()
    const response = await fetch(`${url}/dir-without-index/`, {method: 'HEAD'})
    expect(response.status).toBe(200)
    expect(response.headers.get('content-length')).toBe(String(Buffer.byteLength(full)))
    expect(await response.text()).toBe('')
  })

  test.each([
    ['POST', {upload: false}],
    ['POST', {upload: true}],
    ['PUT', {upload: true}],
    ['DELETE', {upload: false}],
  ])('rejects %s (options %j) with MethodNotAllowedError (405, Allow: GET, HEAD)', async (method, options) => {
    const {url, outcomes} = await startServer(FIXTURES, options)
    const response = await fetch(`${url}/dir-without-index/`, {method})
    expect(response.status).toBe(405)
    expect(response.headers.get('allow')).toBe('GET, HEAD')
    expect(outcomes[0]?.error).toBeInstanceOf(MethodNotAllowedError)
  })

  test('renders the upload form only when uploads are enabled', async () => {
    const off = await startServer(FIXTURES, {upload: false})
    const on = await startServer(FIXTURES, {upload: true})
    expect(await (await fetch(`${off.url}/dir-without-index/`)).text()).not.toContain('<form')
    expect(await (await fetch(`${on.url}/dir-without-index/`)).text())
      .toContain('<form method="post" enctype="multipart/form-data"><input type="file" name="file"')
  })

  test('rejects a directory that is gone with NotFoundError', async () => {
    const {url, outcomes} = await startServer(FIXTURES)
    const response = await fetch(`${url}/no-such-dir/`)
    expect(response.status).toBe(404)
    expect(outcomes[0]?.error).toBeInstanceOf(NotFoundError)
  })

  describe('with hostile names created at test time', () => {
    test('escapes and encodes every name, and links resolve back to the same name', async () => {
      const dir = await makeTempDir('listing')
      const names = ['<script>.txt', '<img src=x onerror=alert(1)>', 'a"b\'c.txt', 'a&amp;b.txt', '100% #?.txt', 'x:y', 'back\\slash']
      for (const name of names) await writeFile(path.join(dir, name), name)
      await mkdir(path.join(dir, '<dir>'))
      await writeFile(path.join(dir, '.env'), 'SECRET=1')
      const {url} = await startServer(dir)
      const html = await (await fetch(`${url}/`)).text()
      expect(html).not.toMatch(/<script|<img|<dir>|SECRET|\.env/)
      const links = linksOf(html)
      const texts = links.map(([, text]) => text.replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&#39;', "'")
        .replaceAll('&quot;', '"').replaceAll('&amp;', '&'))
      expect(texts).toEqual([...names, '<dir>'].sort().map((name) => (name === '<dir>' ? '<dir>/' : name)))
      const hrefs = links.map(([href]) => href.replaceAll('&#39;', "'").replaceAll('&quot;', '"').replaceAll('&amp;', '&'))
      const resolved = hrefs.map((href) => decodeURIComponent(new URL(href, `${url}/`).pathname.slice(1)))
      expect(resolved.sort()).toEqual([...names, '<dir>/'].sort())
    })

    test('lists the target type of symlinks and leaves out dangling ones and FIFOs', async () => {
      const dir = await makeTempDir('listing')
      await mkdir(path.join(dir, 'real-dir'))
      await writeFile(path.join(dir, 'real.txt'), 'x')
      await symlink('real-dir', path.join(dir, 'link-dir'))
      await symlink('real.txt', path.join(dir, 'link.txt'))
      await symlink('missing', path.join(dir, 'dangling'))
      execFileSync('mkfifo', [path.join(dir, 'fifo')])
      const {url} = await startServer(dir)
      const html = await (await fetch(`${url}/`)).text()
      expect(linksOf(html).map(([, text]) => text)).toEqual(['link-dir/', 'link.txt', 'real-dir/', 'real.txt'])
    })

    test('does not follow an index.html symlink that leaves the directory', async () => {
      const dir = await makeTempDir('listing')
      await mkdir(path.join(dir, 'site', 'sub'), {recursive: true})
      await writeFile(path.join(dir, 'site', 'elsewhere.html'), 'elsewhere')
      await symlink('../elsewhere.html', path.join(dir, 'site', 'sub', 'index.html'))
      const {url} = await startServer(path.join(dir, 'site'))
      const html = await (await fetch(`${url}/sub/`)).text()
      expect(html).not.toContain('elsewhere')
      expect(linksOf(html)).toEqual([['../', '../'], ['index.html', 'index.html']])
    })

    // Regression: a symlink planted in htdocs showed the size and mtime of /etc/shadow in the listing.
    test('does not list a symlink whose target leaves the document root, to a file or to a directory', async () => {
      const dir = await makeTempDir('listing')
      await mkdir(path.join(dir, 'site', 'inner'), {recursive: true})
      await mkdir(path.join(dir, 'outside-dir'))
      await writeFile(path.join(dir, 'secret.txt'), 'x'.repeat(31_337))
      await symlink('../secret.txt', path.join(dir, 'site', 'shadow'))
      await symlink(path.join(dir, 'outside-dir'), path.join(dir, 'site', 'etc'))
      await symlink('/etc/passwd', path.join(dir, 'site', 'passwd'))
      await symlink('../inner', path.join(dir, 'site', 'inner', 'up-and-in')) // leaves the directory, not the root
      await writeFile(path.join(dir, 'site', 'ok.txt'), 'ok')
      const {url} = await startServer(path.join(dir, 'site'))
      const html = await (await fetch(`${url}/`)).text()
      expect(linksOf(html).map(([, text]) => text)).toEqual(['inner/', 'ok.txt'])
      expect(html).not.toMatch(/shadow|31337|etc|passwd/)
      expect(linksOf(await (await fetch(`${url}/inner/`)).text()).map(([, text]) => text)).toEqual(['../', 'up-and-in/'])
    })

    test('through cgibox, the listing leaves out a symlink to a file outside htdocs', async () => {
      const dir = await makeTempDir('listing')
      await mkdir(path.join(dir, 'htdocs'))
      await writeFile(path.join(dir, 'secret.txt'), 'x'.repeat(31_337))
      await symlink('../secret.txt', path.join(dir, 'htdocs', 'shadow'))
      await writeFile(path.join(dir, 'htdocs', 'ok.txt'), 'ok')
      const {url} = await startTestServer({htdocs: path.join(dir, 'htdocs')})
      const html = await (await fetch(url)).text()
      expect(linksOf(html).map(([, text]) => text)).toEqual(['ok.txt'])
      expect(html).not.toMatch(/shadow|31337/)
    })

    test('follows an index.html symlink to a file inside the directory', async () => {
      const dir = await makeTempDir('listing')
      await writeFile(path.join(dir, 'home.html'), 'home')
      await symlink('home.html', path.join(dir, 'index.html'))
      const {url} = await startServer(dir)
      expect(await (await fetch(`${url}/`)).text()).toBe('home')
    })

    test('skips an index.html that is a directory and falls back to index.htm', async () => {
      const dir = await makeTempDir('listing')
      await mkdir(path.join(dir, 'index.html'))
      await writeFile(path.join(dir, 'index.htm'), 'htm')
      const {url} = await startServer(dir)
      expect(await (await fetch(`${url}/`)).text()).toBe('htm')
    })
  })
})
