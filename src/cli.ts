#!/usr/bin/env node
// The `cgibox` command: parses flags and the JSON config, starts the server, prints its URL, and shuts down
// cleanly on SIGINT/SIGTERM. A bad option prints one line naming it and exits 2 before listening.
import {HELP, VERSION, parseCommandLine} from './command-line.js'
import {normalizeConfig, type Config} from './config.js'
import {startServer} from './server.js'

async function main(): Promise<void> {
  let config: Config
  let parsed: ReturnType<typeof parseCommandLine>
  try {
    parsed = parseCommandLine(process.argv.slice(2))
    if (parsed.help) {
      process.stdout.write(HELP)
      return
    }
    if (parsed.version) {
      process.stdout.write(`cgibox ${VERSION}\n`)
      return
    }
    config = normalizeConfig(parsed.raw, parsed.baseDir)
  } catch (error) {
    process.stderr.write(`cgibox: ${(error as Error).message}\n`)
    process.exitCode = 2
    return
  }
  let running: Awaited<ReturnType<typeof startServer>>
  try {
    running = await startServer(config)
  } catch (error) {
    process.stderr.write(`cgibox: ${(error as Error).message}\n`)
    process.exitCode = 1
    return
  }
  process.stdout.write(`cgibox ${VERSION} listening on ${running.url}\n${running.sandbox}\n`)
  const stop = (signal: string) => {
    process.stderr.write(`cgibox: ${signal}, shutting down\n`)
    running.close().then(() => process.exit(0), () => process.exit(1))
  }
  process.once('SIGINT', () => stop('SIGINT'))
  process.once('SIGTERM', () => stop('SIGTERM'))
}

await main()
