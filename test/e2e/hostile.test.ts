// Hostile scripts through a real server (issue 3 item 8; docs/security.md §7.1): each test runs a real script from
// test/fixtures/hostile-cgi through cgibox with a real sandbox, and asserts the outcome the client sees, what the
// run record says, and — after every test (afterEach) — that the server still answers a static file and a small
// script, that no process carrying the test's markers is left, that every per-run cgroup of the server is gone
// and that no child of the server is a zombie. Every fixture re-runs itself with a marker (?m=<marker>) in its
// argv, so its processes can be found in /proc/*/cmdline even inside a PID namespace.
//
// Which guarantee holds at which level (both run as root here, with cgroup v1 pids+memory when writable):
//
// | attack                                  | rlimit                                   | bwrap                                   |
// | --------------------------------------- | ---------------------------------------- | --------------------------------------- |
// | fork bomb                               | held at pids.max (RLIMIT_NPROC on the    | same, inside a PID namespace            |
// |                                         | run's uid without cgroups), all killed   |                                         |
// | memory bomb                             | OOM kill in the memory cgroup, limit     | same (bwrap's exit code 137 is read as  |
// |                                         | 'memory', response cut off (RLIMIT_DATA  | SIGKILL)                                |
// |                                         | without cgroups: MemoryError, clean end) |                                         |
// | double-forked setsid daemon             | dies with the run (cgroup, or uid sweep) | dies with the run (PID namespace)       |
// | /etc/shadow, other processes' environ,  | unreadable (another uid: EACCES); the    | invisible (not mounted / not in the PID |
// | cgibox's own environment                | script's env is built from nothing       | namespace: ENOENT)                      |
// | deadline, output cap, stderr cap,       | hold (tested at `none` in limits.test.ts | hold (tested here)                      |
// | client-gone, queue                      | and the same code runs at every level)   |                                         |
// | SIGTERM ignored                         | SIGKILL after killGraceMs                | SIGKILL at once, no grace               |
// | closes stdout and lingers               | response ends at once, deadline kills    | same (bwrap gets the pipe as fd 3, so   |
// |                                         | the process (limits.test.ts at `none`)   | its own processes do not hold it open)  |
// | network                                 | NOT isolated: scripts reach loopback and | no network: the host's loopback and     |
// |                                         | the network as their uid (not tested)    | addresses are unreachable               |
// | disk: /tmp, /dev/shm, read-only places  | host /tmp is shared, the uid's file      | private /tmp of tmpBytes, bounded       |
// |                                         | permissions only (not tested: it would   | /dev/shm, /, /usr, /etc, script dir and |
// |                                         | fill the host's /tmp)                    | document root read-only                 |
// | file size                               | RLIMIT_FSIZE                             | RLIMIT_FSIZE (EFBIG / SIGXFSZ)          |
import {spawn, spawnSync} from 'node:child_process'
import {randomUUID} from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {afterAll, afterEach, describe, expect, onTestFinished, test} from 'vitest'
import type {RawConfig} from '../../src/config.js'
import type {RunRecord} from '../../src/log.js'
import {getFully, openSocket, readUntil} from '../helpers/http.js'
import {FIXTURES, isAlive, startTestServer, type TestServer} from '../helpers/server.js'
import {killMarked, processesWithMarker} from '../process/run-helpers.js'

const MIB = 1024 * 1024
/** Tiny limits so every attack hits its limit fast. */
const LIMITS = {
  timeoutMs: 1_500,
  killGraceMs: 300,
  maxOutputBytes: 1_000_000,
  memoryBytes: 64 * MIB,
  maxProcesses: 32,
  tmpBytes: MIB,
  maxFileBytes: 2 * MIB,
  maxStderrBytes: 4_096,
} as const
const HOSTILE_CGI = `${FIXTURES}hostile-cgi`
const HTDOCS = `${FIXTURES}htdocs`
/** cgroup v1 hierarchies where cgibox puts its per-run cgroups (src/process/cgroup.ts). */
const CGROUP_ROOTS = ['/sys/fs/cgroup/pids', '/sys/fs/cgroup/memory']

type Level = 'rlimit' | 'bwrap'

