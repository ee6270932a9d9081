// Static files by size: starts the built cgibox (sandbox none) over a fresh site of a small index.html, a 1 MiB and a
// 16 MiB file, and prints wrk -t2 -c16 req/s and MB/s for each (best of --rounds). The 1 MiB file is answered from
// memory (static/file-cache.ts), the 16 MiB one streamed by send in 512 KiB reads. Nothing here is asserted.
// Usage: npm run build && node bench/static-files.js [--seconds 5] [--rounds 2] [--cgibox <root with dist/>]
import {execFile, spawn} from 'node:child_process'
import {randomBytes} from 'node:crypto'
import {mkdtemp, mkdir, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs, promisify} from 'node:util'

const {values} = parseArgs({
  options: {seconds: {type: 'string', default: '5'}, rounds: {type: 'string', default: '2'}, cgibox: {type: 'string'}},
})
const ROOT = values.cgibox ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const FILES = [['index.html', Buffer.from('<!DOCTYPE html><p>hello</p>\n')], ['1m.bin', randomBytes(1024 * 1024)], ['16m.bin', randomBytes(16 * 1024 * 1024)]]
const execFileAsync = promisify(execFile)

// Starts `node dist/cli.js` on a free port over htdocs; resolves with {url, stop}.
function startCgibox(htdocs, cgiBin) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['dist/cli.js', '--port', '0', '--access-log', 'off', '--sandbox', 'none',
      '--htdocs', htdocs, '--cgi-bin', cgiBin], {cwd: ROOT, stdio: ['ignore', 'pipe', 'ignore']})
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

// wrk's req/s and transfer/s on one URL.
async function measure(url) {
  const {stdout} = await execFileAsync('wrk', ['-t2', '-c16', `-d${values.seconds}s`, '--timeout', '10s', url], {encoding: 'utf8'})
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1] ?? 0)
  const errors = /Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)/.exec(stdout)?.[0] ?? ''
  return {rps, errors}
}

const site = await mkdtemp(path.join(tmpdir(), 'cgibox-bench-static-'))
try {
  await mkdir(path.join(site, 'htdocs'))
  await mkdir(path.join(site, 'cgi-bin'))
  for (const [name, body] of FILES) await writeFile(path.join(site, 'htdocs', name), body)
  const server = await startCgibox(path.join(site, 'htdocs'), path.join(site, 'cgi-bin'))
  try {
    console.log(`cgibox ${ROOT}, static files, wrk -t2 -c16 -d${values.seconds}s, best of ${values.rounds}, Node ${process.version}`)
    console.log('| file | bytes | req/s | MB/s |')
    console.log('| --- | --- | --- | --- |')
    for (const [name, body] of FILES) {
      await measure(`${server.url}${name}`) // warm-up: fills the memory cache where the file fits
      let best = {rps: 0, errors: ''}
      for (let round = 0; round < Number(values.rounds); round++) {
        const result = await measure(`${server.url}${name}`)
        if (result.rps > best.rps) best = result
      }
      const mbs = (best.rps * body.length / 1e6).toFixed(0)
      console.log(`| ${name} | ${body.length} | ${Math.round(best.rps)}${best.errors ? ` (${best.errors})` : ''} | ${mbs} |`)
    }
  } finally {
    await server.stop()
  }
} finally {
  await rm(site, {recursive: true, force: true})
}
