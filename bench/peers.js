// The peer CGI hosts cgibox is measured against: Apache 2.4 mod_cgid, lighttpd 1.4 mod_cgi and Python's
// `http.server --cgi`, each in the foreground on a free loopback port, serving bench/site with the same clean
// environment. A peer that is not installed is skipped: start() throws, naming what is missing.
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import {fileURLToPath} from 'node:url'
import {spawnServer, waitForHttp} from './server-process.js'

const CONF_DIR = fileURLToPath(new URL('peers/', import.meta.url))
/** The environment of every host, and so of every script (cgibox builds its scripts' own with the same PATH). */
export const CLEAN_PATH = '/usr/local/bin:/usr/bin:/bin'
const SYSTEM_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']

export const PEERS = [
  {
    name: 'apache', label: 'Apache 2.4 mod_cgid', program: 'apache2', install: 'apt-get install -y apache2',
    args: () => ['-f', path.join(CONF_DIR, 'apache.conf'), '-DFOREGROUND'],
  },
  {
    name: 'lighttpd', label: 'lighttpd 1.4 mod_cgi', program: 'lighttpd', install: 'apt-get install -y lighttpd',
    args: () => ['-D', '-f', path.join(CONF_DIR, 'lighttpd.conf')],
  },
  {
    // http.server looks for /cgi-bin/ under its working directory: a root of links to the site stands in for it.
    name: 'python', label: 'Python http.server --cgi', program: 'python3', install: 'apt-get install -y python3',
    args: ({port}) => ['-m', 'http.server', '--cgi', '--bind', '127.0.0.1', String(port)],
    cwd: ({site, runDir}) => linkedRoot(site, path.join(runDir, 'pyroot')),
  },
]

// Starts one peer; resolves with {name, label, url, stop} once it serves /index.html.
export async function startPeer(peer, {site, runDir, signal}) {
  const program = findProgram(peer.program)
  if (program === null) throw new Error(`${peer.program} is not installed (${peer.install})`)
  const port = await freePort()
  const peerRun = path.join(runDir, peer.name)
  fs.mkdirSync(peerRun, {mode: 0o755})
  const server = spawnServer(program, peer.args({port}), {
    cwd: peer.cwd?.({site, runDir}) ?? peerRun,
    env: {PATH: CLEAN_PATH, HOME: peerRun, LANG: 'C.UTF-8', PEER_SITE: site, PEER_RUN: peerRun, PEER_PORT: String(port)},
    logFile: path.join(peerRun, 'output.log'),
  })
  const url = `http://127.0.0.1:${port}`
  try {
    await waitForHttp(`${url}/index.html`, server, signal)
  } catch (error) {
    await server.stop()
    throw error
  }
  return {name: peer.name, label: peer.label, url, stop: server.stop}
}

// A loopback port nobody listens on right now.
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const {port} = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

function findProgram(name) {
  return SYSTEM_DIRS.map((dir) => path.join(dir, name)).find((file) => {
    try {
      fs.accessSync(file, fs.constants.X_OK)
      return true
    } catch {
      return false
    }
  }) ?? null
}

// A directory holding links to everything in site/htdocs and a cgi-bin link to site/cgi-bin.
function linkedRoot(site, dir) {
  fs.mkdirSync(dir, {mode: 0o755})
  for (const name of fs.readdirSync(path.join(site, 'htdocs'))) fs.symlinkSync(path.join(site, 'htdocs', name), path.join(dir, name))
  fs.symlinkSync(path.join(site, 'cgi-bin'), path.join(dir, 'cgi-bin'))
  return dir
}