interface Current {
  readonly server: TestServer
  readonly markers: string[]
  /** This server's instance cgroup directories (cgibox-<pid ns>-<pid>-<hex>), found by comparing before and after. */
  readonly instanceDirs: readonly string[]
}

let current: Current | null = null

// Starts cgibox over the hostile fixtures at `level` with the tiny limits (closed when the test finishes).
async function startHostileServer(level: Level, settings: RawConfig = {}): Promise<TestServer> {
  const before = new Set(ourInstanceDirs())
  const server = await startTestServer({
    htdocs: HTDOCS, cgiBin: HOSTILE_CGI, sandbox: level, shutdownGraceMs: 200, ...LIMITS, ...settings,
  })
  expect(server.sandbox).toMatch(new RegExp(`^sandbox: ${level} `))
  current = {server, markers: [], instanceDirs: ourInstanceDirs().filter((dir) => !before.has(dir))}
  return server
}

// A unique word for the test's runs; afterEach checks that no process carrying it is left.
function newMarker(): string {
  const marker = `cgibox-t-${randomUUID()}`
  current!.markers.push(marker)
  return marker
}

// Whether this server puts runs into a cgroup of that controller (the startup line says so).
function hasCgroup(server: TestServer, controller: 'pids' | 'memory'): boolean {
  return new RegExp(`cgroup v1 [a-z+]*\\b${controller}\\b`).test(server.sandbox)
}

// The run record of a script, once the run has ended and been cleaned up.
async function runRecord(server: TestServer, script: string): Promise<RunRecord> {
  await expect.poll(() => server.log.runs.some((run) => run.script === `/cgi-bin/${script}`), {timeout: 10_000}).toBe(true)
  return server.log.runs.find((run) => run.script === `/cgi-bin/${script}`)!
}

afterEach(async () => {
  const state = current
  current = null
  if (state === null) return
  const {server} = state
  try {
    // The server is healthy: a static file and a small script (a new sandboxed run) both answer.
    const [file, script] = await Promise.all([
      getFully(server.port, '/hello.txt'), getFully(server.port, '/cgi-bin/ok.cgi'),
    ])
    expect(file.status).toBe(200)
    expect(file.body.toString()).toBe('hello static\n')
    expect(script.status).toBe(200)
    expect(script.body.toString()).toBe('ok\n')
    expect(script.complete).toBe(true)
    // No process of the test's runs is left, daemons and forks included.
    for (const marker of state.markers) {
      await expect.poll(() => processesWithMarker(marker), {timeout: 5_000}).toEqual([])
    }
    // Every run has ended: no per-run cgroup of this server is left, no direct child of a run is alive.
    await expect.poll(() => runCgroupsOf(state.instanceDirs), {timeout: 5_000}).toEqual([])
    await expect.poll(() => server.log.runs.filter((run) => isAlive(run.pid)).map((run) => run.pid), {timeout: 5_000}).toEqual([])
    // Every child of the server was reaped.
    await expect.poll(zombieChildren, {timeout: 5_000}).toEqual([])
  } finally {
    // A failed check must not leave processes behind for the next tests.
    for (const marker of state.markers) killMarked(marker)
  }
})

afterAll(() => {
  // Each server removed its instance cgroup directories when it closed.
  expect(ourInstanceDirs()).toEqual([])
})

