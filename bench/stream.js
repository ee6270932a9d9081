// The big stream: seconds to GET a URL and read all of its body, and seconds its script takes run directly with
// stdout to /dev/null (what no host can beat).
import {spawn} from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'

// Resolves with {seconds, bytes} once the whole body has been read on a fresh connection.
export function fetchSeconds(url, signal) {
  return new Promise((resolve, reject) => {
    const started = performance.now()
    http.get(url, {agent: false, signal}, (response) => {
      let bytes = 0
      response.on('data', (chunk) => { bytes += chunk.length })
      response.once('end', () => resolve({seconds: (performance.now() - started) / 1000, bytes}))
      response.on('error', reject)
    }).on('error', reject)
  })
}

// Resolves with {seconds, bytes: null} once `file` (run by its #! line, in env, from its directory) has exited 0.
export function scriptSeconds(file, {cwd, env, signal}) {
  return new Promise((resolve, reject) => {
    const devNull = fs.openSync('/dev/null', 'w')
    const started = performance.now()
    const child = spawn(file, [], {cwd, env, stdio: ['ignore', devNull, 'inherit'], signal})
    fs.closeSync(devNull)
    child.on('error', reject)
    child.once('exit', (code) => code === 0
      ? resolve({seconds: (performance.now() - started) / 1000, bytes: null})
      : reject(new Error(`${file} exited with ${code}`)))
  })
}
