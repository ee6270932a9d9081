// Descriptors cgibox inherited from whatever started it (a shell's `exec 41<dir`, a leaky supervisor): Node opens its
// own with O_CLOEXEC, so any descriptor above 2 without that flag came from outside. Node cannot set the flag, so they
// are closed at startup: nothing of them can reach a script, whatever starts processes later (the launcher closes
// everything above 2 before each run's exec as well). Systemd's socket-activation descriptors are kept.
import fs from 'node:fs'

const O_CLOEXEC = 0o2000000

// Closes the inherited descriptors above 2 except `keep`; returns what was closed.
export function closeInheritedDescriptors(keep: ReadonlySet<number> = new Set()): number[] {
  const closed: number[] = []
  let entries: string[]
  try {
    entries = fs.readdirSync('/proc/self/fd')
  } catch {
    return closed // no /proc: nothing to find them with
  }
  for (const entry of entries) {
    const fd = Number(entry)
    if (fd <= 2 || keep.has(fd)) continue
    let info: string
    try {
      info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8')
    } catch {
      continue // the directory handle of readdir itself, gone by now
    }
    const flags = /^flags:\s+([0-7]+)$/m.exec(info)?.[1]
    if (flags === undefined || (Number.parseInt(flags, 8) & O_CLOEXEC) !== 0) continue
    try {
      fs.closeSync(fd)
      closed.push(fd)
    } catch {
      // already gone
    }
  }
  return closed
}

// The descriptors systemd passed for socket activation (LISTEN_PID is this process): 3 … 3 + LISTEN_FDS - 1.
export function socketActivationDescriptors(env: NodeJS.ProcessEnv = process.env): Set<number> {
  const count = Number(env.LISTEN_FDS)
  if (Number(env.LISTEN_PID) !== process.pid || !Number.isInteger(count) || count <= 0) return new Set()
  return new Set(Array.from({length: count}, (_, index) => 3 + index))
}
