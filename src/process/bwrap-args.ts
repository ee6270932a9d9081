// The bubblewrap argv of a run (docs/architecture.md §6.3): new user/PID/IPC/UTS/cgroup namespaces, no network,
// a read-only view of only what interpreters need plus the run's own directories at their host paths, a bounded
// private /tmp and /dev/shm, a fake /etc/passwd. It builds arguments (and the private /etc) only; it never spawns.
import fs from 'node:fs'
import path from 'node:path'

/** Size of the private /dev/shm (python multiprocessing needs a few semaphores, nothing more). */
export const DEV_SHM_BYTES = 1024 * 1024
/** tmpfs treats size=0 as "no limit", so below one page /tmp is mounted read-only instead. */
const MIN_TMPFS_BYTES = 4096
/** Top-level system directories: bound read-only when real directories, recreated when symlinks (merged /usr). */
const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32']
/**
 * What interpreters read from /etc, copied at startup into a private /etc that is bound as one directory (one
 * mount instead of one per file: about 1.5 ms less per run here). Nothing else of /etc (no shadow, no ssh keys,
 * no server config) is visible. Changes to these files reach scripts after a restart of cgibox.
 */
const ETC_PATHS = [
  'alternatives', 'ld.so.cache', 'localtime', 'timezone', 'mime.types', 'ssl/openssl.cnf', 'perl', 'php',
]
/** Pools up to this size get one passwd file listing every pool uid; larger pools bind a file per uid. */
const MAX_USERS_IN_ONE_PASSWD = 10_000
const HOSTS_FILE = '127.0.0.1\tlocalhost\n::1\tlocalhost\n'
/** Fake passwd/group files already on disk (per-uid files of large pools, written on first use). */
const WRITTEN_FILES = new Set<string>()

export interface BwrapView {
  /** Arguments shared by every run: namespaces, flags, system binds, the private /etc. */
  readonly staticArgs: readonly string[]
  /** Paths already visible read-only (so the run's own paths under them need no bind). */
  readonly visibleRoots: readonly string[]
  /** Directory holding the private /etc and per-uid passwd files (readable by the run uids). */
  readonly filesDir: string
  /** Whether the private /etc/passwd already lists every uid a run can have. */
  readonly passwdListsAll: boolean
}

/** The uids runs may have: a pool range, or one uid (the server's, or a configured user). */
export interface BwrapUsers {
  readonly firstUid: number
  readonly count: number
  /** Group of a uid: the same number for pool uids. */
  readonly gidOf: (uid: number) => number
  /** Fixed users some locations run as (listed under their own names). */
  readonly extra: readonly {readonly name: string; readonly uid: number; readonly gid: number}[]
}

export interface BwrapRun {
  readonly uid: number
  readonly gid: number
  readonly cwd: string
  readonly tmpBytes: number
  /** Directories and files bound read-only at their host paths (script dir, document root, interpreter). */
  readonly readOnlyPaths: readonly string[]
  /** Directories bound read-write at their host paths (a location's writePaths). */
  readonly writablePaths: readonly string[]
  readonly argv: readonly string[]
}

// Computes the system part of the view once at startup: copies the private /etc into filesDir (which must exist
// and be readable by the run uids) and lists the binds every run shares.
export function createBwrapView(filesDir: string, users: BwrapUsers): BwrapView {
  const args: string[] = [
    '--unshare-user', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try', '--unshare-net',
    '--disable-userns', // no nested user namespaces: `unshare -U` inside fails
    '--die-with-parent', '--new-session', '--cap-drop', 'ALL', '--hostname', 'cgibox',
  ]
  const visibleRoots: string[] = []
  for (const dir of SYSTEM_DIRS) {
    const stat = lstatOrNull(dir)
    if (stat === null) continue
    if (stat.isSymbolicLink()) args.push('--symlink', fs.readlinkSync(dir), dir)
    else if (stat.isDirectory()) args.push('--ro-bind', dir, dir)
    else continue
    visibleRoots.push(dir) // a symlinked /bin shows /usr/bin, which is bound
  }
  const node = nodeInstallation(visibleRoots)
  if (node !== null) {
    args.push('--ro-bind', node, node)
    visibleRoots.push(node)
  }
  const passwdListsAll = users.count <= MAX_USERS_IN_ONE_PASSWD
  const etc = createPrivateEtc(filesDir, passwdListsAll ? users : null)
  args.push('--ro-bind', etc, '/etc')
  args.push('--proc', '/proc', '--dev', '/dev', '--size', String(DEV_SHM_BYTES), '--tmpfs', '/dev/shm', '--remount-ro', '/dev')
  return {staticArgs: args, visibleRoots, filesDir, passwdListsAll}
}

// The whole bwrap argument list of one run, ending in `-- argv`.
export function buildBwrapArgs(view: BwrapView, run: BwrapRun): string[] {
  const args = [...view.staticArgs]
  if (!view.passwdListsAll) {
    args.push('--ro-bind', passwdFile(view.filesDir, run.uid, run.gid), '/etc/passwd')
    args.push('--ro-bind', groupFile(view.filesDir, run.gid), '/etc/group')
  }
  // /tmp first: the run's own paths may live under the host's /tmp and are bound on top of it.
  if (run.tmpBytes >= MIN_TMPFS_BYTES) args.push('--perms', '1777', '--size', String(run.tmpBytes), '--tmpfs', '/tmp')
  else args.push('--tmpfs', '/tmp', '--remount-ro', '/tmp')
  for (const [bound, writable] of pathsToBind(view.visibleRoots, [run.cwd, ...run.readOnlyPaths, ...programPaths(run.argv)], run.writablePaths)) {
    args.push(writable ? '--bind' : '--ro-bind', bound, bound)
  }
  args.push('--remount-ro', '/', '--chdir', run.cwd, '--', ...run.argv)
  return args
}

