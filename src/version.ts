// cgibox's version, from package.json (read with fs: a JSON import needs import attributes, which Node 20.0–20.9
// spell differently).
import {readFileSync} from 'node:fs'

export const VERSION: string = readVersion()

function readVersion(): string {
  const pkg: unknown = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
  const version = typeof pkg === 'object' && pkg !== null ? (pkg as {version?: unknown}).version : undefined
  return typeof version === 'string' ? version : '0.0.0'
}
