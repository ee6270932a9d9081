// `npm run bench`: cgibox at each sandbox level beside the peers found on this machine (Apache mod_cgid, lighttpd
// mod_cgi, Python's http.server), all serving bench/site on loopback, measured in one run and printed as ratios to
// the goals of issue 9; then the per-level spawn cost (spawn-levels.js) and the .ts page timings (ts-pages.js).
// Env: BENCH_SECONDS (wrk duration, default 5), BENCH_ROUNDS (best of, default 2), BENCH_LEVELS (default
// none,rlimit,bwrap). Nothing is asserted; figures from different runs on a shared machine are not comparable.
import {spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {startCgibox} from './cgibox.js'
import {interruptSignal} from './interrupt.js'
import {CLEAN_PATH, PEERS, startPeer} from './peers.js'
import {printTable, SANDBOX_LEVELS, STREAM, WORKLOADS} from './report.js'
import {fetchSeconds, scriptSeconds} from './stream.js'
import {makeTempDir} from './temp-dir.js'
import {hasWrk, requestsPerSecond} from './wrk.js'

const BENCH = path.dirname(fileURLToPath(import.meta.url))
const SITE = path.join(BENCH, 'site')
const SECONDS = positiveInteger('BENCH_SECONDS', 5)
const ROUNDS = positiveInteger('BENCH_ROUNDS', 2)
const CONNECTIONS = 16
const STREAM_TRIES = 3
const LEVELS = (process.env.BENCH_LEVELS ?? SANDBOX_LEVELS.join(',')).split(',')
// One cgibox server per variant, its config file generated from `config`: each level as configured by default (warm
// Python on; bwrap runs are always exec'd), and none/rlimit with warm Python off for the cold figures.
const VARIANTS = LEVELS.flatMap((level) => [
  {name: `cgibox-${level}`, label: `cgibox ${level}`, level, config: {sandbox: level}},
  ...level === 'bwrap' ? [] : [{name: `cgibox-${level}-cold`, label: `cgibox ${level}, warmPython off`, level, config: {sandbox: level, warmPython: false}}],
])

const signal = interruptSignal()
if (!hasWrk()) {
  console.error('bench: wrk is not installed (Debian: apt-get install -y wrk)')
  process.exit(1)
}
console.log(`cgibox bench: wrk -t2 -c${CONNECTIONS} -d${SECONDS}s, best of ${ROUNDS} round${ROUNDS === 1 ? '' : 's'} (hosts interleaved), ` +
  `stream best of ${STREAM_TRIES}; node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg().map((n) => n.toFixed(2)).join(' ')}`)

const rows = await measureHosts()
if (rows !== null) printTable(rows)
for (const script of ['spawn-levels.js', 'ts-pages.js', 'static-files.js']) {
  if (signal.aborted) break
  console.log(`\n# bench/${script}`)
  await runScript(script)
}

// Starts every host, measures them, stops them; null when interrupted.
async function measureHosts() {
  const runDir = makeTempDir('cgibox-bench-')
  const bigFile = path.join(SITE, 'htdocs', '1m.bin')
  fs.writeFileSync(bigFile, randomBytes(1024 * 1024), {mode: 0o644})
  const hosts = []
  try {
    for (const [start, specs] of [[startPeer, PEERS], [startCgibox, VARIANTS]]) {
      for (const spec of specs) {
        try {
          const host = await start(spec, {site: SITE, runDir, signal})
          hosts.push({...host, level: spec.level ?? null})
          if (host.sandbox) console.log(`${host.label}: ${host.sandbox}`)
        } catch (error) {
          signal.throwIfAborted()
          console.log(`skipped ${spec.label}: ${error.message}`)
        }
      }
    }
    const rps = await measureRequestsPerSecond(hosts)
    const streams = await measureStreams(hosts)
    return [
      ...hosts.map((host) => ({name: host.name, label: host.label, level: host.level, rps: rps.get(host), stream: streams.get(host)})),
      {name: 'script', label: `the script alone (${STREAM.script} > /dev/null)`, level: null, stream: streams.get('script')},
    ]
  } catch (error) {
    if (signal.aborted) return null
    throw error
  } finally {
    for (const host of [...hosts].reverse()) await host.stop()
    fs.rmSync(bigFile, {force: true})
    fs.rmSync(runDir, {recursive: true, force: true})
  }
}

// Best req/s of every host on every workload over ROUNDS rounds; within a round every host takes its turn on a
// workload before the next, so drift on a busy machine hits them alike.
async function measureRequestsPerSecond(hosts) {
  const best = new Map(hosts.map((host) => [host, {}]))
  for (let round = 1; round <= ROUNDS; round++) {
    for (const {path: urlPath} of WORKLOADS) {
      for (const host of hosts) {
        const result = await attempt(() => requestsPerSecond(host.url + urlPath, {seconds: SECONDS, connections: CONNECTIONS, signal}))
        const results = best.get(host)
        const previous = results[urlPath]
        results[urlPath] = {
          rps: Math.max(previous?.rps ?? 0, result.rps ?? 0),
          errors: [previous?.errors, result.errors, result.failed && `failed: ${result.failed}`].filter(Boolean).join('; '),
        }
      }
    }
  }
  return best
}

// Fastest of STREAM_TRIES full reads of the stream from every host, and of the script run directly, interleaved.
async function measureStreams(hosts) {
  const best = new Map()
  const keep = (key, result) => {
    const previous = best.get(key)
    const faster = result.failed === undefined && !(previous?.seconds <= result.seconds)
    if (previous === undefined || faster) best.set(key, result) // a failure stays only until a success
  }
  const cgiBin = path.join(SITE, 'cgi-bin')
  for (let i = 0; i < STREAM_TRIES; i++) {
    keep('script', await attempt(() => scriptSeconds(path.join(cgiBin, STREAM.script), {cwd: cgiBin, env: {PATH: CLEAN_PATH}, signal})))
    for (const host of hosts) keep(host, await attempt(() => fetchSeconds(host.url + STREAM.path, signal)))
  }
  return best
}

// A host that fails a measurement gets {failed: message} for it; the others are still measured.
async function attempt(measure) {
  try {
    return await measure()
  } catch (error) {
    signal.throwIfAborted()
    return {failed: error.message}
  }
}

// Runs another bench script with this one's output. Ctrl-C reaches it directly; SIGTERM is passed on.
function runScript(script) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(BENCH, script)], {stdio: 'inherit'})
    const stop = () => child.kill('SIGTERM')
    signal.addEventListener('abort', stop, {once: true})
    child.once('exit', (code, childSignal) => {
      signal.removeEventListener('abort', stop)
      if (code !== 0 && !signal.aborted) console.log(`bench/${script} failed (${childSignal ?? `exit ${code}`})`)
      resolve()
    })
  })
}

function positiveInteger(name, fallback) {
  const value = process.env[name] ?? String(fallback)
  if (!/^[1-9]\d*$/.test(value)) throw new TypeError(`Expected \`${name}\` to be a positive integer, got \`${value}\``)
  return Number(value)
}
