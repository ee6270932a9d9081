// The launcher (launcher.py behind launcher.ts): a real python3 process forking real runs, attacked through its socket
// the way a script sharing cgibox's uid could.
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import {describe, expect, onTestFinished, test} from 'vitest'
import {startLauncher, type LaunchedProcess, type Launcher} from '../../src/process/launcher.js'
import type {RunPlan} from '../../src/process/run-plan.js'
import {makeTempDir} from '../helpers/temp-dir.js'

async function openLauncher(): Promise<{launcher: Launcher; socketDir: string}> {
  const socketDir = await makeTempDir('launcher')
  fs.chmodSync(socketDir, 0o700)
  const launcher = await startLauncher({socketDir})
  onTestFinished(() => launcher.close())
  return {launcher, socketDir}
}

const BASE: RunPlan = {
  argv: ['/bin/sh', '-c', 'true'], env: {PATH: '/usr/bin:/bin'}, cwd: '/', uid: null, gid: null, cgroups: [], rlimits: {},
  noNewPrivs: false, stdoutFd: 1, warm: null,
}

// Runs to its end and collects what it wrote and how it exited.
async function collect(run: LaunchedProcess, input = ''): Promise<{stdout: string; stderr: string; code: number | null; signal: string | null; failure: unknown}> {
  let stdout = ''
  let stderr = ''
  run.stdout.on('data', (chunk: Buffer) => { stdout += chunk })
  run.stderr.on('data', (chunk: Buffer) => { stderr += chunk })
  run.stdout.on('error', () => {})
  const closed = Promise.all([
    new Promise((resolve) => run.stdout.once('close', resolve)),
    new Promise((resolve) => run.stderr.once('close', resolve)),
  ])
  run.stdin.end(input)
  const exit = await run.exit
  await closed
  return {stdout, stderr, code: exit.code, signal: exit.signal, failure: exit.failure}
}

function launcherPid(socketDir: string): number {
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8')
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8')
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      // The launcher itself, not one of its forks before their exec (same cmdline, the launcher as parent).
      if (cmdline.includes('launcher.py') && cmdline.includes(socketDir) && parent === process.pid) return Number(entry)
    } catch {
      // gone
    }
  }
  throw new Error('launcher process not found')
}

function zombieChildrenOf(pid: number): number[] {
  return fs.readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).flatMap((entry) => {
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      return fields[0] === 'Z' && Number(fields[1]) === pid ? [Number(entry)] : []
    } catch {
      return []
    }
  })
}

test('a run gets its stdin, writes stdout and stderr, runs in its cwd with exactly its env, and exits with its code', async () => {
  const {launcher} = await openLauncher()
  const result = await collect(launcher.launch({...BASE, cwd: '/usr', env: {PATH: '/usr/bin:/bin', ONLY: 'this'},
    argv: ['/bin/sh', '-c', 'read line; echo "got $line in $(pwd)"; echo oops >&2; tr "\\0" "\\n" < /proc/$$/environ | grep -c . ; exit 7']}), 'ping\n')
  expect(result).toMatchObject({stdout: 'got ping in /usr\n2\n', stderr: 'oops\n', code: 7, signal: null, failure: null})
})

test('a run killed by a signal reports it, and a kill asked for before the fork is not lost', async () => {
  const {launcher} = await openLauncher()
  const run = launcher.launch({...BASE, argv: ['/bin/sleep', '300']})
  run.signal('SIGKILL') // before the launcher has even read the plan
  expect(await collect(run)).toMatchObject({code: null, signal: 'SIGKILL'})
})

test('stdoutFd 3 puts the stdout connection on fd 3 and /dev/null on fd 1', async () => {
  const {launcher} = await openLauncher()
  const result = await collect(launcher.launch({...BASE, stdoutFd: 3, argv: ['/usr/bin/python3', '-c', 'import os; print("lost"); os.write(3, ("kept\\n" + os.readlink("/proc/self/fd/1") + "\\n").encode())']}))
  expect(result.stdout).toBe('kept\n/dev/null\n')
})

test('a program that cannot be executed fails at exec, saying why', async () => {
  const {launcher} = await openLauncher()
  const result = await collect(launcher.launch({...BASE, argv: ['/nonexistent/program']}))
  expect(result.code).toBe(127)
  expect(result.failure).toEqual({stage: 'exec', message: expect.stringMatching(/^\/nonexistent\/program: No such file or directory/)})
})

test('a run that cannot be set up fails at setup, naming the path (cgibox\'s fault, not the script\'s)', async () => {
  const {launcher} = await openLauncher()
  const result = await collect(launcher.launch({...BASE, cwd: '/nonexistent/dir'}))
  expect(result.failure).toEqual({stage: 'setup', message: expect.stringContaining('cannot enter /nonexistent/dir')})
  const cgroup = await collect(launcher.launch({...BASE, cgroups: ['/nonexistent/cgroup.procs']}))
  expect(cgroup.failure).toEqual({stage: 'setup', message: expect.stringContaining('cannot join cgroup /nonexistent/cgroup.procs')})
})

