// The spawner helper (spawner.py behind spawner.ts): a real python3 process forking real runs.
import {expect, onTestFinished, test} from 'vitest'
import {createSpawner, type SpawnedRun, type Spawner, type SpawnerRequest} from '../../src/process/spawner.js'

async function startSpawner(): Promise<Spawner> {
  const spawner = await createSpawner()
  onTestFinished(() => spawner.close())
  return spawner
}

const BASE: SpawnerRequest = {
  argv: ['/bin/sh', '-c', 'true'], env: {PATH: '/usr/bin:/bin'}, cwd: '/', uid: undefined, gid: undefined,
  cgroups: [], rlimits: {}, stdoutFd: 1,
}

// Runs to its end and collects what it wrote and how it exited.
function collect(run: SpawnedRun, input = ''): Promise<{stdout: string; stderr: string; code: number | null; signal: string | null}> {
  return new Promise((resolve, reject) => {
    let stdout = ''
    let stderr = ''
    let exit: {code: number | null; signal: string | null} | null = null
    let open = 2
    const done = () => {
      if (exit && open === 0) resolve({stdout, stderr, ...exit})
    }
    run.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk
    })
    run.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk
    })
    run.stdout.on('close', () => {
      open--
      done()
    })
    run.stderr.on('close', () => {
      open--
      done()
    })
    run.once('exit', (code: number | null, signal: string | null) => {
      exit = {code, signal}
      done()
    })
    run.once('error', reject)
    run.stdin.end(input)
  })
}

test('a run gets its stdin, writes stdout and stderr, runs in its cwd with exactly its env, and exits with its code', async () => {
  const spawner = await startSpawner()
  const run = spawner.spawn({...BASE, cwd: '/usr', env: {PATH: '/usr/bin:/bin', ONLY: 'this'},
    argv: ['/bin/sh', '-c', 'cat; pwd; env | sort; echo oops >&2; exit 3']})
  const result = await collect(run, 'hello\n')
  expect(result.stdout).toBe('hello\n/usr\nONLY=this\nPATH=/usr/bin:/bin\nPWD=/usr\n')
  expect(result.stderr).toBe('oops\n')
  expect(result.code).toBe(3)
  expect(run.pid).toBeGreaterThan(0)
})

test('a run killed by a signal reports it', async () => {
  const spawner = await startSpawner()
  const result = await collect(spawner.spawn({...BASE, argv: ['/bin/sh', '-c', 'kill -TERM $$']}))
  expect(result).toMatchObject({code: null, signal: 'SIGTERM'})
})

// Only root can switch to another uid.
test.skipIf(process.getuid?.() !== 0)('rlimits and the identity are applied before exec', async () => {
  const spawner = await startSpawner()
  const result = await collect(spawner.spawn({...BASE, uid: 65534, gid: 65534, rlimits: {nofile: {soft: 77, hard: 77}},
    argv: ['/bin/sh', '-c', 'id -u; id -G; ulimit -n']}))
  expect(result.stdout).toBe('65534\n65534\n77\n')
})

test('stdoutFd 3 puts the stdout socket on fd 3 and /dev/null on fd 1', async () => {
  const spawner = await startSpawner()
  const result = await collect(spawner.spawn({...BASE, stdoutFd: 3, argv: ['/bin/sh', '-c', 'echo lost; echo kept >&3']}))
  expect(result.stdout).toBe('kept\n')
})

test('a program that cannot be executed exits 127 and says why on its stderr', async () => {
  const spawner = await startSpawner()
  const result = await collect(spawner.spawn({...BASE, argv: ['/nonexistent/program']}))
  expect(result.code).toBe(127)
  expect(result.stderr).toContain('/nonexistent/program')
})

test('each run is its own process group and session', async () => {
  const spawner = await startSpawner()
  const run = spawner.spawn({...BASE, argv: ['/bin/sh', '-c', 'ps -o pid=,pgid=,sid= -p $$']})
  const result = await collect(run)
  const [pid, pgid, sid] = result.stdout.trim().split(/\s+/).map(Number)
  expect(pgid).toBe(pid)
  expect(sid).toBe(pid)
})

test('closing the spawner kills what is left of its runs', async () => {
  const spawner = await createSpawner()
  const run = spawner.spawn({...BASE, argv: ['/bin/sh', '-c', 'sleep 300 & echo $!; wait']})
  run.stdin.end()
  const childPid = await new Promise<number>((resolve) => run.stdout.once('data', (chunk: Buffer) => resolve(Number(String(chunk).trim()))))
  const exited = new Promise((resolve) => run.once('exit', resolve))
  await spawner.close()
  await exited
  await expect.poll(() => {
    try {
      process.kill(childPid, 0)
      return true
    } catch {
      return false
    }
  }, {timeout: 5_000}).toBe(false)
  expect(spawner.alive).toBe(false)
})

test('a python3 that cannot run the spawner is refused at creation', async () => {
  await expect(createSpawner('/nonexistent/python3')).rejects.toThrow()
})

test('the helper itself holds nothing of the server environment', async () => {
  process.env.CGIBOX_SPAWNER_SECRET = 'hunter2'
  onTestFinished(() => {
    delete process.env.CGIBOX_SPAWNER_SECRET
  })
  const spawner = await startSpawner()
  // The helper is the parent of every run: its environment is visible at /proc/<ppid>/environ to the server's uid.
  const result = await collect(spawner.spawn({...BASE, argv: ['/bin/sh', '-c', 'tr "\\0" "\\n" < /proc/$PPID/environ']}))
  expect(result.stdout).not.toContain('hunter2')
  expect(result.stdout).toContain('PATH=')
})
