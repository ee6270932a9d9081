// `npm run bench`: starts the built cgibox on loopback and measures what DESIGN.md's performance table measures:
// hello.sh and hello.py req/s, a small static file req/s (wrk -t2 -c16 when installed, else a Node client),
// and the time to stream 78 888 897 bytes from a script. Then the per-spawn cost of each sandbox level and the
// .ts page timings, from their own scripts. Prints tables; nothing here is asserted.
import {execFile, spawn, spawnSync} from 'node:child_process'
import {promisify} from 'node:util'
import http from 'node:http'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16)
// level[:spawner]; the spawner defaults to the helper process.
const LEVELS = (process.env.BENCH_LEVELS ?? 'none:fork,none,rlimit,bwrap').split(',')

const hasWrk = spawnSync('wrk', ['--version']).error === undefined
const execFileAsync = promisify(execFile)

// Starts `node dist/cli.js` on a free port with the given extra flags; resolves with {url, stop}.
function startCgibox(flags) {
  return new Promise((resolve, reject) => {
    // stderr (the run log) is not read: a pipe nobody drains would block the server once it is full.
    const child = spawn(process.execPath, ['dist/cli.js', '--port', '0', '--access-log', 'off', ...flags], {
      cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore'],
    })
    let out = ''
    child.stdout.on('data', (chunk) => {
      out += chunk
      const match = /http:\/\/[^\s]+\//.exec(out)
      if (match) resolve({url: match[0], stop: () => new Promise((done) => {
        child.once('exit', done)
        child.kill('SIGTERM')
      })})
    })
    child.once('exit', (code) => reject(new Error(`cgibox exited with ${code}: ${out}`)))
  })
}

// Requests per second on one URL over SECONDS with CONNECTIONS keep-alive connections.
async function requestsPerSecond(url) {
  if (hasWrk) {
    // Not spawnSync: this process must keep reading the server's stdout while wrk runs.
    const result = await execFileAsync('wrk', ['-t2', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--timeout', '10s', url], {encoding: 'utf8'})
    const rps = /Requests\/sec:\s+([\d.]+)/.exec(result.stdout)
    const errors = /Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)/.exec(result.stdout)
    return {rps: rps ? Math.round(Number(rps[1])) : 0, errors: errors ? errors[0] : ''}
  }
  const agent = new http.Agent({keepAlive: true, maxSockets: CONNECTIONS})
  const end = Date.now() + SECONDS * 1000
  let done = 0
  let errors = 0
  const worker = async () => {
    while (Date.now() < end) {
      const status = await new Promise((resolve) => {
        http.get(url, {agent}, (response) => {
          response.resume()
          response.on('end', () => resolve(response.statusCode))
        }).on('error', () => resolve(0))
      })
      if (status === 200) done++
      else errors++
    }
  }
  await Promise.all(Array.from({length: CONNECTIONS}, worker))
  agent.destroy()
  return {rps: Math.round(done / SECONDS), errors: errors ? `${errors} errors` : ''}
}

// Seconds to receive the 78 888 897-byte stream of big.py.
function streamSeconds(url) {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    http.get(url, (response) => {
      let bytes = 0
      response.on('data', (chunk) => {
        bytes += chunk.length
      })
      response.on('end', () => resolve({seconds: (performance.now() - started) / 1000, bytes}))
    }).on('error', reject)
  })
}

const rows = []
for (const variant of LEVELS) {
  const [sandbox, spawner = 'helper'] = variant.split(':')
  const level = `${sandbox} (${spawner})`
  let server
  try {
    server = await startCgibox(['--sandbox', sandbox, '--spawner', spawner, '--cgi-bin', 'bench/site/cgi-bin', '--htdocs', 'bench/site/htdocs', '--max-concurrent', '4'])
  } catch (error) {
    rows.push({level, note: `unavailable: ${error.message.split('\n')[0]}`})
    continue
  }
  const hello = await requestsPerSecond(`${server.url}cgi-bin/hello.sh`)
  const helloPy = await requestsPerSecond(`${server.url}cgi-bin/hello.py`)
  const staticFile = await requestsPerSecond(`${server.url}index.html`)
  const stream = await streamSeconds(`${server.url}cgi-bin/big.py`)
  rows.push({level, hello, helloPy, staticFile, stream})
  await server.stop()
}

console.log(`cgibox bench (${hasWrk ? `wrk -t2 -c${CONNECTIONS} -d${SECONDS}s` : `node client, ${CONNECTIONS} connections, ${SECONDS}s`}), Node ${process.version}`)
console.log('| sandbox (spawner) | /cgi-bin/hello.sh req/s | /cgi-bin/hello.py req/s | small static req/s | 79 MB stream (s) |')
console.log('| --- | --- | --- | --- | --- |')
for (const row of rows) {
  if (row.note) {
    console.log(`| ${row.level} | ${row.note} | | | |`)
    continue
  }
  const cell = ({rps, errors}) => `${rps}${errors ? ` (${errors})` : ''}`
  console.log(`| ${row.level} | ${cell(row.hello)} | ${cell(row.helloPy)} | ${cell(row.staticFile)} | ` +
    `${row.stream.seconds.toFixed(2)}${row.stream.bytes === 78_888_897 ? '' : ` (${row.stream.bytes} bytes!)`} |`)
}

for (const script of ['spawn-levels.js', 'ts-pages.js', 'static-files.js']) {
  console.log(`\n# bench/${script}`)
  spawnSync(process.execPath, [path.join(ROOT, 'bench', script)], {cwd: ROOT, stdio: 'inherit'})
}
