// The startup side of the sandbox: level choice and its failures, mount requirements, the cgroup-less rlimit
// fallback, cleanup of what a dead server left behind, and the uid pool.
import {spawn} from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {afterEach, describe, expect, onTestFinished, test} from 'vitest'
import {findOwnCgroupDir} from '../../src/process/cgroup.js'
import {createUidPool, validateUidPoolIsUnused} from '../../src/process/uid-pool.js'
import {
  IS_ROOT, TEST_LIMITS, instanceCgroupDirs, killMarked, liveRunCgroups, newMarker, openSandbox, processesWithMarker,
  startRun, type Box,
} from './run-helpers.js'

const probe = await openSandbox('auto')
const BWRAP_WORKS = probe.level === 'bwrap'
await probe.close()
const CGROUPS_WRITABLE = IS_ROOT && findOwnCgroupDir('pids') !== null

afterEach(() => {
  expect(liveRunCgroups()).toEqual([])
})

// Opens a sandbox that is closed when the test finishes.
async function sandboxFor(...args: Parameters<typeof openSandbox>): Promise<Box> {
  const sandbox = await openSandbox(...args)
  onTestFinished(() => sandbox.close())
  return sandbox
}

function requiring(level: 'none' | 'rlimit' | 'bwrap') {
  return {locations: [{prefix: '/git/', program: '/usr/bin/true', requireSandbox: level}]}
}

describe('choosing the level', () => {
  test.skipIf(!BWRAP_WORKS)('auto picks bwrap when a real bwrap run works', async () => {
    const sandbox = await sandboxFor('auto')
    expect(sandbox.level).toBe('bwrap')
    expect(sandbox.bwrapUnavailableReason).toBeNull()
    expect(sandbox.describe()).toMatch(/^sandbox: bwrap \(.*no network.*\)$/)
    expect(sandbox.describe()).not.toContain('\n')
  })

  test('auto falls back to rlimit and says why when bwrap does not work', async () => {
    const sandbox = await sandboxFor('auto', {bwrapPath: '/nonexistent/bwrap'})
    expect(sandbox.level).toBe('rlimit')
    expect(sandbox.bwrapUnavailableReason).toContain('/nonexistent/bwrap')
    expect(sandbox.describe()).toContain('bwrap unavailable')
  })

  test('a bwrap run that fails makes auto fall back too', async () => {
    const sandbox = await sandboxFor('auto', {bwrapPath: '/bin/false'})
    expect(sandbox.level).toBe('rlimit')
    expect(sandbox.bwrapUnavailableReason).not.toBeNull()
  })

  test('bwrap requested but unavailable refuses to start with the reason', async () => {
    await expect(openSandbox('bwrap', {bwrapPath: '/nonexistent/bwrap'})).rejects.toThrow(/bwrap was requested.*not installed/)
    // Nothing of the failed attempt is left behind.
    expect(instanceCgroupDirs()).toEqual([])
  })

  test('none is described as for trusted scripts only', async () => {
    const sandbox = await sandboxFor('none')
    expect(sandbox.level).toBe('none')
    expect(sandbox.describe()).toMatch(/^sandbox: none \(.*trusted scripts only.*\)$/)
  })

  test.skipIf(!IS_ROOT)('a uid pool that overlaps an existing user refuses to start', async () => {
    await expect(openSandbox('rlimit', {}, {uidPoolStart: 1, uidPoolSize: 65_534})).rejects.toThrow(/uid pool 1-65534 contains uid/)
  })
})

