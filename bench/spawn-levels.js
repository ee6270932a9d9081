// What each sandbox level costs per run: /bin/true (or the command after --) planned and started through the
// launcher at every level this machine offers, timed until the run is over (reaped, cgroup and temp dir removed):
// the median and p95 of sequential runs, then runs/s with several at a time. child_process.spawn alone is the floor.
// Usage: npm run build && node bench/spawn-levels.js [--runs 200] [--concurrency 4] [-- command args…]
import {spawn} from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {parseArgs} from 'node:util'
import {normalizeConfig} from '../dist/config.js'
import {startLauncher} from '../dist/process/launcher.js'
import {startRun} from '../dist/process/run.js'
import {createRuntimeDir} from '../dist/process/runtime-dir.js'
import {createSandbox} from '../dist/process/sandbox.js'
import {interruptSignal} from './interrupt.js'
import {makeTempDir} from './temp-dir.js'

const {values, positionals} = parseArgs({
  options: {runs: {type: 'string', default: '200'}, concurrency: {type: 'string', default: '4'}},
  allowPositionals: true,
})
const RUNS = Number(values.runs)
const CONCURRENCY = Number(values.concurrency)
const WARM_UP_RUNS = 10
const ARGV = positionals.length > 0 ? positionals : ['/bin/true']
const ENV = {PATH: '/usr/local/bin:/usr/bin:/bin'}
const CWD = '/usr'
const LEVELS = ['none', 'rlimit', 'bwrap']

const signal = interruptSignal()
const base = makeTempDir('cgibox-bench-spawn-')
try {
  console.log(`${RUNS} sequential runs of ${ARGV.join(' ')}, then ${RUNS} with ${CONCURRENCY} at a time`)
  console.log('| path | median ms | p95 ms | runs/s |')
  console.log('| --- | --- | --- | --- |')
  await measure('child_process.spawn alone', runSpawn)
  for (const level of LEVELS) await measureLevel(level)
} catch (error) {
  if (!signal.aborted) throw error
} finally {
  fs.rmSync(base, {recursive: true, force: true})
}

// One level as a server has it: a run-time directory, a launcher and the sandbox; closed again after.
async function measureLevel(level) {
  const config = normalizeConfig({sandbox: level, runtimeDir: path.join(base, level)})
  const runtime = createRuntimeDir(config.runtimeDir)
  let launcher = null
  let sandbox = null
  try {
    launcher = await startLauncher({socketDir: runtime.launcherDir})
    sandbox = await createSandbox(config, {launcher, runtime})
  } catch (error) {
    console.log(`| ${level} | unavailable: ${error.message} | | |`)
  }
  try {
    if (sandbox !== null) await measure(level, () => runThroughLauncher(launcher, sandbox, config.limits))
  } finally {
    await sandbox?.close()
    await launcher?.close()
    runtime.remove()
  }
}

// One run: planned, launched, its output drained, until run.finished (everything of it gone).
async function runThroughLauncher(launcher, sandbox, limits) {
  const planned = sandbox.plan({argv: ARGV, env: ENV, cwd: CWD, limits, location: null, readPaths: []})
  const run = startRun(launcher, planned, {limits, body: null})
  run.stdout.on('error', () => {}).resume()
  const outcome = await run.finished
  if (outcome.code !== 0) throw new Error(`exit ${outcome.code ?? outcome.signal}: ${outcome.failure?.message ?? outcome.stderr}`)
}

// One run through node:child_process: spawn with pipes, drain them, until they are closed.
function runSpawn() {
  return new Promise((resolve, reject) => {
    const child = spawn(ARGV[0], ARGV.slice(1), {cwd: CWD, env: ENV, detached: true, stdio: ['ignore', 'pipe', 'pipe']})
    child.stdout.resume()
    child.stderr.resume()
    child.once('error', reject)
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`))))
  })
}

// Prints the median and p95 of RUNS sequential runs and the rate of RUNS runs CONCURRENCY at a time.
async function measure(name, runOnce) {
  for (let i = 0; i < WARM_UP_RUNS; i++) await runOnce()
  const times = []
  for (let i = 0; i < RUNS; i++) {
    signal.throwIfAborted()
    const start = performance.now()
    await runOnce()
    times.push(performance.now() - start)
  }
  times.sort((a, b) => a - b)
  let next = 0
  const started = performance.now()
  await Promise.all(Array.from({length: CONCURRENCY}, async () => {
    while (next++ < RUNS && !signal.aborted) await runOnce()
  }))
  signal.throwIfAborted()
  const perSecond = RUNS / ((performance.now() - started) / 1000)
  const quantile = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))].toFixed(2)
  console.log(`| ${name} | ${quantile(0.5)} | ${quantile(0.95)} | ${perSecond.toFixed(0)} (${CONCURRENCY} at a time) |`)
}
