// What each sandbox level costs per run: spawns /bin/true (or the command after --) through plain
// child_process.spawn, execa, and spawnScript at every level this machine offers, and prints median and p95
// milliseconds from spawn to the run being over (reaped, cgroup removed), then runs/s with 4 runs at a time.
// Usage: npm run build && node bench/spawn-levels.js [--runs 200] [--concurrency 4] [-- command args…]
import {spawn} from 'node:child_process'
import {parseArgs} from 'node:util'
import {execa} from 'execa'
import {normalizeConfig} from '../dist/config.js'
import {createSandbox} from '../dist/process/sandbox.js'
import {spawnScript} from '../dist/process/spawn-script.js'
import {createSpawner} from '../dist/process/spawner.js'

const {values, positionals} = parseArgs({
  options: {runs: {type: 'string', default: '200'}, concurrency: {type: 'string', default: '4'}},
  allowPositionals: true,
})
const RUNS = Number(values.runs)
const CONCURRENCY = Number(values.concurrency)
const ARGV = positionals.length > 0 ? positionals : ['/bin/true']
const ENV = {PATH: '/usr/local/bin:/usr/bin:/bin'}
const CWD = '/usr'

// One run through node:child_process: spawn with pipes, drain them, wait for the exit.
function runSpawn() {
  return new Promise((resolve, reject) => {
    const child = spawn(ARGV[0], ARGV.slice(1), {cwd: CWD, env: ENV, detached: true, stdio: ['pipe', 'pipe', 'pipe']})
    child.stdin.end()
    child.stdout.resume()
    child.stderr.resume()
    child.once('error', reject)
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`))))
  })
}

// One run through execa, streaming (no buffering), as the spawn module would use it.
async function runExeca() {
  const result = await execa(ARGV[0], ARGV.slice(1), {
    cwd: CWD, env: ENV, extendEnv: false, detached: true, cleanup: false, buffer: false, reject: false, stdin: 'pipe',
  })
  if (result.exitCode !== 0) throw new Error(`exit ${result.exitCode}`)
}

// One run through spawnScript in `sandbox`.
function runScript(sandbox, limits, spawner = null) {
  return async () => {
    const child = spawnScript({argv: ARGV, env: ENV, cwd: CWD, limits, sandbox, spawner})
    child.stdin.end()
    child.stdout.resume()
    child.stderr.resume()
    const status = await child.exited
    if (status.code !== 0) throw new Error(`exit ${status.code ?? status.signal}`)
  }
}

async function measure(name, runOnce) {
  for (let i = 0; i < 10; i++) await runOnce() // warm-up
  const times = []
  for (let i = 0; i < RUNS; i++) {
    const start = performance.now()
    await runOnce()
    times.push(performance.now() - start)
  }
  times.sort((a, b) => a - b)
  let next = 0
  const started = performance.now()
  await Promise.all(Array.from({length: CONCURRENCY}, async () => {
    while (next++ < RUNS) await runOnce()
  }))
  const perSecond = RUNS / ((performance.now() - started) / 1000)
  const quantile = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))].toFixed(2)
  console.log(`${name.padEnd(44)} median ${quantile(0.5).padStart(6)} ms   p95 ${quantile(0.95).padStart(6)} ms   ` +
    `${perSecond.toFixed(0).padStart(5)} runs/s at ${CONCURRENCY} concurrent`)
}

const levels = [
  ['none', {}],
  ['rlimit', {}],
  ['bwrap', {network: 'per-run'}],
  ['bwrap', {network: 'shared'}],
]
console.log(`${RUNS} sequential runs of ${ARGV.join(' ')}, then ${RUNS} with ${CONCURRENCY} at a time`)
await measure('child_process.spawn', runSpawn)
await measure('execa (buffer: false)', runExeca)
for (const [level, options] of levels) {
  const config = normalizeConfig({sandbox: level})
  let sandbox
  try {
    sandbox = await createSandbox(config, options)
  } catch (error) {
    console.log(`${level.padEnd(44)} unavailable: ${error.message}`)
    continue
  }
  const label = level === 'bwrap' ? `spawnScript bwrap (netns ${options.network === 'shared' && sandbox.describe().includes('shared') ? 'shared' : 'per run'})` : `spawnScript ${level}`
  const spawner = await createSpawner()
  try {
    await measure(`${label}, fork`, runScript(sandbox, config.limits))
    await measure(`${label}, spawner`, runScript(sandbox, config.limits, spawner))
  } finally {
    await spawner.close()
    await sandbox.close()
  }
}
