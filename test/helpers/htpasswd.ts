// Hashes made by Apache's own htpasswd (apache2-utils), for the tests that check against the real tool.
import {execFileSync, spawnSync} from 'node:child_process'

export const HTPASSWD_INSTALLED = spawnSync('htpasswd', ['-nbs', 'probe', 'probe']).status === 0

// The hash `htpasswd -nb <flags> user password` prints (flags: ['-B', '-C', '4'], ['-m'], ['-s'], ['-d'], ...).
export function htpasswdHash(flags: readonly string[], password: string, user = 'user'): string {
  const line = execFileSync('htpasswd', ['-nb', ...flags, user, password], {encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe']}).trim()
  return line.slice(user.length + 1)
}
