// A real nginx in front of cgibox instances, for tests: deploy/nginx/cgibox.conf itself, with its upstream ports, its
// listening port and its log directory replaced, inside a main nginx.conf whose pid, logs and temp paths are in a
// directory of the test's own. nginx runs in the foreground (`daemon off`) in a process group of its own, so the
// test stops it, and a SIGKILL of the group takes its workers too.
import {spawn, type ChildProcess} from 'node:child_process'
import {accessSync, constants, readFileSync} from 'node:fs'
import {readFile, writeFile} from 'node:fs/promises'
import net from 'node:net'
import path from 'node:path'
import {onTestFinished} from 'vitest'
import {REPO} from './build.js'

export const DEPLOY_NGINX_CONF = path.join(REPO, 'deploy', 'nginx', 'cgibox.conf')
const START_TIMEOUT_MS = 10_000
const STOP_TIMEOUT_MS = 5_000
/** Ports the deploy file's upstream names, in order; each is replaced by a port of the test. */
const DEPLOY_UPSTREAM_PORTS = [8081, 8082]

// The nginx binary (PATH first, then the sbin directories a non-root PATH lacks), or null when it is not installed.
export function findNginx(): string | null {
  const dirs = [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/sbin', '/usr/local/sbin', '/sbin']
  for (const dir of dirs) {
    const candidate = path.join(dir, 'nginx')
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return null
}

// A port nothing listens on right now (nginx cannot listen on port 0): bound on 127.0.0.1:0, then released.
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const {port} = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

// deploy/nginx/cgibox.conf for this test: its upstream servers become `upstreamPorts`, `listen 80` becomes
// 127.0.0.1:`port`, /var/log/nginx/ becomes `dir`. Throws when the file no longer has what is replaced, so an edit
// of the deploy file cannot leave the test running something else.
export function adaptDeployConf(text: string, {port, upstreamPorts, dir}: {port: number; upstreamPorts: readonly number[]; dir: string}): string {
  const replaceOnce = (input: string, pattern: RegExp, replacement: string) => {
    const matches = input.match(new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : pattern.flags + 'g'))
    if (matches?.length !== 1) throw new Error(`${DEPLOY_NGINX_CONF}: expected one match of ${pattern}, found ${matches?.length ?? 0}`)
    return input.replace(pattern, replacement)
  }
  if (upstreamPorts.length !== DEPLOY_UPSTREAM_PORTS.length) throw new Error(`expected ${DEPLOY_UPSTREAM_PORTS.length} upstream ports`)
  let adapted = replaceOnce(text, /^(\s*)listen\s+80;/m, `$1listen 127.0.0.1:${port};`)
  DEPLOY_UPSTREAM_PORTS.forEach((deployed, index) => {
    adapted = replaceOnce(adapted, new RegExp(`^(\\s*server\\s+127\\.0\\.0\\.1):${deployed}\\b`, 'm'), `$1:${upstreamPorts[index]}`)
  })
  return adapted.replaceAll('/var/log/nginx/', `${dir}/`)
}

export interface RunningNginx {
  readonly port: number
  /** `http://127.0.0.1:PORT/` */
  readonly url: string
  readonly child: ChildProcess
  /** nginx's access log (the deploy file's `cgibox` format) and error log, as written so far. */
  accessLog(): Promise<string>
  errorLog(): Promise<string>
}

// Starts nginx from `nginxPath` in front of the instances on `upstreamPorts`, with its files in `dir`; resolves once it
// answers `readyPath` (any status). Stopped (SIGTERM, then SIGKILL of its group) when the test finishes.
export async function startNginx(nginxPath: string, dir: string, upstreamPorts: readonly number[], readyPath = '/'): Promise<RunningNginx> {
  const deployed = readFileSync(DEPLOY_NGINX_CONF, 'utf8')
  // A port found free may be taken before nginx binds it: then nginx exits at once, and another port is tried.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    await writeFile(path.join(dir, 'cgibox.conf'), adaptDeployConf(deployed, {port, upstreamPorts, dir}))
    await writeFile(path.join(dir, 'nginx.conf'), mainConf(dir))
    const child = spawn(nginxPath, ['-p', `${dir}/`, '-c', path.join(dir, 'nginx.conf')], {detached: true, stdio: ['ignore', 'pipe', 'pipe']})
    let output = ''
    child.stdout!.setEncoding('utf8').on('data', (text: string) => { output += text })
    child.stderr!.setEncoding('utf8').on('data', (text: string) => { output += text })
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    onTestFinished(() => stopGroup(child, exited))
    const errorLog = () => readFile(path.join(dir, 'error.log'), 'utf8').catch(() => '')
    const url = `http://127.0.0.1:${port}/`
    const deadline = Date.now() + START_TIMEOUT_MS
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        const log = await errorLog()
        if (attempt < 3 && /Address already in use/.test(log + output)) break
        throw new Error(`nginx exited at startup (${child.exitCode ?? child.signalCode}): ${output}\n${log}`)
      }
      const answered = await fetch(new URL(readyPath, url), {signal: AbortSignal.timeout(1_000)}).then(
        async (response) => { await response.arrayBuffer(); return true }, () => false)
      if (answered) {
        return {port, url, child, errorLog, accessLog: () => readFile(path.join(dir, 'cgibox.access.log'), 'utf8').catch(() => '')}
      }
      if (Date.now() > deadline) throw new Error(`nginx did not answer on ${url} within ${START_TIMEOUT_MS} ms: ${output}\n${await errorLog()}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

// The main nginx.conf around the deploy snippet: foreground, one worker, every file in `dir`. As root, workers run as
// root too: they must reach `dir`, and the deploy file sets no user (that is the distribution's nginx.conf's job).
function mainConf(dir: string): string {
  return [
    ...(process.getuid?.() === 0 ? ['user root;'] : []),
    'daemon off;',
    'worker_processes 1;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log info;`,
    'events { worker_connections 512; }',
    'http {',
    `    access_log off;`,
    `    client_body_temp_path ${dir}/client_body_temp;`,
    `    proxy_temp_path ${dir}/proxy_temp;`,
    `    fastcgi_temp_path ${dir}/fastcgi_temp;`,
    `    uwsgi_temp_path ${dir}/uwsgi_temp;`,
    `    scgi_temp_path ${dir}/scgi_temp;`,
    `    include ${dir}/cgibox.conf;`,
    '}',
    '',
  ].join('\n')
}

// SIGTERM (nginx's fast shutdown), then SIGKILL of the whole process group if it is still there after a while.
async function stopGroup(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
  const stopped = await Promise.race([exited.then(() => true), new Promise<boolean>((resolve) => setTimeout(() => resolve(false), STOP_TIMEOUT_MS))])
  try {
    process.kill(-child.pid!, 'SIGKILL') // workers left behind by a master that did not stop
  } catch {
    // the group is gone
  }
  if (!stopped) await exited
}
