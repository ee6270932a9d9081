// Ctrl-C and SIGTERM as an AbortSignal: a bench stops at its next step and its `finally` blocks stop what it
// started. Repeated signals change nothing (the cleanup is bounded: servers get SIGKILL after a grace).
export function interruptSignal() {
  const controller = new AbortController()
  const onSignal = (name) => {
    if (controller.signal.aborted) return
    process.exitCode = 130
    controller.abort(new Error(`interrupted (${name})`))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  return controller.signal
}
