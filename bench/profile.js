// Where a request's CPU goes: starts the built cgibox with `node --cpu-prof` over the bench site, loads one URL with
// wrk -t2 -c16, and prints req/s, the CPU the server and the launcher spent per request (from /proc), the whole
// machine's busy CPU per request, and the server profile's top frames (self time, and cgibox's own functions by
// inclusive time). Self times of native calls are wall-clock samples: on a saturated machine they include time the
// thread was waiting for a CPU. Nothing here is asserted; this is how the profile in the README was taken.
// Usage: npm run build && node bench/profile.js [--sandbox none] [--path /cgi-bin/hello.sh] [--seconds 10]
//          [--cgibox <root with dist/>] [--top 12]
import {execFile, spawn} from 'node:child_process'
import fs from 'node:fs'
import {mkdtemp, readdir, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs, promisify} from 'node:util'

const {values} = parseArgs({
  options: {
    sandbox: {type: 'string', default: 'none'},
    path: {type: 'string', default: '/cgi-bin/hello.sh'},
    seconds: {type: 'string', default: '10'},
    cgibox: {type: 'string'},
    top: {type: 'string', default: '12'},
  },
})
const HERE = path.dirname(fileURLToPath(import.meta.url))
const ROOT = values.cgibox ?? path.resolve(HERE, '..')
const SITE = path.join(HERE, 'site')
const execFileAsync = promisify(execFile)
const TICK_MS = 10 // USER_HZ on Linux

// utime + stime of a process, in clock ticks.
function cpuTicks(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return Number(fields[11]) + Number(fields[12])
}

// Busy clock ticks of the whole machine (everything but idle and iowait).
function machineBusyTicks() {
  const fields = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].split(/\s+/).slice(1).map(Number)
  return fields.reduce((sum, value) => sum + value, 0) - fields[3] - fields[4]
}

function childrenOf(pid) {
  return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
}

// Starts the CLI under --cpu-prof; resolves with {child, url} once it prints its address.
function startProfiled(profileDir) {
  const child = spawn(process.execPath, ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, path.join(ROOT, 'dist', 'cli.js'),
    '--host', '127.0.0.1', '--port', '0', '--access-log', 'off', '--sandbox', values.sandbox,
    '--htdocs', path.join(SITE, 'htdocs'), '--cgi-bin', path.join(SITE, 'cgi-bin')],
  {env: {PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8', HOME: profileDir}, stdio: ['ignore', 'pipe', 'ignore']})
  return new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (chunk) => {
      out += chunk
      const match = /listening on (http:\/\/\S+?)\/?\s/.exec(out)
      if (match) resolve({child, url: match[1]})
    })
    child.once('exit', (code) => reject(new Error(`cgibox exited with ${code}: ${out}`)))
  })
}

// Self time per frame, and inclusive time per cgibox function (each counted once per sample).
function summarize(profile) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parentOf = new Map()
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id)
  const label = ({callFrame: frame}) =>
    `${frame.functionName || '(anonymous)'} ${frame.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${frame.lineNumber + 1}`
  const self = new Map()
  const inclusive = new Map()
  let total = 0
  profile.samples.forEach((id, index) => {
    const micros = profile.timeDeltas[index] ?? 0
    total += micros
    const key = label(byId.get(id))
    self.set(key, (self.get(key) ?? 0) + micros)
    const seen = new Set()
    for (let current = id; current !== undefined; current = parentOf.get(current)) {
      const name = label(byId.get(current))
      if (!name.includes('dist/') || seen.has(name)) continue
      seen.add(name)
      inclusive.set(name, (inclusive.get(name) ?? 0) + micros)
    }
  })
  const top = (map) => [...map].sort((a, b) => b[1] - a[1]).slice(0, Number(values.top))
    .map(([name, micros]) => `${(100 * micros / total).toFixed(1).padStart(5)}%  ${name}`)
  return {self: top(self), inclusive: top(inclusive)}
}

const profileDir = await mkdtemp(path.join(tmpdir(), 'cgibox-profile-'))
try {
  const {child, url} = await startProfiled(profileDir)
  for (let warm = 0; warm < 3; warm++) await fetch(url + values.path).then((response) => response.arrayBuffer())
  const helpers = childrenOf(child.pid)
  const helperNames = helpers.map((pid) => fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, 4).join(' '))
  const before = {server: cpuTicks(child.pid), helpers: helpers.map(cpuTicks), machine: machineBusyTicks()}
  const {stdout} = await execFileAsync('wrk', ['-t2', '-c16', `-d${values.seconds}s`, '--timeout', '10s', url + values.path],
    {encoding: 'utf8'})
  const after = {server: cpuTicks(child.pid), helpers: helpers.map(cpuTicks), machine: machineBusyTicks()}
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1] ?? 0)
  const perRequest = (ticks) => requests > 0 ? `${(ticks * TICK_MS / requests).toFixed(2)} ms` : '-'
  await new Promise((resolve) => {
    child.once('exit', resolve)
    child.kill('SIGTERM')
  })
  const file = (await readdir(profileDir)).find((name) => name.endsWith('.cpuprofile'))
  if (file === undefined) throw new Error('cgibox wrote no profile')
  const {self, inclusive} = summarize(JSON.parse(await readFile(path.join(profileDir, file), 'utf8')))
  console.log(`cgibox ${ROOT}, sandbox ${values.sandbox}, ${values.path}, wrk -t2 -c16 -d${values.seconds}s, node ${process.version}`)
  console.log(`${/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? '?'} req/s (${requests} requests)`)
  console.log(`CPU per request: server ${perRequest(after.server - before.server)}, machine busy ${perRequest(after.machine - before.machine)}`)
  helpers.forEach((_pid, index) => {
    console.log(`  ${helperNames[index]}: ${perRequest(after.helpers[index] - before.helpers[index])}`)
  })
  console.log('\nserver profile, self time:')
  for (const line of self) console.log(line)
  console.log('\ncgibox functions, inclusive time:')
  for (const line of inclusive) console.log(line)
} finally {
  await rm(profileDir, {recursive: true, force: true})
}