describe.each(['bwrap', 'rlimit'] as const)('at sandbox level %s', (level) => {
  test('a fork bomb is held at maxProcesses while the server and the machine keep working, and dies at the deadline', async () => {
    // Memory generous enough that only the process limit stops the bomb (its copy-on-write pages add up), and a
    // deadline long enough for the bomb to reach its limit on a loaded machine.
    const server = await startHostileServer(level, {timeoutMs: 5_000, memoryBytes: 512 * MIB})
    const marker = newMarker()
    const bomb = getFully(server.port, `/cgi-bin/fork-bomb.py?m=${marker}`)
    let largest = 0
    const limited = hasCgroup(server, 'pids')
    // With a pids cgroup the kernel counts each fork refused at the limit; else the bomb fills RLIMIT_NPROC.
    await expect.poll(() => {
      largest = Math.max(largest, processesWithMarker(marker).length)
      return limited ? pidsLimitHits(current!.instanceDirs) > 0 : largest >= LIMITS.maxProcesses - 2
    }, {timeout: 4_000, interval: 20}).toBe(true)
    // While the bomb is at its limit: a static file, another script run and a fork on the host all work.
    const [file, script] = await Promise.all([getFully(server.port, '/hello.txt'), getFully(server.port, '/cgi-bin/ok.cgi')])
    expect([file.status, script.status, script.body.toString()]).toEqual([200, 200, 'ok\n'])
    // …while the bomb still ran: its run has no record yet (an ordering, not a clock).
    expect(server.log.runs.filter((run) => run.script === '/cgi-bin/fork-bomb.py')).toEqual([])
    expect(spawnSync('/bin/true').status).toBe(0)
    largest = Math.max(largest, processesWithMarker(marker).length)
    // The bomb's forks are counted against the run (plus nothing: bwrap's own two processes carry no marker).
    expect(largest).toBeLessThanOrEqual(LIMITS.maxProcesses)
    const response = await bomb
    // The bomb sent its headers before bombing: the deadline cuts its response off.
    expect(response.status).toBe(200)
    expect(response.body.toString()).toMatch(/^bombing\n/)
    expect(response.complete).toBe(false)
    const run = await runRecord(server, 'fork-bomb.py')
    expect(run).toMatchObject({killReason: 'deadline', ...limited ? {limitHit: 'processes'} : {}})
  })

  // Regression: at bwrap the response used to end cleanly, because bwrap reports its command's death by SIGKILL
  // as exit code 137 and run-cgi only cut off runs that died by a signal (fixed in spawn-script.ts); and the record
  // sometimes named a kill reason ('error', 'client-gone') for the run the kernel had killed.
  test('a memory bomb dies at memoryBytes, its response is cut off and the run record says memory', async () => {
    const server = await startHostileServer(level)
    const marker = newMarker()
    const response = await getFully(server.port, `/cgi-bin/memory-bomb.py?m=${marker}`)
    expect(response.status).toBe(200)
    expect(response.body.toString()).toMatch(/^allocating\n/)
    // It never got near the 1.5 s deadline: the memory limit stopped it.
    const run = await runRecord(server, 'memory-bomb.py')
    expect(run).toMatchObject({killReason: null})
    // With a memory cgroup the kernel OOM-kills it (SIGKILL): the client must see a cut-off body. Without one,
    // RLIMIT_DATA makes python raise MemoryError and exit by itself, which looks like a normal end.
    if (hasCgroup(server, 'memory')) {
      // bwrap's exit code 137 (128 + SIGKILL) is reported as the signal, as at the other levels.
      expect(run).toMatchObject({limitHit: 'memory', signal: 'SIGKILL'})
      expect(response.complete).toBe(false)
    }
    const mibReached = response.body.toString().match(/^(\d+) MiB$/gm)?.length ?? 0
    expect(mibReached * 16).toBeLessThanOrEqual(LIMITS.memoryBytes / MIB)
  })

  test('a double-forked setsid daemon does not hold the response and dies with the run', async () => {
    const server = await startHostileServer(level)
    const marker = newMarker()
    const response = await getFully(server.port, `/cgi-bin/daemon.cgi?m=${marker}`)
    expect(response.status).toBe(200)
    expect(response.complete).toBe(true)
    // The daemon really ran, in a session of its own (so a process-group kill would have missed it).
    const started = /^daemon: pid (\d+) session (\d+) \(script session (\d+)\)$/m.exec(response.body.toString())
    expect(started, response.body.toString()).not.toBeNull()
    expect(started![2]).not.toBe(started![3])
    // afterEach polls for "<marker>-daemon" too (the marker is part of it): the daemon is gone.
    await expect.poll(() => processesWithMarker(`${marker}-daemon`), {timeout: 5_000}).toEqual([])
  })

  test('/etc/shadow, other processes\' environments and cgibox\'s own environment are unreadable', async () => {
    const secret = `cgibox-hostile-secret-${randomUUID()}`
    process.env.CGIBOX_HOSTILE_SECRET = secret
    onTestFinished(() => {
      delete process.env.CGIBOX_HOSTILE_SECRET
    })
    // A decoy with the secret in its environment (/proc/<pid>/environ is the environment a process started with:
    // setting process.env above does not change the server's own, so the decoy stands for any other process).
    const decoy = spawn('/bin/sleep', ['30'], {env: {CGIBOX_HOSTILE_SECRET: secret}, stdio: 'ignore'})
    onTestFinished(() => {
      decoy.kill('SIGKILL')
    })
    await new Promise((resolve) => decoy.once('spawn', resolve))
    // Positive control: the decoy's environment holds the secret, for whoever may read it.
    expect(fs.readFileSync(`/proc/${decoy.pid}/environ`, 'utf8')).toContain(secret)
    const server = await startHostileServer(level)
    const marker = newMarker()
    const response = await getFully(server.port, `/cgi-bin/read-secrets.py?m=${marker}&pids=${process.pid},${decoy.pid}`)
    expect(response.status).toBe(200)
    expect(response.complete).toBe(true)
    const body = response.body.toString()
    expect(body).not.toContain(secret)
    // bwrap: not mounted / not in the PID namespace (ENOENT); rlimit: another uid (EACCES).
    const denied = level === 'bwrap' ? 'ENOENT' : 'EACCES'
    expect(body).toMatch(new RegExp(`^shadow: ${denied}$`, 'm'))
    expect(body).toMatch(new RegExp(`^environ-of-${decoy.pid}: ${denied}$`, 'm'))
    expect(body).toMatch(new RegExp(`^environ-of-${process.pid}: ${denied}$`, 'm'))
    const [, readable, visible] = /^proc-environ: (\d+) of (\d+) readable$/m.exec(body) ?? []
    if (level === 'bwrap') {
      // /proc is the sandbox's own: its pid 1 is bwrap's init (holding the CGI environment only) and the script.
      expect(Number(visible)).toBeLessThanOrEqual(3)
    } else {
      // Every host process is listed, but only the run's own (its uid) environments can be read; pid 1 is init.
      expect(body).toMatch(/^init-environ: EACCES$/m)
      expect(Number(visible)).toBeGreaterThan(3)
      expect(Number(readable)).toBeLessThanOrEqual(2)
    }
    // The script's own environment was built from nothing: none of cgibox's variables are in it.
    expect(body).not.toContain('CGIBOX_HOSTILE_SECRET')
    expect(body).toContain('--- own environment\n')
  })
})

