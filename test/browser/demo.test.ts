// The demo site of the README's Quick start in a real browser: the built cgibox with the repository's cgibox.json,
// htdocs/ and cgi-bin/ (copied, so an upload never lands in the checkout), each page driven by Debian's chromium
// through playwright-core, with no console error and a screenshot per page in test-artifacts/screenshots/.
import {spawn, type ChildProcess} from 'node:child_process'
import {existsSync} from 'node:fs'
import {chmod, cp, mkdir, mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {chromium, type BrowserContext, type Page} from 'playwright-core'
import {afterAll, beforeAll, describe, expect, onTestFinished, test} from 'vitest'
import {BUILD_TIMEOUT_MS, REPO, buildCli, type Build} from '../helpers/build.js'

const CHROMIUM = '/usr/bin/chromium'
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
]
const SCREENSHOTS = path.join(REPO, 'test-artifacts', 'screenshots')
const START_TIMEOUT_MS = 15_000
const STOP_TIMEOUT_MS = 10_000
const LAUNCH_TIMEOUT_MS = 30_000
const ACTION_TIMEOUT_MS = 10_000
/** loop.py and flood.py end at their location's 3 s deadline or 1 MiB cap; the page then reads their records. */
const RUNAWAY_TIMEOUT_MS = 20_000
/** How long the status page may take to list loop.py, which runs for 3 s. */
const RUNNING_CHECK_MS = 2_000

const chromiumMissing = !existsSync(CHROMIUM)
if (chromiumMissing) {
  console.log(`test/browser/demo.test.ts: skipped, ${CHROMIUM} is missing (Debian package chromium; .ci/run installs it)`)
}

interface Demo {
  /** http://127.0.0.1:PORT/ */
  readonly url: string
  /** The copy of the repository's demo (cgibox.json, htdocs/, cgi-bin/) cgibox serves. */
  readonly site: string
  readonly server: ChildProcess
  readonly browser: BrowserContext
  output(): string
}

/** A console error or uncaught exception of a page, with the URL it names. */
interface PageError {
  readonly text: string
  readonly url: string
}

