#!/usr/bin/env node
// The `cgibox` command: parses flags and the JSON config, starts the server, prints its URL. SIGHUP reloads the
// config file (an invalid one is logged and the running config kept); SIGTERM and SIGINT drain and shut down. A bad
// option prints one line naming it and exits 2 before listening.
import {HELP, VERSION, parseCommandLine, validateDirectories, type CommandLine} from './command-line.js'
import {normalizeConfig, type Config} from './config.js'
import {closeInheritedDescriptors, socketActivationDescriptors} from './inherited-fds.js'
import {startServer} from './server.js'

// Reads argv (and the config file it names) into a checked config; throws a TypeError naming the option.
function loadConfig(argv: readonly string[]): {commandLine: CommandLine; config: Config} {
  const commandLine = parseCommandLine(argv)
  const config = normalizeConfig(commandLine.raw, commandLine.baseDir, commandLine.names)
  validateDirectories(config, commandLine)
  return {commandLine, config}
}

async function main(): Promise<void> {
  const closed = closeInheritedDescriptors(socketActivationDescriptors())
  const argv = process.argv.slice(2)
  let config: Config
  try {
    const loaded = loadConfig(argv)
    if (loaded.commandLine.help) {
      process.stdout.write(HELP)
      return
    }
    if (loaded.commandLine.version) {
      process.stdout.write(`cgibox ${VERSION}\n`)
      return
    }
    config = loaded.config
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
  const {logger} = running.app
  process.stdout.write(`cgibox ${VERSION} listening on ${running.url}\n${running.sandbox}\n`)
  if (closed.length > 0) logger.info(`cgibox: closed the descriptors it inherited: ${closed.join(', ')}`)
  const stop = (signal: string) => {
    logger.info(`cgibox: ${signal}, draining for ${running.app.config.drainMs} ms, then shutting down`) // the reloaded value
    running.close().then(() => process.exit(0), () => process.exit(1))
  }
  process.once('SIGINT', () => stop('SIGINT'))
  process.once('SIGTERM', () => stop('SIGTERM'))
  // SIGHUP: the config file again, checked as at startup; new requests get it, running scripts keep theirs.
  let reloading = Promise.resolve()
  process.on('SIGHUP', () => {
    reloading = reloading.then(async () => {
      try {
        const {config: next} = loadConfig(argv)
        await running.reload(next)
        logger.info(`cgibox: SIGHUP, config reloaded\n${running.sandbox}`)
      } catch (error) {
        logger.error(`cgibox: SIGHUP, config not reloaded (the running one stays): ${(error as Error).message}`)
      }
    })
  })
  process.once('exit', () => logger.flush?.())
}

await main()
