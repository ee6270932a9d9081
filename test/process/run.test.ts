// Hostile scripts run directly through the process layer (sandbox plan → launcher → run.ts) in every sandbox level
// this machine offers: each test asserts the outcome and, after it, that no process of the run and no per-run cgroup
// is left.
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import {afterAll, afterEach, beforeAll, describe, expect, onTestFinished, test} from 'vitest'
import {DEFAULT_LIMITS, type SandboxSetting} from '../../src/config.js'
import type {SandboxOptions} from '../../src/process/sandbox.js'
import {
  HOSTILE, IS_ROOT, RUN_ENV, TEST_LIMITS, killMarked, liveRunCgroups, newMarker, openSandbox, parseLines,
  processesWithMarker, startRun, type Box, type ExitStatus,
} from './run-helpers.js'

/** A secret in the test process's own environment that no sandboxed script may find (docs/security.md §7.2). */
const SECRET = `cgibox-secret-${process.pid}-${Date.now()}`
process.env.CGIBOX_TEST_SECRET = SECRET

const bwrapProbe = await openSandbox('auto')
const BWRAP_WORKS = bwrapProbe.level === 'bwrap'
await bwrapProbe.close()

interface LevelCase {
  readonly name: string
  readonly setting: SandboxSetting
  readonly options: SandboxOptions
  readonly available: boolean
}

const LEVELS: LevelCase[] = [
  {name: 'none', setting: 'none', options: {}, available: true},
  {name: 'rlimit', setting: 'rlimit', options: {}, available: true},
  {name: 'bwrap', setting: 'bwrap', options: {}, available: BWRAP_WORKS},
]

afterEach(() => {
  // Every run removed its cgroups by the time `exited` resolved.
  expect(liveRunCgroups()).toEqual([])
})