describe.skipIf(chromiumMissing)('the demo site (npm start) in chromium', () => {
  let build: Build | null = null
  let demo: Demo | null = null
  const cleanups: (() => Promise<unknown>)[] = []

  beforeAll(async () => {
    build = await buildCli()
    const base = await mkdtemp(path.join(process.env.CGIBOX_TEST_SITES ?? tmpdir(), 'cgibox-demo-'))
    cleanups.push(() => rm(base, {recursive: true, force: true}))
    await chmod(base, 0o755) // scripts run as other users when the tests run as root
    const site = path.join(base, 'site')
    await mkdir(site, {mode: 0o755})
    for (const name of ['cgibox.json', 'htdocs', 'cgi-bin']) await cp(path.join(REPO, name), path.join(site, name), {recursive: true})

    // As `npm start` runs it, on a free port.
    const server = spawn(process.execPath, [build.cliPath, '--config', path.join(site, 'cgibox.json'), '--port', '0'],
      {cwd: site, stdio: ['ignore', 'pipe', 'pipe']})
    cleanups.push(() => stopServer(server))
    let output = ''
    server.stdout.setEncoding('utf8').on('data', (text: string) => void (output += text))
    server.stderr.setEncoding('utf8').on('data', (text: string) => void (output += text))
    const url = await waitForUrl(server, () => output)

    const userDataDir = path.join(base, 'chromium')
    const browser = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: LAUNCH_TIMEOUT_MS,
    })
    cleanups.push(() => browser.close())
    browser.setDefaultTimeout(ACTION_TIMEOUT_MS)
    browser.setDefaultNavigationTimeout(ACTION_TIMEOUT_MS)
    await mkdir(SCREENSHOTS, {recursive: true})
    demo = {url, site, server, browser, output: () => output}
  }, BUILD_TIMEOUT_MS + START_TIMEOUT_MS + LAUNCH_TIMEOUT_MS)

  afterAll(async () => {
    // Browser first, then the server, then the directories (cleanups in reverse order of creation).
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {})
    await build?.remove()
  }, STOP_TIMEOUT_MS + 10_000)

  // A fresh tab whose console errors and uncaught exceptions are collected; closed when the test finishes.
  async function openPage(): Promise<{page: Page; errors: PageError[]}> {
    const page = await demo!.browser.newPage()
    onTestFinished(() => page.close())
    const errors: PageError[] = []
    page.on('console', (message) => {
      if (message.type() === 'error') errors.push({text: message.text(), url: message.location().url})
    })
    page.on('pageerror', (error) => errors.push({text: `${error.name}: ${error.message}`, url: page.url()}))
    return {page, errors}
  }

  async function screenshot(page: Page, name: string): Promise<void> {
    await page.screenshot({path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true})
  }

  test('the index links to every part of the demo, each saying what it shows, and every link answers 200', async () => {
    const {page, errors} = await openPage()
    await page.goto(demo!.url)
    expect(await page.locator('h1').innerText()).toBe('cgibox demo')
    const links = await page.locator('li').evaluateAll((items) => items.map((item) => ({
      hrefs: [...item.querySelectorAll('a')].map((a) => a.getAttribute('href')),
      text: item.textContent!.replace(/\s+/g, ' ').trim(),
    })))
    const hrefs = links.flatMap((link) => link.hrefs)
    for (const href of ['/cgi-bin/date.py', '/time.ts', '/cgi-bin/form.py', '/uploads/', '/runaway.html', '/.cgibox/status']) {
      expect(hrefs).toContain(href)
    }
    expect(hrefs.some((href) => href?.startsWith('/cgi-bin/env.py'))).toBe(true)
    for (const link of links) expect(link.text, 'a sentence after the link').toMatch(/: \S.{20,}\.$/)
    for (const href of hrefs) expect((await page.request.get(new URL(href!, demo!.url).href)).status(), href!).toBe(200)
    await screenshot(page, 'index')
    expect(errors).toEqual([])
  })

  test.each([
    ['date.py', '/cgi-bin/date.py', /^Generated page \(Python\)$/],
    ['time.ts', '/time.ts', /^Generated page \(TypeScript\)$/],
  ])('%s shows the time of the request, today', async (name, target, title) => {
    const {page, errors} = await openPage()
    const before = new Date()
    await page.goto(new URL(target, demo!.url).href)
    const after = new Date()
    expect(await page.locator('h1').innerText()).toMatch(title)
    const generated = page.locator('p', {hasText: 'Generated'}).locator('time')
    const shown = new Date((await generated.getAttribute('datetime'))!)
    // Whole seconds: the page may round down to the second before `before`.
    expect(shown.getTime()).toBeGreaterThanOrEqual(before.getTime() - 1_000)
    expect(shown.getTime()).toBeLessThanOrEqual(after.getTime())
    const today = shown.toISOString().slice(0, 10)
    expect([before, after].map((date) => date.toISOString().slice(0, 10))).toContain(today)
    // The text a person reads names the same day.
    expect(await generated.innerText()).toContain(String(shown.getUTCFullYear()))
    expect(await generated.innerText()).toContain(shown.toLocaleString('en', {month: 'long', timeZone: 'UTC'}))
    await screenshot(page, name.replace('.', '-'))
    expect(errors).toEqual([])
  })

  test('form.py echoes what was typed and submitted (POST body on stdin), HTML-escaped', async () => {
    const {page, errors} = await openPage()
    await page.goto(new URL('/cgi-bin/form.py', demo!.url).href)
    const name = 'Ada Lovelace'
    const message = 'Hello <b>cgibox</b> & co, 1 + 1 = 2'
    await page.getByLabel('Name').fill(name)
    await page.getByLabel('Message').fill(message)
    await Promise.all([
      page.waitForResponse((response) => response.request().method() === 'POST' && response.url().endsWith('/cgi-bin/form.py')),
      page.getByRole('button', {name: 'Send'}).click(),
    ])
    await page.locator('#sent-name').waitFor()
    expect(await page.locator('#sent-name').innerText()).toBe(name)
    expect(await page.locator('#sent-message').innerText()).toBe(message)
    expect(await page.locator('#sent-message b').count()).toBe(0)
    await screenshot(page, 'form')
    expect(errors).toEqual([])
  })

  test('env.py lists the environment the script received: REMOTE_ADDR, PATH_INFO, QUERY_STRING, the browser\'s headers', async () => {
    const {page, errors} = await openPage()
    await page.goto(new URL('/cgi-bin/env.py/some/path?a=1&b=2', demo!.url).href)
    const env = Object.fromEntries(await page.locator('#env tr').evaluateAll((rows) => rows.map((row) =>
      [row.querySelector('th')!.textContent!, row.querySelector('td')!.textContent!])))
    expect(env).toMatchObject({
      REMOTE_ADDR: '127.0.0.1', PATH_INFO: '/some/path', QUERY_STRING: 'a=1&b=2', REQUEST_METHOD: 'GET', SCRIPT_NAME: '/cgi-bin/env.py',
    })
    expect(env.HTTP_USER_AGENT).toMatch(/Chrome/)
    await screenshot(page, 'env')
    expect(errors).toEqual([])
  })

  test('an upload through the listing\'s form is stored in htdocs/uploads/, listed, and served back', async () => {
    const {page, errors} = await openPage()
    await page.goto(new URL('/uploads/', demo!.url).href)
    const name = 'hello-from-chromium.txt'
    const content = `uploaded by the browser test at ${new Date().toISOString()}\n`
    await page.locator('input[type=file]').setInputFiles({name, mimeType: 'text/plain', buffer: Buffer.from(content)})
    await Promise.all([
      // Post/Redirect/Get: the 303 brings the browser back to the listing.
      page.waitForResponse((response) => response.request().method() === 'GET' && response.url() === new URL('/uploads/', demo!.url).href),
      page.getByRole('button', {name: 'Upload'}).click(),
    ])
    const link = page.locator(`a[href="${name}"]`)
    await link.waitFor()
    expect(await readFile(path.join(demo!.site, 'htdocs', 'uploads', name), 'utf8')).toBe(content)
    const served = await page.request.get(new URL(`/uploads/${name}`, demo!.url).href)
    expect(served.status()).toBe(200)
    expect(await served.text()).toBe(content)
    expect(served.headers()['content-security-policy']).toMatch(/sandbox/)
    await screenshot(page, 'upload')
    expect(errors).toEqual([])
  })

  test('the runaway page shows loop.py stopped at its deadline and flood.py at its output cap, with their run records', async () => {
    const {page, errors} = await openPage()
    await page.goto(new URL('/runaway.html', demo!.url).href)
    await page.getByRole('button', {name: 'Run loop.py'}).click()
    await page.getByRole('button', {name: 'Run flood.py'}).click()
    await page.waitForFunction(() => [...document.querySelectorAll('section')].every((section) => section.dataset.state === 'done'),
      null, {timeout: RUNAWAY_TIMEOUT_MS})
    const field = (section: string, name: string) => page.locator(`#${section} [data-field="${name}"]`).innerText()
    expect(await field('loop', 'kill-reason')).toBe('deadline')
    expect(await field('flood', 'kill-reason')).toBe('output-cap')
    for (const section of ['loop', 'flood']) {
      expect(await field(section, 'ms')).toMatch(/^\d+ ms$/)
      expect(await field(section, 'bytes-out')).toMatch(/^[\d,]+ /)
      expect(await page.locator(`#${section} .record`).innerText()).toMatch(/cut off by the server/)
    }
    expect(await page.locator('#loop .stream').innerText()).toMatch(/^tick 1: still running\n/)
    // Its cap is 1 MiB: the record counts at most one pipe read past it.
    expect(Number((await field('flood', 'bytes-out')).split(' ')[0]!.replace(/,/g, ''))).toBeGreaterThanOrEqual(1024 * 1024)
    await screenshot(page, 'runaway')
    // The browser reports each cut-off response as a failed load: that is what the page shows. Nothing else may fail.
    const cutOff = (error: PageError) =>
      /\/cgi-bin\/runaway\/(loop|flood)\.py$/.test(error.url) && /ERR_INCOMPLETE_CHUNKED_ENCODING/.test(error.text)
    expect(errors.filter((error) => !cutOff(error))).toEqual([])
  })

  test('the status page lists a script while it runs', async () => {
    const {page, errors} = await openPage()
    // loop.py runs for 3 s (its deadline); the page is read while it does. A busy machine gets two more tries.
    let found = false
    for (let attempt = 0; attempt < 3 && !found; attempt++) {
      const controller = new AbortController()
      onTestFinished(() => controller.abort())
      const signal = AbortSignal.any([controller.signal, AbortSignal.timeout(RUNAWAY_TIMEOUT_MS)])
      const response = await fetch(new URL('/cgi-bin/runaway/loop.py', demo!.url), {signal})
      expect(response.status).toBe(200)
      // Read on in the background: a client that goes away gets its run killed (client-gone).
      void response.arrayBuffer().catch(() => {})
      await page.goto(new URL('/.cgibox/status', demo!.url).href)
      const running = page.locator('xpath=//h2[.="Running scripts"]/following-sibling::*[1]')
      found = await running.locator('td', {hasText: '/cgi-bin/runaway/loop.py'}).first().waitFor({timeout: RUNNING_CHECK_MS})
        .then(() => true, () => false)
      if (found) await screenshot(page, 'status')
      controller.abort()
    }
    expect(found).toBe(true)
    expect(errors).toEqual([])
  })
})

// Waits (bounded) for the line with the URL cgibox prints once it listens.
async function waitForUrl(server: ChildProcess, output: () => string): Promise<string> {
  const deadline = Date.now() + START_TIMEOUT_MS
  for (;;) {
    const match = /http:\/\/127\.0\.0\.1:\d+\//.exec(output())
    if (match) return match[0]
    if (server.exitCode !== null || server.signalCode !== null) throw new Error(`cgibox exited before listening:\n${output()}`)
    if (Date.now() > deadline) throw new Error(`cgibox printed no URL within ${START_TIMEOUT_MS} ms:\n${output()}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

// SIGTERM (cgibox drains and exits), then SIGKILL if it is still there after STOP_TIMEOUT_MS.
async function stopServer(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) return
  const exited = new Promise((resolve) => server.once('exit', resolve))
  server.kill('SIGTERM')
  const timer = setTimeout(() => server.kill('SIGKILL'), STOP_TIMEOUT_MS)
  await exited
  clearTimeout(timer)
}