test('each run is its own process group and session', async () => {
  const {launcher} = await openLauncher()
  const result = await collect(launcher.launch({...BASE, argv: ['/bin/sh', '-c', 'ps -o pid=,pgid=,sid= -p $$']}))
  const [pid, pgid, sid] = result.stdout.trim().split(/\s+/).map(Number)
  expect(pgid).toBe(pid)
  expect(sid).toBe(pid)
})

test('orphans of runs are reaped by the launcher (no zombies)', async () => {
  const {launcher, socketDir} = await openLauncher()
  const pid = launcherPid(socketDir)
  await collect(launcher.launch({...BASE, argv: ['/bin/sh', '-c', '(sleep 0.2 &) ; exit 0']}))
  // The orphaned sleep was reparented to the launcher (a subreaper) and, once it exited, reaped there.
  await expect.poll(() => fs.readdirSync('/proc').some((entry) => {
    try {
      return fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').startsWith('sleep\0' + '0.2')
    } catch {
      return false
    }
  }), {timeout: 5_000}).toBe(false)
  expect(launcher.info.subreaper).toBe(true)
  await expect.poll(() => zombieChildrenOf(pid), {timeout: 5_000}).toEqual([])
})

test('closing the launcher kills what is left of its runs', async () => {
  const socketDir = await makeTempDir('launcher')
  const launcher = await startLauncher({socketDir})
  const run = launcher.launch({...BASE, argv: ['/bin/sh', '-c', 'sleep 300 & echo $!; wait']})
  run.stdin.end()
  const childPid = await new Promise<number>((resolve) => run.stdout.once('data', (chunk: Buffer) => resolve(Number(String(chunk).trim()))))
  await launcher.close()
  expect((await run.exit).signal).toBe('SIGKILL')
  await expect.poll(() => fs.existsSync(`/proc/${childPid}`), {timeout: 5_000}).toBe(false)
})

test('a launcher killed from outside is replaced, its runs reported killed', async () => {
  const {launcher, socketDir} = await openLauncher()
  const run = launcher.launch({...BASE, argv: ['/bin/sleep', '300']})
  run.stdin.end()
  await run.pid
  process.kill(launcherPid(socketDir), 'SIGKILL')
  expect((await run.exit).signal).toBe('SIGKILL')
  await expect.poll(() => launcher.info.restarts, {timeout: 5_000}).toBe(1)
  await expect.poll(async () => (await collect(launcher.launch({...BASE, argv: ['/bin/echo', 'again']}))).stdout, {timeout: 5_000}).toBe('again\n')
})

test('a python3 that cannot run the launcher is refused at start', async () => {
  const socketDir = await makeTempDir('launcher')
  await expect(startLauncher({socketDir, python: '/nonexistent/python3'})).rejects.toThrow(/launcher: \/nonexistent\/python3/)
})

test('the launcher holds nothing of the server environment', async () => {
  process.env.CGIBOX_LAUNCHER_SECRET = 'hunter2'
  onTestFinished(() => {
    delete process.env.CGIBOX_LAUNCHER_SECRET
  })
  const {launcher} = await openLauncher()
  // The launcher is the parent of every run: its environment is visible at /proc/<ppid>/environ to the server's uid.
  const result = await collect(launcher.launch({...BASE, argv: ['/bin/sh', '-c', 'tr "\\0" "\\n" < /proc/$PPID/environ']}))
  expect(result.stdout).not.toContain('hunter2')
  expect(result.stdout).toContain('PATH=')
})

