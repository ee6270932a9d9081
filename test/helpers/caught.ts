// The error a call throws (or null), for asserting on class, code and message rather than on a bare toThrow.
export function caught(call: () => unknown): unknown {
  try {
    call()
  } catch (error) {
    return error
  }
  return null
}
