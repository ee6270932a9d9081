// Memory of credentials that verified, so a git push (dozens of requests with the same credentials) costs one bcrypt
// check. Keys are HMAC-SHA256 digests under a per-process random key: no password, plain or hashed alone, is kept.
import {createHmac, randomBytes} from 'node:crypto'

export interface CredentialCache {
  /**
   * Whether user and password are good: from memory, from a check already running for the same credentials, or from
   * `verify`, whose success is remembered unless `clear()` came in between.
   */
  check(user: string, password: string, verify: () => Promise<boolean>): Promise<boolean>
  /** Forgets every success and stops waiting checks from being remembered (the file they were checked against changed). */
  clear(): void
}

// Random per process, so the digests cannot be precomputed or matched across processes and restarts. (Whoever can
// read all of this process's memory can read the key, but also the requests' Authorization headers.)
const HMAC_KEY = randomBytes(32)

// Creates a cache that keeps at most maxEntries successes, dropping the least recently used.
export function createCredentialCache(maxEntries: number): CredentialCache {
  // digest → user: a hit also needs the same user, so no two (user, password) pairs can share an entry even if
  // `user\0password` were ambiguous (basic-auth.ts already refuses control characters).
  const successes = new Map<string, string>()
  const running = new Map<string, {readonly user: string; readonly result: Promise<boolean>}>()
  let generation = 0

  const remember = (key: string, user: string) => {
    successes.delete(key)
    successes.set(key, user)
    for (const [oldest] of successes) {
      if (successes.size <= maxEntries) break
      successes.delete(oldest)
    }
  }

  return {
    check(user, password, verify) {
      const key = createHmac('sha256', HMAC_KEY).update(`${user}\0${password}`, 'utf8').digest('base64')
      if (successes.get(key) === user) {
        remember(key, user)
        return Promise.resolve(true)
      }
      const pending = running.get(key)
      if (pending?.user === user) return pending.result
      const startedIn = generation
      const result = verify().then((ok) => {
        if (ok && startedIn === generation) remember(key, user)
        return ok
      }).finally(() => {
        if (running.get(key)?.result === result) running.delete(key)
      })
      running.set(key, {user, result})
      return result
    },
    clear() {
      successes.clear()
      running.clear()
      generation++
    },
  }
}