describe('at sandbox level bwrap', () => {
  test('an endless CPU loop before its headers gets a 504 and is killed', async () => {
    const server = await startHostileServer('bwrap')
    const marker = newMarker()
    const response = await getFully(server.port, `/cgi-bin/spin.cgi?m=${marker}`)
    expect(response.status).toBe(504)
    expect(response.body.toString()).toBe('504 Gateway Timeout\n')
    expect((await runRecord(server, 'spin.cgi')).killReason).toBe('deadline')
  })

  test('a silent sleeper gets a 504 and is killed', async () => {
    const server = await startHostileServer('bwrap')
    const marker = newMarker()
    expect(processesWithMarker(marker)).toEqual([])
    const response = await getFully(server.port, `/cgi-bin/sleeper.cgi?m=${marker}`)
    expect(response.status).toBe(504)
    expect((await runRecord(server, 'sleeper.cgi')).killReason).toBe('deadline')
  })

  test('output trickling past the deadline is cut off, never completed', async () => {
    const server = await startHostileServer('bwrap')
    const marker = newMarker()
    const response = await getFully(server.port, `/cgi-bin/trickle.cgi?m=${marker}`)
    expect(response.status).toBe(200)
    expect(response.body.toString()).toMatch(/^(tick\n)+/)
    expect(response.complete).toBe(false)
    expect((await runRecord(server, 'trickle.cgi')).killReason).toBe('deadline')
  })

  test('a script ignoring SIGTERM is SIGKILLed at the deadline, without the killGraceMs grace', async () => {
    const killGraceMs = 10_000
    const server = await startHostileServer('bwrap', {killGraceMs})
    const marker = newMarker()
    // Untrusted runs get no grace: the response ends well before timeoutMs + killGraceMs.
    const response = await getFully(server.port, `/cgi-bin/ignore-term.cgi?m=${marker}`, LIMITS.timeoutMs + killGraceMs / 2)
    expect(response.status).toBe(200)
    expect(response.body.toString()).toBe('stubborn\n')
    expect(response.complete).toBe(false)
    const run = await runRecord(server, 'ignore-term.cgi')
    expect(run).toMatchObject({killReason: 'deadline', signal: 'SIGKILL'})
    expect(run.ms).toBeLessThan(LIMITS.timeoutMs + killGraceMs)
  })

  test('an endless yes is cut off at maxOutputBytes and killed for output-cap', async () => {
    const server = await startHostileServer('bwrap')
    const marker = newMarker()
    const response = await getFully(server.port, `/cgi-bin/yes.cgi?m=${marker}`)
    expect(response.status).toBe(200)
    expect(response.complete).toBe(false)
    expect(response.body.length).toBeGreaterThan(0)
    expect(response.body.length).toBeLessThanOrEqual(LIMITS.maxOutputBytes)
    expect((await runRecord(server, 'yes.cgi')).killReason).toBe('output-cap')
  })

  test('an endless stderr flood neither blocks the response nor reaches the client, and the log keeps maxStderrBytes', async () => {
    const server = await startHostileServer('bwrap')
    const marker = newMarker()
    const response = await getFully(server.port, `/cgi-bin/stderr-flood.cgi?m=${marker}`)
    expect(response.status).toBe(200)
    expect(response.complete).toBe(true)
    expect(response.body.toString()).toBe('survived the flood\n')
    await runRecord(server, 'stderr-flood.cgi')
    const logged = server.log.stderrs.find((entry) => entry.script === '/cgi-bin/stderr-flood.cgi')
    expect(logged).toBeDefined()
    const [, kept, dropped] = /^([^]*)\n\[(\d+) more bytes of stderr dropped\]$/.exec(logged!.text) ?? []
    expect(kept?.length).toBe(LIMITS.maxStderrBytes)
    expect(Number(dropped)).toBeGreaterThanOrEqual(8_000_000 - LIMITS.maxStderrBytes)
  })

  test('filling /tmp and /dev/shm ends in ENOSPC at their sizes; a file past maxFileBytes in EFBIG or SIGXFSZ', async () => {
    // /tmp larger than maxFileBytes, so one file meets the file size limit before the tmpfs is full.
    const tmpBytes = 4 * MIB
    // Not a deadline test: room for a loaded machine to write the files.
    const server = await startHostileServer('bwrap', {tmpBytes, timeoutMs: 15_000})
    const marker = newMarker()
    const response = await getFully(server.port, `/cgi-bin/fill-disk.py?m=${marker}`)
    expect(response.status).toBe(200)
    expect(response.complete).toBe(true)
    const lines = parseLines(response.body.toString())
    expect(lines.tmp?.[0]).toBe('ENOSPC')
    expect(Number(lines.tmp?.[1])).toBeLessThanOrEqual(tmpBytes)
    expect(Number(lines.tmp?.[1])).toBeGreaterThan(tmpBytes / 2)
    expect(lines['dev-shm']?.[0]).toBe('ENOSPC')
    expect(Number(lines['dev-shm']?.[1])).toBeLessThanOrEqual(MIB)
    // python ignores SIGXFSZ and gets EFBIG; head keeps the default action and dies of SIGXFSZ.
    expect(lines['file-size']).toEqual(['EFBIG', String(LIMITS.maxFileBytes)])
    expect(lines['file-size-head']).toEqual(['SIGXFSZ', String(LIMITS.maxFileBytes)])
  })

  test('writing to /, /usr, /etc, the script directory or the document root fails with EROFS or EACCES', async () => {
    const server = await startHostileServer('bwrap', {timeoutMs: 15_000})
    const marker = newMarker()
    const response = await getFully(server.port, `/cgi-bin/fill-disk.py?m=${marker}`)
    expect(response.status).toBe(200)
    const lines = parseLines(response.body.toString())
    for (const place of ['root', 'usr', 'etc', 'script-dir', 'document-root']) {
      expect(lines[`write-${place}`]?.[0], place).toMatch(/^(EROFS|EACCES)$/)
    }
    // /tmp is 1 MiB here: filling it ends at that size.
    expect(lines.tmp?.[0]).toBe('ENOSPC')
    expect(Number(lines.tmp?.[1])).toBeLessThanOrEqual(LIMITS.tmpBytes)
    for (const dir of ['/', '/usr', '/etc', HOSTILE_CGI, HTDOCS]) {
      expect(fs.existsSync(path.join(dir, `cgibox-write-probe-${marker}`))).toBe(false)
    }
  })

  test('the network is unreachable: neither cgibox on loopback nor a TCP server of the test sees a connection', async () => {
    let listenerConnections = 0
    const listener = net.createServer((socket) => {
      listenerConnections++
      socket.destroy()
    })
    await new Promise<void>((resolve) => listener.listen(0, '0.0.0.0', resolve))
    onTestFinished(() => new Promise<void>((resolve) => listener.close(() => resolve())))
    const listenerPort = (listener.address() as net.AddressInfo).port
    const server = await startHostileServer('bwrap')
    let serverConnections = 0
    server.server.on('connection', () => serverConnections++)
    const marker = newMarker()
    const targets = [`127.0.0.1:${server.port}`, `127.0.0.1:${listenerPort}`]
    const external = Object.values(os.networkInterfaces()).flat().find((address) => address?.family === 'IPv4' && !address.internal)
    if (external) targets.push(`${external.address}:${listenerPort}`)
    const query = `m=${marker}${targets.map((target) => `&to=${target}`).join('')}`
    const response = await getFully(server.port, `/cgi-bin/connect.py?${query}`)
    expect(response.status).toBe(200)
    expect(response.complete).toBe(true)
    const body = response.body.toString()
    for (const target of targets) {
      // A private loopback with nothing listening (ECONNREFUSED); no route to any other address (ENETUNREACH).
      expect(body).toMatch(new RegExp(`^connect ${target}: (ECONNREFUSED|ENETUNREACH|EHOSTUNREACH)$`, 'm'))
    }
    expect(body).toMatch(/^dns: failed/m)
    expect(listenerConnections).toBe(0)
    // The only connection and the only request cgibox saw are the test's own.
    expect(serverConnections).toBe(1)
    expect(server.log.accesses.map((access) => access.url)).toEqual([`/cgi-bin/connect.py?${query}`])
  })

  // Regression: bwrap's monitor and namespace init kept the stdout pipe open, so the response waited for the
  // deadline and was then cut off (fixed in prepare-run.ts: the pipe reaches bwrap as fd 3).
  test('a script that closes stdout and lingers gets a complete response at once and is killed at the deadline', async () => {
    const server = await startHostileServer('bwrap')
    const marker = newMarker()
    // The response must be complete before the deadline could have ended it.
    const response = await getFully(server.port, `/cgi-bin/close-stdout-linger.cgi?m=${marker}`, LIMITS.timeoutMs - 300)
    expect(response.status).toBe(200)
    expect(response.complete).toBe(true)
    expect(response.body.toString()).toBe('done early\n')
    // The lingering process is still there after the response…
    expect(processesWithMarker(marker).length).toBeGreaterThan(0)
    // …and gone after the deadline.
    await expect.poll(() => processesWithMarker(marker), {timeout: 5_000}).toEqual([])
    expect((await runRecord(server, 'close-stdout-linger.cgi')).killReason).toBe('deadline')
  })

  test('a client that disconnects mid-stream gets its run killed for client-gone', async () => {
    // A long deadline, so only the client leaving can end the run this fast.
    const server = await startHostileServer('bwrap', {timeoutMs: 20_000})
    const marker = newMarker()
    const socket = await openSocket(server.port)
    socket.write(`GET /cgi-bin/trickle.cgi?m=${marker} HTTP/1.1\r\nHost: x\r\n\r\n`)
    await readUntil(socket, (data) => data.includes('tick'))
    expect(processesWithMarker(marker).length).toBeGreaterThan(0)
    socket.destroy()
    await expect.poll(() => processesWithMarker(marker), {timeout: 5_000}).toEqual([])
    expect((await runRecord(server, 'trickle.cgi')).killReason).toBe('client-gone')
  })

  test('30 CPU-burning requests with 4 slots: 4 run, 6 wait, 20 get 503 at once, and static files stay served', async () => {
    const server = await startHostileServer('bwrap', {maxConcurrent: 4, maxQueued: 6, queueTimeoutMs: 20_000})
    const marker = newMarker()
    const burns = Array.from({length: 30}, () => getFully(server.port, `/cgi-bin/spin.cgi?m=${marker}`, 30_000))
    let done = false
    const all = Promise.all(burns).finally(() => {
      done = true
    })
    // Sample how many burners run at once while the storm lasts.
    let largest = 0
    const sampling = (async () => {
      while (!done) {
        largest = Math.max(largest, processesWithMarker(marker).length)
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
    })()
    const staticFile = await getFully(server.port, '/hello.txt')
    expect(staticFile.status).toBe(200)
    // Served while the storm ran: no burner had ended yet (an ordering, not a clock).
    expect(server.log.runs).toEqual([])
    const responses = await all
    await sampling
    const statuses = responses.map((response) => response.status)
    expect(statuses.filter((status) => status === 504)).toHaveLength(10)
    const refused = responses.filter((response) => response.status === 503)
    expect(refused).toHaveLength(20)
    expect(refused.every((response) => response.headers['retry-after'] !== undefined)).toBe(true)
    expect(largest).toBe(4)
    await expect.poll(() => server.log.runs.filter((run) => run.script === '/cgi-bin/spin.cgi').length, {timeout: 10_000}).toBe(10)
    expect(server.log.runs.every((run) => run.killReason === 'deadline')).toBe(true)
  }, 60_000)
})

// "name: word word" lines of a fixture's report → {name: [word, word]}.
function parseLines(text: string): Record<string, string[]> {
  const result: Record<string, string[]> = {}
  for (const line of text.split('\n')) {
    const index = line.indexOf(': ')
    if (index > 0) result[line.slice(0, index)] = line.slice(index + 2).trim().split(/\s+/)
  }
  return result
}

// Instance cgroup directories of the cgibox servers of this test process (src/process/cgroup.ts names them
// cgibox-<pid namespace>-<server pid>-<hex>), anywhere under the v1 pids and memory hierarchies.
function ourInstanceDirs(): string[] {
  const mine = new RegExp(`^cgibox-\\d+-${process.pid}-[0-9a-f]+$`)
  const found: string[] = []
  const walk = (dir: string, depth: number) => {
    let entries: fs.Dirent[]
    try {
      entries = fs.readdirSync(dir, {withFileTypes: true})
    } catch {
      return
    }
    for (const entry of entries) {
      if (!entry.isDirectory()) continue
      if (mine.test(entry.name)) found.push(path.join(dir, entry.name))
      else if (depth < 6) walk(path.join(dir, entry.name), depth + 1)
    }
  }
  for (const root of CGROUP_ROOTS) walk(root, 0)
  return found
}

// How often a fork was refused at pids.max in the runs of these instance directories (pids.events "max").
function pidsLimitHits(instanceDirs: readonly string[]): number {
  let hits = 0
  for (const dir of runCgroupsOf(instanceDirs.filter((instance) => instance.startsWith('/sys/fs/cgroup/pids/')))) {
    try {
      hits += Number(/^max (\d+)$/m.exec(fs.readFileSync(path.join(dir, 'pids.events'), 'utf8'))?.[1] ?? 0)
    } catch {
      // removed meanwhile
    }
  }
  return hits
}

// The per-run cgroups (run-N) still inside these instance directories.
function runCgroupsOf(instanceDirs: readonly string[]): string[] {
  return instanceDirs.flatMap((dir) => {
    try {
      return fs.readdirSync(dir, {withFileTypes: true}).filter((entry) => entry.isDirectory()).map((entry) => path.join(dir, entry.name))
    } catch {
      return []
    }
  })
}

// Children of this process (the server) that have exited but were not reaped.
function zombieChildren(): number[] {
  const zombies: number[] = []
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8')
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (state === 'Z' && Number(ppid) === process.pid) zombies.push(Number(entry))
    } catch {
      // exited meanwhile
    }
  }
  return zombies
}