describe('location requirements and levels', () => {
  test('a location requiring a stronger level than it gets is refused at startup', async () => {
    await expect(openSandbox('auto', {bwrapPath: '/nonexistent/bwrap'}, requiring('bwrap')))
      .rejects.toThrow(/location \/git\/ requires sandbox level bwrap, but its level is rlimit \(bwrap is unavailable: /)
    expect(instanceCgroupDirs()).toEqual([])
  })

  test('a location requiring its level or a weaker one is accepted', async () => {
    await sandboxFor('rlimit', {}, requiring('rlimit'))
    await sandboxFor('rlimit', {}, requiring('none'))
  })

  test('a location with a level of its own gets it; the others the server level', async () => {
    const box = await sandboxFor('rlimit', {}, {locations: [{prefix: '/trusted/', sandbox: 'none'}, {prefix: '/other/'}]})
    const [trusted, other] = (await import('../../src/config.js')).normalizeConfig({
      locations: [{prefix: '/trusted/', sandbox: 'none'}, {prefix: '/other/'}],
    }).locations
    expect(box.sandbox.levelOf(trusted!)).toBe('none')
    expect(box.sandbox.levelOf(other!)).toBe('rlimit')
    expect(box.sandbox.levelOf(null)).toBe('rlimit')
    expect(box.sandbox.describe('none')).toMatch(/^sandbox: none /)
  })

  test('a location asking for bwrap where it cannot run is refused, naming the location', async () => {
    await expect(openSandbox('rlimit', {bwrapPath: '/nonexistent/bwrap'}, {locations: [{prefix: '/demo/', sandbox: 'bwrap'}]}))
      .rejects.toThrow(/location \/demo\/ asks for bwrap but it cannot run here: bwrap is not installed/)
  })

  test.skipIf(!IS_ROOT)('a location user that does not exist is refused at startup', async () => {
    await expect(openSandbox('rlimit', {}, {locations: [{prefix: '/a/', user: 'cgibox-no-such-user'}]}))
      .rejects.toThrow(/user "cgibox-no-such-user" \(option `locations\[0\].user`\) does not exist/)
  })
})

describe.skipIf(!IS_ROOT)('rlimit without cgroups (per-run uid, RLIMIT_DATA, RLIMIT_NPROC)', () => {
  test('a double-forked daemon dies with its run (sweep of the run\'s uid)', async () => {
    const sandbox = await sandboxFor('rlimit', {cgroups: false})
    expect(sandbox.describe()).toContain('no cgroups')
    const marker = newMarker()
    onTestFinished(() => killMarked(marker))
    const {stdout} = await startRun(sandbox, ['/bin/sh', './daemon.sh', marker]).finished()
    expect(stdout).toContain('started')
    await expect.poll(() => processesWithMarker(marker), {timeout: 5_000}).toEqual([])
  })

  test('a python memory bomb gets MemoryError while node and python still start', async () => {
    const sandbox = await sandboxFor('rlimit', {cgroups: false})
    const bomb = await startRun(sandbox, ['python3', './memory-bomb.py']).finished()
    expect(bomb.stderr).toContain('MemoryError')
    expect(bomb.status.code).toBe(1)
    expect((await startRun(sandbox, ['node', '-e', 'console.log(1)']).finished()).stdout).toBe('1\n')
    expect((await startRun(sandbox, ['python3', '-c', 'print(1)']).finished()).stdout).toBe('1\n')
  })

  test('a fork bomb stays under the process limit of its own uid', async () => {
    const sandbox = await sandboxFor('rlimit', {cgroups: false})
    const marker = newMarker()
    onTestFinished(() => killMarked(marker))
    const bomb = startRun(sandbox, ['python3', './fork-bomb.py', marker])
    await bomb.waitForOutput('bombing')
    let largest = 0
    await expect.poll(() => {
      largest = Math.max(largest, processesWithMarker(marker).length)
      return largest
    }, {timeout: 10_000}).toBeGreaterThanOrEqual(TEST_LIMITS.maxProcesses! - 2)
    expect(largest).toBeLessThanOrEqual(TEST_LIMITS.maxProcesses!)
    expect((await startRun(sandbox, ['/bin/sh', '-c', 'echo still-working']).finished()).stdout).toBe('still-working\n')
    bomb.child.kill('deadline')
    await bomb.finished()
    await expect.poll(() => processesWithMarker(marker), {timeout: 5_000}).toEqual([])
  })
})

describe.skipIf(!CGROUPS_WRITABLE)('cgroups', () => {
  test('startup removes the cgroups of a dead server and kills what ran in them', async () => {
    const deadPid = await pidOfExitedProcess()
    const pidNamespace = fs.statSync('/proc/self/ns/pid').ino
    const stale = path.join(findOwnCgroupDir('pids')!, `cgibox-${pidNamespace}-${deadPid}-deadbeef`)
    fs.mkdirSync(path.join(stale, 'run-1'), {recursive: true})
    const marker = newMarker()
    onTestFinished(() => {
      killMarked(marker)
      for (const dir of [path.join(stale, 'run-1'), stale]) fs.rmSync(dir, {force: true, recursive: false})
    })
    // The marker rides in python's argv (sleep would refuse it as a second interval).
    const orphan = spawn('/bin/sh', ['-c', `echo $$ > ${stale}/run-1/cgroup.procs && exec python3 -c "import time; time.sleep(300)" ${marker}`],
      {detached: true, stdio: 'ignore'})
    orphan.unref()
    await expect.poll(() => processesWithMarker(marker).length, {timeout: 5_000}).toBe(1)
    await sandboxFor('rlimit')
    expect(fs.existsSync(stale)).toBe(false)
    await expect.poll(() => processesWithMarker(marker), {timeout: 5_000}).toEqual([])
  })

  test('close removes the instance cgroups', async () => {
    const sandbox = await openSandbox('rlimit')
    expect(instanceCgroupDirs().length).toBeGreaterThan(0)
    await startRun(sandbox, ['/bin/true']).finished()
    await sandbox.close()
    expect(instanceCgroupDirs()).toEqual([])
  })
})

describe('uid pool', () => {
  test('hands out distinct uids, reuses released ones, and throws when exhausted', () => {
    const pool = createUidPool(70_000, 3)
    const taken = [pool.acquire(), pool.acquire(), pool.acquire()]
    expect(new Set(taken).size).toBe(3)
    for (const uid of taken) expect(uid >= 70_000 && uid < 70_003).toBe(true)
    expect(() => pool.acquire()).toThrow(/all 3 uids of the pool 70000-70002 are in use/)
    pool.release(taken[1]!)
    expect(pool.acquire()).toBe(taken[1])
    for (const uid of taken) pool.release(uid)
  })

  test.each([
    [[['www', 61_010]], true],
    [[['www', 60_999], ['other', 62_000]], false],
  ] as const)('validateUidPoolIsUnused(61000, 1000) with users %j throws: %s', (users, throws) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cgibox-passwd-'))
    onTestFinished(() => fs.rmSync(dir, {recursive: true, force: true}))
    const file = path.join(dir, 'passwd')
    fs.writeFileSync(file, users.map(([name, uid]) => `${name}:x:${uid}:${uid}::/:/bin/false\n`).join(''))
    const check = () => validateUidPoolIsUnused(61_000, 1_000, file)
    if (throws) expect(check).toThrow(/contains uid 61010 of user "www"/)
    else expect(check).not.toThrow()
  })
})

// A pid that belonged to a process that has exited (a dead server's pid).
async function pidOfExitedProcess(): Promise<number> {
  const child = spawn('/bin/true', {stdio: 'ignore'})
  await new Promise((resolve) => child.once('exit', resolve))
  return child.pid!
}
