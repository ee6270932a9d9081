// Counts the bytes a script writes and stops the stream past the cap (execa max-buffer.js, counted by us:
// execa's maxBuffer does not apply when streaming). The transform keeps backpressure end to end.
import {Transform, type TransformCallback} from 'node:stream'

export interface ByteCap extends Transform {
  readonly bytes: number
}

export interface ByteCapOptions {
  readonly limit: number
  /** Called once with the byte count when a chunk crosses the limit; the stream then errors. */
  readonly onExceed: (bytes: number) => void
  /** Called for every chunk that passes. */
  readonly onBytes?: (count: number) => void
  /** Runs at the end of input; an error returned cuts the stream off instead of ending it cleanly. */
  readonly onEnd?: () => Promise<Error | null>
}

// Passes chunks through until `limit` bytes; the chunk that crosses it calls onExceed and errors the stream.
export function createByteCap({limit, onExceed, onBytes, onEnd = async () => null}: ByteCapOptions): ByteCap {
  let bytes = 0
  const transform = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      bytes += chunk.length
      onBytes?.(chunk.length)
      if (bytes > limit) {
        onExceed(bytes)
        callback(new Error(`cgi: script wrote more than ${limit} bytes, the limit is ${limit} bytes`))
        return
      }
      callback(null, chunk)
    },
    flush(callback: TransformCallback) {
      onEnd().then((error) => callback(error), callback)
    },
  })
  return Object.defineProperty(transform, 'bytes', {get: () => bytes}) as ByteCap
}
