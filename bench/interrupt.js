// Ctrl-C, SIGTERM and a closed stdout (`npm run bench | head`) as an AbortSignal: a bench stops at its next step and
// its `finally` blocks stop what it started. Repeated signals change nothing (the cleanup is bounded: servers get
// SIGKILL after a grace).
export function interruptSignal() {
  const controller = new AbortController()
  const stop = (why) => {
    if (controller.signal.aborted) return
    process.exitCode = 130
    controller.abort(new Error(`interrupted (${why})`))
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.stdout.on('error', (error) => stop(error.code ?? error.message))
  return controller.signal
}
