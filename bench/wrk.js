// Requests per second of one URL, measured with wrk (2 threads, keep-alive connections), and what went wrong.
import {execFile, spawnSync} from 'node:child_process'

// True when wrk is on the PATH.
export function hasWrk() {
  return spawnSync('wrk', ['--version']).error === undefined
}

// Runs wrk against url; resolves with {rps, errors} ('' when every response was 2xx/3xx and no socket failed).
// Asynchronous on purpose: the bench keeps draining its servers' output while wrk runs.
export function requestsPerSecond(url, {seconds, connections, signal}) {
  const args = ['-t2', `-c${connections}`, `-d${seconds}s`, '--timeout', '10s', url]
  return new Promise((resolve, reject) => {
    execFile('wrk', args, {encoding: 'utf8', signal}, (error, stdout) => {
      if (error) return reject(error)
      const rps = /Requests\/sec:\s+([\d.]+)/.exec(stdout)
      const errors = [...stdout.matchAll(/Non-2xx or 3xx responses: \d+|Socket errors: .*/g)].map((match) => match[0])
      resolve({rps: rps ? Math.round(Number(rps[1])) : 0, errors: errors.join(', ')})
    })
  })
}
