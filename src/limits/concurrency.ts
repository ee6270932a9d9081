// The gate in front of script runs: p-limit caps running scripts, a bounded queue holds the rest for a while.
// Past the queue's size or its timeout a request gets 503 with Retry-After. Static files never pass this gate.
import pLimit from 'p-limit'
import {ServiceUnavailableError} from '../errors.js'

export interface Gate {
  /** Waits for a slot; resolves with its release function. Rejects with ServiceUnavailableError or signal's reason. */
  acquire(signal?: AbortSignal): Promise<() => void>
  readonly running: number
  readonly waiting: number
}

export interface GateOptions {
  readonly maxConcurrent: number
  readonly maxQueued: number
  readonly queueTimeoutMs: number
}

// Creates the gate; Retry-After is the queue timeout in seconds (at least 1).
export function createGate({maxConcurrent, maxQueued, queueTimeoutMs}: GateOptions): Gate {
  const limit = pLimit(maxConcurrent)
  const retryAfterSeconds = Math.max(1, Math.ceil(queueTimeoutMs / 1000))
  let waiting = 0
  return {
    get running() { return limit.activeCount },
    get waiting() { return waiting },
    acquire(signal) {
      if (limit.activeCount >= maxConcurrent && waiting >= maxQueued) {
        return Promise.reject(new ServiceUnavailableError(retryAfterSeconds,
          `gate: ${maxConcurrent} scripts running and ${waiting} waiting, queue limit is ${maxQueued}`))
      }
      return new Promise((resolve, reject) => {
        let settled = false
        waiting++
        const giveUp = (error: unknown) => {
          if (settled) return
          settled = true
          waiting--
          clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
          reject(error)
        }
        const onAbort = () => giveUp(signal?.reason)
        const timer = setTimeout(() => giveUp(new ServiceUnavailableError(retryAfterSeconds,
          `gate: no free slot within ${queueTimeoutMs} ms`)), queueTimeoutMs)
        signal?.addEventListener('abort', onAbort, {once: true})
        // A request that gave up still holds its place in p-limit's queue; it hands the slot on at once.
        void limit(() => new Promise<void>((release) => {
          if (settled) return release()
          settled = true
          waiting--
          clearTimeout(timer)
          signal?.removeEventListener('abort', onAbort)
          let released = false
          resolve(() => {
            if (!released) {
              released = true
              release()
            }
          })
        }))
      })
    },
  }
}