// Copies the ETC_PATHS that exist (symlinks as symlinks, modes kept: nothing becomes more readable) and writes the
// fake hosts, passwd and group files (no real users, no hashes).
function createPrivateEtc(filesDir: string, users: BwrapUsers | null): string {
  const etc = path.join(filesDir, 'etc')
  fs.mkdirSync(etc, {mode: 0o755})
  fs.chmodSync(etc, 0o755)
  for (const entry of ETC_PATHS) {
    const source = path.join('/etc', entry)
    if (lstatOrNull(source) === null) continue
    fs.mkdirSync(path.dirname(path.join(etc, entry)), {recursive: true, mode: 0o755})
    fs.cpSync(source, path.join(etc, entry), {recursive: true, verbatimSymlinks: true, preserveTimestamps: true})
  }
  fs.writeFileSync(path.join(etc, 'hosts'), HOSTS_FILE, {mode: 0o444})
  const passwd = ['root:x:0:0:root:/nonexistent:/usr/sbin/nologin']
  const group = ['root:x:0:']
  if (users !== null) {
    for (let uid = users.firstUid; uid < users.firstUid + users.count; uid++) {
      passwd.push(passwdLine(uid, users.gidOf(uid)))
      group.push(`cgibox:x:${users.gidOf(uid)}:`)
    }
    for (const user of users.extra) {
      passwd.push(`${user.name}:x:${user.uid}:${user.gid}:${user.name}:/nonexistent:/usr/sbin/nologin`)
      group.push(`${user.name}:x:${user.gid}:`)
    }
  }
  passwd.push('nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin')
  group.push('nogroup:x:65534:')
  fs.writeFileSync(path.join(etc, 'passwd'), `${passwd.join('\n')}\n`, {mode: 0o444})
  fs.writeFileSync(path.join(etc, 'group'), `${[...new Set(group)].join('\n')}\n`, {mode: 0o444})
  return etc
}

function groupFile(filesDir: string, gid: number): string {
  const file = path.join(filesDir, `group-${gid}`)
  writeFileOnce(file, `root:x:0:\ncgibox:x:${gid}:\nnogroup:x:65534:\n`)
  return file
}

function isInside(child: string, parent: string): boolean {
  return child === parent || child.startsWith(parent.endsWith('/') ? parent : `${parent}/`)
}

function lstatOrNull(file: string): fs.Stats | null {
  try {
    return fs.lstatSync(file)
  } catch {
    return null
  }
}

// The directory of the node installation running cgibox when it lies outside the system dirs (e.g. /opt/node),
// so `node` (and .ts pages run by process.execPath) work inside; null when already visible.
function nodeInstallation(visibleRoots: readonly string[]): string | null {
  const real = fs.realpathSync(process.execPath)
  if (visibleRoots.some((root) => isInside(real, root))) return null
  const binDir = path.dirname(real)
  return path.basename(binDir) === 'bin' ? path.dirname(binDir) : real
}

function passwdFile(filesDir: string, uid: number, gid: number): string {
  const file = path.join(filesDir, `passwd-${uid}-${gid}`)
  writeFileOnce(file, 'root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n' + passwdLine(uid, gid) +
    '\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n')
  return file
}

function passwdLine(uid: number, gid: number): string {
  return `cgibox:x:${uid}:${gid}:cgibox script:/tmp:/usr/sbin/nologin`
}

// The run's paths that need a bind, outermost first (a bind inside another is mounted on top of it): read-only ones
// not visible yet and not inside another read-only one; writable ones always, each once, winning over read-only.
function pathsToBind(visibleRoots: readonly string[], readOnly: readonly string[], writable: readonly string[]): [string, boolean][] {
  const writableSet = new Set(writable.map((entry) => path.resolve(entry)))
  const all = new Set([...readOnly.map((entry) => path.resolve(entry)), ...writableSet])
  const sorted = [...all].sort((a, b) => a.length - b.length)
  const chosen: [string, boolean][] = []
  for (const entry of sorted) {
    if (entry === '/') throw new Error('sandbox: refusing to bind / into the sandbox')
    const isWritable = writableSet.has(entry)
    if (!isWritable) {
      if (visibleRoots.some((root) => isInside(entry, root))) continue
      // Inside a read-only bind already; inside a writable one it still gets its own read-only bind on top.
      const parent = [...chosen].reverse().find(([root]) => isInside(entry, root))
      if (parent !== undefined && !parent[1]) continue
    }
    chosen.push([entry, isWritable])
  }
  return chosen
}

// Absolute paths in the argv (a mount's executable, a transpiled page) that exist, so they are visible inside.
// The argv never holds words from the request (plan-run.ts), so this binds nothing a client chose.
function programPaths(argv: readonly string[]): string[] {
  return argv.filter((word) => path.isAbsolute(word) && fs.statSync(word, {throwIfNoEntry: false}) !== undefined)
}

function writeFileOnce(file: string, content: string): void {
  if (WRITTEN_FILES.has(file)) return
  try {
    fs.writeFileSync(file, content, {flag: 'wx', mode: 0o444})
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
  }
  WRITTEN_FILES.add(file)
}
