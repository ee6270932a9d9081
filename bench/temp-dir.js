// The bench's own temporary directory (removed by its caller). Scripts run as other uids (nobody, the uid pool) and
// Apache's workers reach sockets and TMPDIRs through it, so it is 0755 under a parent anyone may traverse: TMPDIR
// when it allows that, else /tmp.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'

// Creates <tmp>/<prefix>XXXXXX, mode 0755; it is removed at exit, should the caller's own cleanup not be reached.
export function makeTempDir(prefix) {
  const parent = (fs.statSync(os.tmpdir()).mode & 0o001) !== 0 ? os.tmpdir() : '/tmp'
  const dir = fs.mkdtempSync(path.join(parent, prefix))
  fs.chmodSync(dir, 0o755)
  process.once('exit', () => fs.rmSync(dir, {recursive: true, force: true}))
  return dir
}