describe('a stranger on the launcher socket (a script sharing cgibox\'s uid)', () => {
  // The socket of a launcher, found as an attacker with the same uid would.
  function socketOf(socketDir: string): string {
    const name = fs.readdirSync(socketDir).find((entry) => entry.endsWith('.sock'))
    if (name === undefined) throw new Error('no socket')
    return path.join(socketDir, name)
  }

  function send(socketPath: string, bytes: Buffer): Promise<void> {
    return new Promise((resolve) => {
      const socket = net.connect(socketPath, () => socket.write(bytes, () => {
        socket.destroy()
        resolve()
      }))
      socket.on('error', () => resolve())
    })
  }

  test('cannot start a run without the launcher secret', async () => {
    const {launcher, socketDir} = await openLauncher()
    const marker = path.join(await makeTempDir('stranger'), 'ran')
    const plan = Buffer.from(JSON.stringify({...BASE, argv: ['/bin/sh', '-c', `touch ${marker}`], id: 999, token: '00'.repeat(16)}))
    const header = Buffer.alloc(40)
    header.write('CGBR')
    header.writeUInt32BE(plan.length, 36)
    const socketPath = socketOf(socketDir)
    await send(socketPath, Buffer.concat([header, plan]))
    await send(socketPath, Buffer.concat([Buffer.from('CGBO'), Buffer.alloc(16)]))
    // The launcher still works for the server, and the stranger's plan never ran: once the launcher has no child
    // left (a run it had accepted would be one until its touch was done), there is no marker.
    expect((await collect(launcher.launch({...BASE, argv: ['/bin/echo', 'ok']}))).stdout).toBe('ok\n')
    const pid = launcherPid(socketDir)
    await expect.poll(() => fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim(), {timeout: 5_000}).toBe('')
    expect(fs.existsSync(marker)).toBe(false)
  })

  test('cannot take another run\'s stdout by registering guessed stdout streams first', async () => {
    const {launcher, socketDir} = await openLauncher()
    const socketPath = socketOf(socketDir)
    // Squat on stdout streams with guessable tokens (the old protocol used an incrementing id) and keep them open.
    const squatters = await Promise.all(Array.from({length: 50}, (_, index) => new Promise<net.Socket>((resolve) => {
      const token = Buffer.alloc(16)
      token.writeUInt32BE(index + 1, 12)
      const socket = net.connect(socketPath, () => {
        socket.write(Buffer.concat([Buffer.from('CGBO'), token]))
        resolve(socket)
      })
      socket.on('error', () => {})
    })))
    let stolen = ''
    for (const socket of squatters) socket.on('data', (chunk: Buffer) => { stolen += chunk })
    onTestFinished(() => {
      for (const socket of squatters) socket.destroy()
    })
    const results = await Promise.all(Array.from({length: 5}, (_, index) =>
      collect(launcher.launch({...BASE, argv: ['/bin/echo', `secret-${index}`]}))))
    expect(results.map((result) => result.stdout)).toEqual(Array.from({length: 5}, (_, index) => `secret-${index}\n`))
    expect(stolen).toBe('')
  })

  test('garbage on the socket does not kill the launcher', async () => {
    const {launcher, socketDir} = await openLauncher()
    const socketPath = socketOf(socketDir)
    await send(socketPath, Buffer.from('GET / HTTP/1.1\r\n\r\n'))
    await send(socketPath, Buffer.concat([Buffer.from('CGBR'), Buffer.alloc(32), Buffer.from([0xff, 0xff, 0xff, 0xff])]))
    await send(socketPath, Buffer.from('CG'))
    expect((await collect(launcher.launch({...BASE, argv: ['/bin/echo', 'alive']}))).stdout).toBe('alive\n')
    expect(launcher.info.restarts).toBe(0)
  })
})

describe('warm python', () => {
  // A script printing its parent's pid (the zygote, when warm) and python's str hash of a constant.
  async function warmPlan(): Promise<RunPlan> {
    const dir = await makeTempDir('warm')
    const script = path.join(dir, 'who.py')
    fs.writeFileSync(script, 'import os\nprint(os.getppid(), hash("cgibox"))\n')
    return {...BASE, argv: ['/usr/bin/python3', script], env: {PATH: '/usr/bin:/bin', LANG: 'C.UTF-8'},
      warm: {interpreter: '/usr/bin/python3', script, argv0: '/usr/bin/python3'}}
  }

  function zygotes(): number[] {
    return fs.readdirSync('/proc').filter((entry) => /^\d+$/.test(entry)).filter((entry) => {
      try {
        return fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('--zygote')
      } catch {
        return false
      }
    }).map(Number)
  }

  test('a zygote forks at most zygoteMaxForks runs, then a fresh one (a new hash seed) takes over and the old one exits', async () => {
    const socketDir = await makeTempDir('launcher')
    const launcher = await startLauncher({socketDir, zygoteMaxForks: 3})
    onTestFinished(() => launcher.close())
    const plan = await warmPlan()
    const results: {parent: string; hash: string; warm: boolean}[] = []
    // Runs go cold while a fresh zygote is still starting (slow on a loaded machine), so run until 7 were warm
    // (at least three zygotes' worth), within a bound.
    const warmCount = () => results.filter((result) => result.warm).length
    for (let run = 0; run < 60 && warmCount() < 7; run++) {
      const launched = launcher.launch(plan)
      const {stdout} = await collect(launched)
      const [parent, hash] = stdout.trim().split(' ')
      results.push({parent: parent!, hash: hash!, warm: (await launched.exit).warm})
    }
    const warm = results.filter((result) => result.warm)
    expect(warm.length).toBe(7)
    const generations = new Map<string, Set<string>>()
    for (const result of warm) generations.set(result.parent, (generations.get(result.parent) ?? new Set()).add(result.hash))
    expect(generations.size).toBeGreaterThanOrEqual(3) // at most 3 runs each
    for (const [, hashes] of generations) expect(hashes.size).toBe(1) // one seed per zygote…
    expect(new Set(warm.map((result) => result.hash)).size).toBe(generations.size) // …a new one per zygote
    for (const parent of generations.keys()) expect(warm.filter((result) => result.parent === parent).length).toBeLessThanOrEqual(3)
    // Retired zygotes exit once their runs have ended: only the current one is left.
    await expect.poll(() => zygotes().filter((pid) => generations.has(String(pid))).length, {timeout: 5_000}).toBeLessThanOrEqual(1)
  })
})