describe.each(LEVELS)('level $name', ({setting, options, available}) => {
  let sandbox: Box
  const isUntrusted = setting !== 'none'
  const isBwrap = setting === 'bwrap'
  // Whole-run kills of setsid daemons need a cgroup (root here) or a PID namespace (bwrap).
  const killsDaemons = IS_ROOT || isBwrap

  beforeAll(async () => {
    if (available) sandbox = await openSandbox(setting, options)
  })
  afterAll(async () => {
    await sandbox?.close()
  })

  test.skipIf(!available)('runs the script with exactly the given environment and reports its exit code', async () => {
    // What the program was started with (/proc/self/environ), not what a shell would add to it.
    const script = 'import sys; print(open("/proc/self/environ").read().replace("\\0", "\\n")); sys.exit(3)'
    const run = startRun(sandbox, ['/usr/bin/python3', '-c', script], {env: {...RUN_ENV, CGI_VARIABLE: 'yes'}})
    const {status, stdout, killReason} = await run.finished()
    expect(status).toEqual({code: 3, signal: null, resourceLimit: null})
    expect(killReason).toBeNull()
    const names = stdout.trim().split('\n').map((line) => line.split('=')[0])
    // Nothing of the server's environment, no PWD (bwrap sets one): only the run's own, plus its private TMPDIR
    // outside bwrap (bwrap runs have a private /tmp instead).
    expect(names.sort()).toEqual(isBwrap ? ['CGI_VARIABLE', 'LANG', 'PATH'] : ['CGI_VARIABLE', 'LANG', 'PATH', 'TMPDIR'])
    expect(stdout).not.toContain(SECRET)
  })

  // Descriptors cgibox itself inherited are test/e2e/cli.test.ts's (they must be there before cgibox starts).
  test.skipIf(!available)('gets exactly fds 0, 1 and 2, whatever the launcher holds open', async () => {
    const {stdout} = await startRun(sandbox, ['/usr/bin/python3', '-c', 'import os; print(sorted(int(fd) for fd in os.listdir("/proc/self/fd")))']).finished()
    // The listing itself opens one more descriptor (os.listdir's own), which is the last one.
    const fds = JSON.parse(stdout.trim()) as number[]
    expect(fds.slice(0, -1)).toEqual([0, 1, 2])
  })

  test.skipIf(!available || !killsDaemons)('a double-forked setsid daemon dies when the script exits', async () => {
    const marker = newMarker()
    onTestFinished(() => killMarked(marker))
    const {status, stdout} = await startRun(sandbox, ['/bin/sh', './daemon.sh', marker]).finished()
    expect(stdout).toContain('started')
    expect(status.code).toBe(0)
    await expect.poll(() => processesWithMarker(marker), {timeout: 5_000}).toEqual([])
  })

  test.skipIf(!available || !killsDaemons)('a double-forked daemon dies when the running script is killed', async () => {
    const marker = newMarker()
    onTestFinished(() => killMarked(marker))
    const run = startRun(sandbox, ['/bin/sh', '-c', './daemon.sh "$0" && echo waiting && exec sleep 300', marker])
    await run.waitForOutput('waiting')
    await expect.poll(() => processesWithMarker(marker).length, {timeout: 5_000}).toBeGreaterThan(0)
    run.child.kill('deadline')
    const {killReason, status} = await run.finished()
    expect(killReason).toBe('deadline')
    expect(wasKilled(status)).toBe(true)
    await expect.poll(() => processesWithMarker(marker), {timeout: 5_000}).toEqual([])
  })

  test.skipIf(!available)('a script ignoring SIGTERM is killed with SIGKILL', async () => {
    const run = startRun(sandbox, ['/bin/sh', './ignore-term.sh'])
    await run.waitForOutput('ready')
    run.child.kill('deadline')
    const {status, killReason} = await run.finished()
    expect(killReason).toBe('deadline')
    // Trusted levels: SIGTERM was ignored, SIGKILL came after killGraceMs. bwrap: SIGKILL at once.
    expect(wasSigkilled(status)).toBe(true)
  })

  test.skipIf(!available)('kill is idempotent and the first reason wins', async () => {
    const run = startRun(sandbox, ['/bin/sh', '-c', 'echo ready; exec sleep 300'])
    await run.waitForOutput('ready')
    run.child.kill('client-gone')
    run.child.kill('deadline')
    const {killReason, status} = await run.finished()
    expect(killReason).toBe('client-gone')
    // Trusted levels: SIGTERM ends sleep; bwrap: SIGKILL.
    expect(wasKilled(status)).toBe(true)
  })

  test.skipIf(!available || !isUntrusted || !IS_ROOT)('runs as a pool uid with no supplementary groups and no new privileges', async () => {
    const {stdout} = await startRun(sandbox, ['/bin/sh', './identity.sh']).finished()
    const identity = parseLines(stdout)
    const uid = Number(identity.uid)
    expect(uid).toBeGreaterThanOrEqual(61_000)
    expect(uid).toBeLessThan(62_000)
    expect(Number(identity.gid)).toBe(uid)
    expect(identity.groups).toBe('')
    expect(identity.nonewprivs).toBe('1')
  })

  test.skipIf(!available || !isUntrusted || !IS_ROOT)('a fork bomb is contained by the process limit and the machine keeps working', async () => {
    const marker = newMarker()
    onTestFinished(() => killMarked(marker))
    const bomb = startRun(sandbox, ['python3', './fork-bomb.py', marker])
    await bomb.waitForOutput('bombing')
    await expect.poll(() => pidsLimitHits(), {timeout: 10_000}).toBeGreaterThan(0)
    // The bomb fills its limit and stays there.
    let largest = 0
    await expect.poll(() => {
      largest = Math.max(largest, processesWithMarker(marker).length)
      return largest
    }, {timeout: 10_000}).toBeGreaterThanOrEqual(TEST_LIMITS.maxProcesses! - 2)
    // bwrap's outer process and its namespace's init carry the script's argv (and so the marker) too.
    expect(largest).toBeLessThanOrEqual(TEST_LIMITS.maxProcesses! + (isBwrap ? 2 : 0))
    // Another run still starts and finishes while the bomb is going on.
    const other = await startRun(sandbox, ['/bin/sh', '-c', 'echo still-working']).finished()
    expect(other.stdout).toBe('still-working\n')
    bomb.child.kill('deadline')
    const {status} = await bomb.finished()
    expect(status.resourceLimit).toBe('processes')
    await expect.poll(() => processesWithMarker(marker), {timeout: 5_000}).toEqual([])
  })

  test.skipIf(!available || !isUntrusted || !IS_ROOT)('a python memory bomb dies with reason memory', async () => {
    const {status, stdout} = await startRun(sandbox, ['python3', './memory-bomb.py']).finished()
    expect(stdout).toContain('allocating')
    expect(status.resourceLimit).toBe('memory')
  })

  test.skipIf(!available || !isUntrusted || !IS_ROOT)('a node memory bomb dies with reason memory', async () => {
    const {status} = await startRun(sandbox, ['node', '-e', 'const a = []; for (;;) a.push(Buffer.alloc(16 << 20, 1))']).finished()
    expect(status.resourceLimit).toBe('memory')
  })

  test.skipIf(!available || !isUntrusted)('node and python still run under the same memory limit', async () => {
    const node = await startRun(sandbox, ['node', '-e', 'console.log(1)']).finished()
    expect(node).toMatchObject({stdout: '1\n', status: {code: 0}})
    const python = await startRun(sandbox, ['python3', '-c', 'print(1)']).finished()
    expect(python).toMatchObject({stdout: '1\n', status: {code: 0}})
  })

  test.skipIf(!available || !isUntrusted)('a CPU burner dies at the CPU limit with reason cpu', async () => {
    const {status} = await startRun(sandbox, ['/bin/sh', '-c', 'while :; do :; done'], {limits: {cpuSeconds: 1}}).finished()
    expect(status.resourceLimit).toBe('cpu')
  })

  test.skipIf(!available || !isUntrusted)('a file larger than maxFileBytes stops its writer with reason file-size', async () => {
    const file = `/tmp/cgibox-fsize-${newMarker()}`
    onTestFinished(() => fs.rmSync(file, {force: true}))
    const write = `exec head -c ${4 * 1024 * 1024} /dev/zero > ${file}`
    const {status} = await startRun(sandbox, ['/bin/sh', '-c', write], {limits: {maxFileBytes: 1024 * 1024, tmpBytes: 8 * 1024 * 1024}}).finished()
    expect(status.resourceLimit).toBe('file-size')
  })

  test.skipIf(!available || !isUntrusted || !IS_ROOT)('cannot read /etc/shadow, /root or the server environment', async () => {
    const {stdout} = await startRun(sandbox, ['python3', './read-secrets.py', SECRET]).finished()
    const found = parseLines(stdout)
    expect(found.shadow).toMatch(/Error$/)
    expect(found.root).toMatch(/Error$/)
    expect(found['secret-in-environ']).toBe('none')
    expect(found['secret-in-own-env']).toBe('none')
  })

  test.skipIf(!available || !isUntrusted || !IS_ROOT)('cannot write to its own directory or the system directories', async () => {
    const {stdout} = await startRun(sandbox, ['/bin/sh', './write-probe.sh', HOSTILE]).finished()
    expect(parseLines(stdout)).toMatchObject({'script-dir': 'denied', root: 'denied', dev: 'denied', usr: 'denied'})
    expect(fs.existsSync(path.join(HOSTILE, 'cgibox-write-probe'))).toBe(false)
  })

  test.skipIf(!available || !isUntrusted || !IS_ROOT)('kill -9 -1 inside a run reaches no other run', async () => {
    const victim = startRun(sandbox, ['/bin/sh', '-c', 'echo ready; read line; echo "got $line"'], {stdin: 'keep-open'})
    await victim.waitForOutput('ready')
    // kill(-1) signals every process the caller may signal except itself (and init).
    const attacker = await startRun(sandbox, ['/bin/sh', '-c', 'kill -9 -1; echo survived']).finished()
    expect(attacker.stdout).toBe('survived\n')
    // The other run (another uid; bwrap: another PID namespace) still answers.
    victim.stdin.end('ping\n')
    await victim.waitForOutput('got ping')
    expect((await victim.finished()).status.code).toBe(0)
  })

  test.skipIf(!available || !IS_ROOT)('a run cannot move itself into the cgroup of another live run', async () => {
    const victim = startRun(sandbox, ['/bin/sh', '-c', 'echo ready; exec sleep 300'])
    await victim.waitForOutput('ready')
    // The pid arrives on the launcher's own channel, which may lag behind the run's output: poll for it.
    const cgroupOf = (pid: number) => liveRunCgroups().find((dir) => fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8')
      .split('\n').includes(String(pid)))
    await expect.poll(() => victim.child.pid > 0 && cgroupOf(victim.child.pid) !== undefined, {timeout: 5_000}).toBe(true)
    const victimCgroup = cgroupOf(victim.child.pid)
    // A double-forked daemon would do this to live on inside the newest run's cgroup (none: every run is `user`).
    const procs = path.join(victimCgroup!, 'cgroup.procs')
    const attacker = await startRun(sandbox, ['/bin/sh', '-c', `echo $$ > ${procs} 2>/dev/null && echo joined || echo refused`]).finished()
    expect(attacker.stdout).toBe('refused\n')
    victim.child.kill('shutdown')
    await victim.finished()
  })

  test.skipIf(!available || isBwrap)('what a run leaves in its TMPDIR and, with a uid of its own, in /tmp, /var/tmp and /dev/shm goes with it', async () => {
    const marker = newMarker()
    const shared = ['/tmp', '/var/tmp', '/dev/shm'].map((dir) => path.join(dir, marker))
    onTestFinished(() => {
      for (const file of shared) fs.rmSync(file, {recursive: true, force: true})
    })
    const script = `echo left > "$TMPDIR/file" && echo "$TMPDIR"; echo x > /tmp/${marker}; mkdir /var/tmp/${marker} && ` +
      `echo y > /var/tmp/${marker}/inner; head -c 65536 /dev/zero > /dev/shm/${marker}; ls -d ${shared.join(' ')} | wc -l`
    const {stdout} = await startRun(sandbox, ['/bin/sh', '-c', script]).finished()
    const [tmpdir, written] = stdout.trim().split('\n')
    expect(Number(written)).toBe(3) // the run could write there…
    expect(fs.existsSync(tmpdir!)).toBe(false) // …its private TMPDIR is removed with it…
    // …and with a uid of its own (rlimit as root), so is what it left in the shared temp directories.
    const expectedLeft = IS_ROOT && setting === 'rlimit' ? [] : shared
    expect(shared.filter((file) => fs.existsSync(file))).toEqual(expectedLeft)
  })

  test.skipIf(!available || !isBwrap)('cannot create user namespaces or mount anything', async () => {
    const script = 'unshare -U true 2>/dev/null && echo userns || echo no-userns; ' +
      'mount -t tmpfs none /tmp 2>/dev/null && echo mounted || echo no-mount'
    const {stdout} = await startRun(sandbox, ['/bin/sh', '-c', script]).finished()
    expect(stdout).toBe('no-userns\nno-mount\n')
  })

  test.skipIf(!available || !isBwrap)('has a bounded private /tmp and a bounded /dev/shm', async () => {
    const {stdout} = await startRun(sandbox, ['/bin/sh', './write-probe.sh', HOSTILE, 'fill']).finished()
    const result = parseLines(stdout)
    expect(result['dev-shm']).toBe('ok')
    // 1 MiB of /tmp holds at most four 256 KiB files.
    expect(Number(result['tmp-full-after'])).toBeLessThanOrEqual(4)
    const shm = await startRun(sandbox, ['/bin/sh', '-c', 'head -c 2097152 /dev/zero > /dev/shm/big || echo shm-full']).finished()
    expect(shm.stdout).toContain('shm-full')
  })

  test.skipIf(!available || !isBwrap)('a second run does not see the first run\'s /tmp', async () => {
    await startRun(sandbox, ['/bin/sh', '-c', 'echo left-behind > /tmp/cgibox-persist']).finished()
    const {stdout} = await startRun(sandbox, ['/bin/sh', '-c', 'cat /tmp/cgibox-persist 2>/dev/null || echo absent']).finished()
    expect(stdout).toBe('absent\n')
  })

  test.skipIf(!available || !isBwrap)('cannot connect to a TCP server on the host loopback', async () => {
    let connections = 0
    const server = net.createServer((socket) => {
      connections++
      socket.destroy()
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    onTestFinished(() => new Promise<void>((resolve) => server.close(() => resolve())))
    const {port} = server.address() as net.AddressInfo
    const {stdout} = await startRun(sandbox, ['python3', './connect.py', String(port)]).finished()
    // Shared empty netns: lo is down (ENETUNREACH); per-run netns: a private lo (ECONNREFUSED). Never a timeout.
    expect(stdout.trim()).toMatch(/^(ENETUNREACH|ECONNREFUSED|EHOSTUNREACH)$/)
    expect(connections).toBe(0)
  })

  test.skipIf(!available || !isBwrap)('sees only its own processes and no environment in /proc/1/cmdline', async () => {
    const script = 'ls /proc | grep -c "^[0-9]"; tr "\\0" " " < /proc/1/cmdline; echo'
    const {stdout} = await startRun(sandbox, ['/bin/sh', '-c', script], {env: {...RUN_ENV, HTTP_COOKIE: 'session=cgibox-cookie'}}).finished()
    const [count, cmdline] = stdout.split('\n')
    // bwrap's init, sh, ls, grep (and maybe tr): never the server's processes.
    expect(Number(count)).toBeLessThanOrEqual(6)
    expect(cmdline).toContain('bwrap')
    expect(cmdline).not.toContain('cgibox-cookie')
  })

  test.skipIf(!available || !isBwrap)('sees nothing of the server\'s files besides the bound directories', async () => {
    const project = path.resolve(HOSTILE, '../../..')
    const script = `for f in /root "${project}/package.json" "${project}/src" /etc/shadow /var /home; do ` +
      '[ -e "$f" ] && echo "visible: $f"; done; echo checked'
    const {stdout} = await startRun(sandbox, ['/bin/sh', '-c', script]).finished()
    expect(stdout).toBe('checked\n')
  })

  test.skipIf(!available || !isBwrap)('a run that cannot be set up throws and leaves no cgroup or uid behind', () => {
    expect(() => sandbox.sandbox.plan({argv: ['/bin/true'], env: RUN_ENV, cwd: '/', limits: DEFAULT_LIMITS, location: null, readPaths: []}))
      .toThrow(/refusing to bind \//)
  })

  test.skipIf(!available || !isBwrap)('binds writePaths read-write at their host paths, also below the host /tmp (private /tmp)', async () => {
    const data = fs.mkdtempSync('/tmp/cgibox-rw-')
    onTestFinished(() => fs.rmSync(data, {recursive: true, force: true}))
    fs.chmodSync(data, 0o777)
    const script = `echo written > "${data}/counter.txt" && cat "${data}/counter.txt"; echo x > /tmp/private && echo private-tmp`
    const {stdout} = await startRun(sandbox, ['/bin/sh', '-c', script], {writePaths: [data]}).finished()
    expect(stdout).toBe('written\nprivate-tmp\n')
    expect(fs.readFileSync(path.join(data, 'counter.txt'), 'utf8')).toBe('written\n')
    expect(fs.existsSync('/tmp/private')).toBe(false)
  })

  test.skipIf(!available || !isBwrap)('binds readOnlyPaths read-only at their host paths', async () => {
    const extra = fs.mkdtempSync('/tmp/cgibox-ro-')
    onTestFinished(() => fs.rmSync(extra, {recursive: true, force: true}))
    fs.chmodSync(extra, 0o755)
    fs.writeFileSync(path.join(extra, 'page.txt'), 'bound\n')
    const script = `cat "${extra}/page.txt"; echo x > "${extra}/new" 2>/dev/null || echo read-only`
    const {stdout} = await startRun(sandbox, ['/bin/sh', '-c', script], {readPaths: [extra]}).finished()
    expect(stdout).toBe('bound\nread-only\n')
  })
})

describe('without a sandbox (negative control)', () => {
  test('a process-group kill alone misses a double-forked daemon', async () => {
    const marker = newMarker()
    onTestFinished(() => killMarked(marker))
    const box = await openSandbox('none')
    onTestFinished(() => box.close())
    // The launcher alone: no cgroup, no uid of the run's own.
    const child = box.launcher.launch({
      argv: ['/bin/sh', './daemon.sh', marker], env: RUN_ENV, cwd: HOSTILE, uid: null, gid: null, cgroups: [],
      rlimits: {}, noNewPrivs: false, stdoutFd: 1, warm: null,
    })
    child.stdin.end()
    child.stdout.resume()
    child.stderr.resume()
    await child.exit
    // This is why cgibox needs cgroups or a PID namespace: the daemon outlived its run's process group.
    await expect.poll(() => processesWithMarker(marker).length, {timeout: 5_000}).toBeGreaterThan(0)
    killMarked(marker)
    await expect.poll(() => processesWithMarker(marker), {timeout: 5_000}).toEqual([])
  })
})

// The direct child died of SIGTERM or SIGKILL (bwrap reports its namespace's signal as 128 + signal).
function wasKilled(status: ExitStatus): boolean {
  return status.signal === 'SIGTERM' || wasSigkilled(status) || status.code === 143
}

// The direct child died of SIGKILL; bwrap's outer process reports its namespace's SIGKILL as exit code 128 + 9.
function wasSigkilled(status: ExitStatus): boolean {
  return status.signal === 'SIGKILL' || status.code === 137
}

// Sum of "max" in pids.events of the live runs: how often a fork failed at the pids limit.
function pidsLimitHits(): number {
  let hits = 0
  for (const dir of liveRunCgroups()) {
    try {
      hits += Number(/^max (\d+)$/m.exec(fs.readFileSync(path.join(dir, 'pids.events'), 'utf8'))?.[1] ?? 0)
    } catch {
      // memory hierarchy or removed meanwhile
    }
  }
  return hits
}
