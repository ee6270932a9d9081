// The built cgibox CLI as a bench host: one server per variant, its options in a generated JSON config file (so a
// variant is its config: `{sandbox: 'none'}`, later `{sandbox: 'none', warmPython: true}`), on a free port.
import fs from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {CLEAN_PATH} from './peers.js'
import {READY_TIMEOUT_MS, spawnServer, waitForHttp} from './server-process.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const CLI = path.join(ROOT, 'dist', 'cli.js')

// Starts `node dist/cli.js --config <file>` for one variant; resolves with {name, label, url, stop, sandbox}.
export async function startCgibox(variant, {site, runDir, signal}) {
  const dir = path.join(runDir, variant.name)
  fs.mkdirSync(dir, {mode: 0o755})
  const configFile = path.join(dir, 'config.json')
  fs.writeFileSync(configFile, JSON.stringify({
    host: '127.0.0.1',
    port: 0,
    accessLog: 'off',
    htdocs: path.join(site, 'htdocs'),
    cgiBin: path.join(site, 'cgi-bin'),
    // Its run-time directories (launcher socket, run TMPDIRs, .ts cache) go with the bench's run directory.
    runtimeDir: path.join(dir, 'runtime'),
    ...variant.config,
  }, null, 2))
  // stdout is read for the URL and then drained; stderr (a line per run) goes to a file, never to an unread pipe.
  const server = spawnServer(process.execPath, [CLI, '--config', configFile], {
    cwd: ROOT, env: {PATH: CLEAN_PATH, HOME: dir, LANG: 'C.UTF-8'}, logFile: path.join(dir, 'stderr.log'), pipeStdout: true,
  })
  try {
    const {url, sandbox} = await readBanner(server, signal)
    await waitForHttp(`${url}index.html`, server, signal)
    return {name: variant.name, label: variant.label, url: url.replace(/\/$/, ''), sandbox, stop: server.stop}
  } catch (error) {
    await server.stop()
    throw error
  }
}

// "cgibox 0.1.0 listening on http://127.0.0.1:PORT/" and the "sandbox: …" line after it.
function readBanner(server, signal) {
  return new Promise((resolve, reject) => {
    setTimeout(() => reject(new Error(`no "listening on" line within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS).unref()
    signal.addEventListener('abort', () => reject(signal.reason), {once: true})
    let out = ''
    server.child.stdout.setEncoding('utf8').on('data', (chunk) => {
      out += chunk
      const url = /listening on (http:\/\/\S+\/)/.exec(out)?.[1]
      const sandbox = /^sandbox: .*$/m.exec(out)?.[0]
      if (url !== undefined && sandbox !== undefined) resolve({url, sandbox})
    })
    void server.exited.then((reason) => reject(new Error(`${reason}: ${server.logTail()}`)))
  })
}
