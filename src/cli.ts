#!/usr/bin/env node
// The `cgibox` command: parses flags and the JSON config, starts the server, prints its URL, and shuts down
// cleanly on SIGINT/SIGTERM. A bad option prints one line naming it and exits 2 before listening.
import {HELP, VERSION, parseCommandLine, validateDirectories} from './command-line.js'
import {normalizeConfig, type Config} from './config.js'
import {closeInheritedDescriptors, socketActivationDescriptors} from './inherited-fds.js'
import {startServer} from './server.js'

async function main(): Promise<void> {
  const closed = closeInheritedDescriptors(socketActivationDescriptors())
  let config: Config
  try {
    const commandLine = parseCommandLine(process.argv.slice(2))
    if (commandLine.help) {
      process.stdout.write(HELP)
      return
    }
    if (commandLine.version) {
      process.stdout.write(`cgibox ${VERSION}\n`)
      return
    }
    config = normalizeConfig(commandLine.raw, commandLine.baseDir, commandLine.names)
    validateDirectories(config, commandLine)
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
  if (closed.length > 0) process.stderr.write(`cgibox: closed the descriptors it inherited: ${closed.join(', ')}\n`)
  const stop = (signal: string) => {
    process.stderr.write(`cgibox: ${signal}, shutting down\n`)
    running.close().then(() => process.exit(0), () => process.exit(1))
  }
  process.once('SIGINT', () => stop('SIGINT'))
  process.once('SIGTERM', () => stop('SIGTERM'))
  // SIGHUP would end Node silently; until it reloads the config, it is said and ignored.
  process.on('SIGHUP', () => process.stderr.write('cgibox: SIGHUP ignored (reloading the config is not supported yet); still serving\n'))
}

await main()
