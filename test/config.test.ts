// Table tests of the settings (docs/architecture.md §5): normalizeConfig fills every default and
// rejects every bad value with a TypeError naming the option; parseCommandLine maps flags and the JSON file onto it.
import {writeFile} from 'node:fs/promises'
import path from 'node:path'
import {describe, expect, test} from 'vitest'
import {parseCommandLine} from '../src/command-line.js'
import {DEFAULT_LIMITS, normalizeConfig, type RawConfig} from '../src/config.js'
import {caught} from './helpers/caught.js'
import {makeTempDir} from './helpers/temp-dir.js'

async function writeConfigFile(dir: string, content: unknown): Promise<string> {
  const file = path.join(dir, 'cgibox.json')
  await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content))
  return file
}

const MOUNT = {prefix: '/prog/', program: '/usr/bin/env'}

describe('normalizeConfig defaults', () => {
  test('an empty config gets every default, paths resolved against the base directory', () => {
    const config = normalizeConfig({}, '/srv/site')
    expect(config).toMatchObject({
      host: '127.0.0.1',
      port: 8080,
      htdocs: '/srv/site/htdocs',
      cgiBin: '/srv/site/cgi-bin',
      sandbox: 'auto',
      limits: DEFAULT_LIMITS,
      maxQueued: 100,
      queueTimeoutMs: 10_000,
      shutdownGraceMs: 5_000,
      locations: [],
      env: {},
      passAuthorization: false,
      accessLog: 'combined',
    })
    expect(config.maxConcurrent).toBeGreaterThanOrEqual(2)
    expect(Object.isFrozen(config)).toBe(true)
    expect(Object.isFrozen(config.limits)).toBe(true)
  })

  test.each<[string, RawConfig, (config: ReturnType<typeof normalizeConfig>) => unknown, unknown]>([
    ['a limit at the top level', {timeoutMs: 5}, (config) => config.limits.timeoutMs, 5],
    ['a limit under limits', {limits: {timeoutMs: 7}}, (config) => config.limits.timeoutMs, 7],
    ['a top-level limit beats the nested one', {timeoutMs: 5, limits: {timeoutMs: 7}}, (config) => config.limits.timeoutMs, 5],
    ['port 0 picks a free port', {port: 0}, (config) => config.port, 0],
    ['extensions are lower-cased', {pageExtensions: ['.PY']}, (config) => config.pageExtensions, ['.py']],
    ['an interpreter may be a string', {interpreters: {'.lua': 'lua'}}, (config) => config.interpreters['.lua'], ['lua']],
    ['a mount inherits the global limits', {timeoutMs: 5, mounts: [MOUNT]}, (config) => config.locations[0]?.limits.timeoutMs, 5],
    ['a mount overrides a limit', {timeoutMs: 5, mounts: [{...MOUNT, timeoutMs: 9}]}, (config) => config.locations[0]?.limits.timeoutMs, 9],
    ['a mount inherits passAuthorization', {passAuthorization: true, mounts: [MOUNT]}, (config) => config.locations[0]?.passAuthorization, true],
    ['a relative mount program is resolved', {mounts: [{prefix: '/p/', program: 'bin/x'}]}, (config) => config.locations[0]?.program, '/base/bin/x'],
  ])('%s', (_title, raw, read, expected) => {
    expect(read(normalizeConfig(raw, '/base'))).toEqual(expected)
  })
})

describe('locations (nginx location, Apache <Location>)', () => {
  test('every field of a location is normalised, paths resolved, limits, passAuthorization and upload inherited', () => {
    const config = normalizeConfig({
      timeoutMs: 5, passAuthorization: true, upload: true,
      locations: [{
        prefix: '/cgi-bin/guestbook/', sandbox: 'rlimit', user: 'www-data', readPaths: ['etc'], writePaths: ['data'],
        env: {GB: '1'}, requireSandbox: 'rlimit', auth: {realm: 'guests', htpasswd: 'users.htpasswd'}, maxBodyBytes: '1M',
      }],
    }, '/site')
    expect(config.locations).toEqual([{
      option: 'locations[0]', prefix: '/cgi-bin/guestbook/', program: null, sandbox: 'rlimit', user: 'www-data', readPaths: ['/site/etc'],
      writePaths: ['/site/data'], env: {GB: '1'}, passAuthorization: true, requireSandbox: 'rlimit',
      auth: {realm: 'guests', htpasswd: '/site/users.htpasswd'},
      limits: {...DEFAULT_LIMITS, timeoutMs: 5, maxBodyBytes: 1024 * 1024}, warmPython: true, upload: true,
    }])
  })

  test('mounts are locations with a program, listed first', () => {
    const config = normalizeConfig({locations: [{prefix: '/b/'}], mounts: [MOUNT]}, '/base')
    expect(config.locations.map((location) => [location.prefix, location.program])).toEqual([['/prog/', '/usr/bin/env'], ['/b/', null]])
  })
})

describe('sizes accept units (the bytes package: 1K = 1024)', () => {
  test.each([
    [65536, 65536],
    ['65536', 65536],
    ['512K', 512 * 1024],
    ['512M', 512 * 1024 * 1024],
    ['512MB', 512 * 1024 * 1024],
    ['1G', 1024 ** 3],
    ['1g', 1024 ** 3],
    ['64KiB', 64 * 1024],
    ['1.5M', 1.5 * 1024 * 1024],
    [' 2 M ', 2 * 1024 * 1024],
  ])('maxOutputBytes %j is %d bytes', (value, expected) => {
    expect(normalizeConfig({maxOutputBytes: value}).limits.maxOutputBytes).toBe(expected)
  })
})

describe('normalizeConfig rejects bad values with a TypeError naming the option', () => {
  test.each<[RawConfig, string]>([
    [{port: -1}, 'port'],
    [{port: 65_536}, 'port'],
    [{port: 1.5}, 'port'],
    [{port: '8080'}, 'port'],
    [{port: Number.NaN}, 'port'],
    [{port: null}, 'port'],
    [{host: ''}, 'host'],
    [{host: 127}, 'host'],
    [{htdocs: ''}, 'htdocs'],
    [{htdocs: 5}, 'htdocs'],
    [{cgiBin: false}, 'cgiBin'],
    [{cgiBin: 'a\0b'}, 'cgiBin'],
    [{sandbox: 'bogus'}, 'sandbox'],
    [{sandbox: 'BWRAP'}, 'sandbox'],
    [{timeoutMs: -5}, 'timeoutMs'],
    [{timeoutMs: 0}, 'timeoutMs'],
    [{timeoutMs: '30s'}, 'timeoutMs'],
    [{limits: {timeoutMs: -1}}, 'timeoutMs'],
    [{limits: []}, 'limits'],
    [{limits: 'fast'}, 'limits'],
    [{limits: {bogus: 1}}, 'bogus'],
    [{killGraceMs: -1}, 'killGraceMs'],
    [{maxOutputBytes: 'x'}, 'maxOutputBytes'],
    [{maxBodyBytes: -1}, 'maxBodyBytes'],
    [{maxHeaderBytes: 10}, 'maxHeaderBytes'],
    [{cpuSeconds: 0}, 'cpuSeconds'],
    [{memoryBytes: 1e300}, 'memoryBytes'],
    [{maxProcesses: 0}, 'maxProcesses'],
    [{maxFileBytes: -1}, 'maxFileBytes'],
    [{maxOpenFiles: 1}, 'maxOpenFiles'],
    [{tmpBytes: -1}, 'tmpBytes'],
    [{maxStderrBytes: -1}, 'maxStderrBytes'],
    [{maxConcurrent: 0}, 'maxConcurrent'],
    [{maxQueued: -1}, 'maxQueued'],
    [{queueTimeoutMs: -1}, 'queueTimeoutMs'],
    [{shutdownGraceMs: -1}, 'shutdownGraceMs'],
    [{mounts: {}}, 'mounts'],
    [{mounts: [1]}, 'mounts[0]'],
    [{mounts: [{...MOUNT, prefix: 'prog/'}]}, 'mounts[0].prefix'],
    [{mounts: [{...MOUNT, prefix: '/a/../'}]}, 'mounts[0].prefix'],
    [{mounts: [{...MOUNT, prefix: '/a b/'}]}, 'mounts[0].prefix'],
    [{mounts: [{prefix: '/prog/'}]}, 'mounts[0].program'],
    [{mounts: [{...MOUNT, program: ''}]}, 'mounts[0].program'],
    [{mounts: [{...MOUNT, env: []}]}, 'mounts[0].env'],
    [{mounts: [{...MOUNT, env: {A: 1}}]}, 'mounts[0].env.A'],
    [{mounts: [{...MOUNT, timeoutMs: 0}]}, 'mounts[0].timeoutMs'],
    [{mounts: [{...MOUNT, limits: {maxOutputBytes: -1}}]}, 'mounts[0].maxOutputBytes'],
    [{mounts: [{...MOUNT, requireSandbox: 'strong'}]}, 'mounts[0].requireSandbox'],
    [{mounts: [{...MOUNT, passAuthorization: 'yes'}]}, 'mounts[0].passAuthorization'],
    [{mounts: [{...MOUNT, bogus: 1}]}, 'bogus'],
    [{mounts: [MOUNT, {...MOUNT, prefix: 5}]}, 'mounts[1].prefix'],
    [{interpreters: []}, 'interpreters'],
    [{interpreters: {py: 'python3'}}, 'interpreters'],
    [{interpreters: {'.py': []}}, 'interpreters[".py"]'],
    [{interpreters: {'.py': [1]}}, 'interpreters[".py"]'],
    [{interpreters: {'.py': ''}}, 'interpreters[".py"]'],
    [{pageExtensions: '.py'}, 'pageExtensions'],
    [{pageExtensions: ['py']}, 'pageExtensions'],
    [{pageExtensions: ['.p y']}, 'pageExtensions'],
    [{env: []}, 'env'],
    [{env: {'1BAD': 'x'}}, 'env'],
    [{env: {'A-B': 'x'}}, 'env'],
    [{env: {A: 1}}, 'env.A'],
    [{env: {A: 'a\0b'}}, 'env.A'],
    [{passAuthorization: 'true'}, 'passAuthorization'],
    [{user: ''}, 'user'],
    [{uidPoolStart: 0}, 'uidPoolStart'],
    [{upload: 1}, 'upload'],
    [{maxUploadBytes: -1}, 'maxUploadBytes'],
    [{cacheDir: ''}, 'cacheDir'],
    [{accessLog: 'json'}, 'accessLog'],
    [{bogus: 1}, 'bogus'],
    [{timeout: 1000}, 'timeout'], // the flag name is not a config key
    [{maxOutputBytes: '12Q'}, 'maxOutputBytes'],
    [{maxOutputBytes: '-1M'}, 'maxOutputBytes'],
    [{memoryBytes: '1.5.3G'}, 'memoryBytes'],
    [{maxBodyBytes: '0.1'}, 'maxBodyBytes'],
    [{locations: [{prefix: '/a/', sandbox: 'strong'}]}, 'locations[0].sandbox'],
    [{locations: [{prefix: '/a/', user: ''}]}, 'locations[0].user'],
    [{locations: [{prefix: '/a/', writePaths: 'data'}]}, 'locations[0].writePaths'],
    [{locations: [{prefix: '/a/', readPaths: [1]}]}, 'locations[0].readPaths'],
    [{locations: [{prefix: '/a/', auth: {realm: 'git'}}]}, 'locations[0].auth.htpasswd'],
    [{locations: [{prefix: '/a/', auth: {htpasswd: 'x'}}]}, 'locations[0].auth.realm'],
    [{locations: [{prefix: '/a/', auth: {realm: 'a"b', htpasswd: 'x'}}]}, 'locations[0].auth.realm'],
    [{locations: [{prefix: '/a/', auth: {realm: 'r', htpasswd: 'x', type: 'digest'}}]}, 'type'],
    [{locations: [{prefix: '/a/', program: ''}]}, 'locations[0].program'],
    [{locations: [{prefix: 'a'}]}, 'locations[0].prefix'],
    [{locations: [{prefix: '/a/'}, {prefix: '/a'}]}, '/a'],
    [{locations: [{prefix: '/a/', maxBodyBytes: 'lots'}]}, 'locations[0].maxBodyBytes'],
  ])('%o is refused, naming `%s`', (raw, option) => {
    const error = caught(() => normalizeConfig(raw, '/base'))
    expect(error).toBeInstanceOf(TypeError)
    expect((error as Error).message).toContain(`\`${option}\``)
  })
})

describe('parseCommandLine', () => {
  test.each<[string[], RawConfig]>([
    [[], {}],
    [['--port', '0'], {port: 0}],
    [['--port=8081'], {port: 8081}],
    [['--host', '::1'], {host: '::1'}],
    [['--htdocs', 'site'], {htdocs: '/work/site'}],
    [['--cgi-bin', '/srv/cgi'], {cgiBin: '/srv/cgi'}],
    [['--sandbox', 'none'], {sandbox: 'none'}],
    [['--timeout', '1500'], {timeoutMs: 1500}],
    [['--kill-grace', '10'], {killGraceMs: 10}],
    // Sizes stay as written here; normalizeConfig reads their units.
    [['--max-output', '1024'], {maxOutputBytes: '1024'}],
    [['--max-body', '0'], {maxBodyBytes: '0'}],
    [['--memory', '512M'], {memoryBytes: '512M'}],
    [['--max-concurrent', '4'], {maxConcurrent: 4}],
    [['--max-queued', '3'], {maxQueued: 3}],
    [['--upload'], {upload: true}],
    [['--pass-authorization'], {passAuthorization: true}],
    [['--access-log', 'off'], {accessLog: 'off'}],
  ])('%j gives %o', (argv, raw) => {
    expect(parseCommandLine(argv, '/work')).toMatchObject({help: false, version: false, raw, baseDir: '/work'})
  })

  test.each<[string[], 'help' | 'version']>([
    [['--help'], 'help'],
    [['--version'], 'version'],
  ])('%j asks for %s', (argv, what) => {
    expect(parseCommandLine(argv, '/work')[what]).toBe(true)
  })

  test.each<[string[], string]>([
    [['--port', '-1'], '--port'],
    [['--port=-1'], '--port'],
    [['--port', 'abc'], '--port'],
    [['--port', '1e3'], '--port'],
    [['--port', '0x10'], '--port'],
    [['--port='], '--port'],
    [['--port'], '--port'],
    [['--timeout', 'x'], '--timeout'],
    [['--timeout', '1.5'], '--timeout'],
    [['--max-concurrent', '-2'], '--max-concurrent'],
    [['--bogus-flag'], '--bogus-flag'],
    [['--config', '/nonexistent/cgibox.json'], '--config'],
    [['stray'], 'stray'],
    [['--max-output', '10QB'], '--max-output'],
    [['--memory', '-1M'], '--memory'],
    [['--timeout', '0'], '--timeout'],
  ])('%j is refused with a TypeError naming %s', (argv, option) => {
    const error = caught(() => {
      const commandLine = parseCommandLine(argv, '/work')
      normalizeConfig(commandLine.raw, commandLine.baseDir, commandLine.names)
    })
    expect(error).toBeInstanceOf(TypeError)
    expect((error as Error).message).toContain(option)
  })

  // Values the parser passes on are checked by normalizeConfig: the error still names the option.
  test.each<[string[], string]>([
    [['--port', '65536'], 'port'],
    [['--sandbox', 'bogus'], 'sandbox'],
    [['--timeout', '0'], 'timeout'],
    [['--access-log', 'json'], 'accessLog'],
    [['--max-header', '1'], 'maxHeaderBytes'],
  ])('%j passes parsing and is refused by normalizeConfig naming %s', (argv, option) => {
    const {raw, baseDir} = parseCommandLine(argv, '/work')
    const error = caught(() => normalizeConfig(raw, baseDir))
    expect(error).toBeInstanceOf(TypeError)
    expect((error as Error).message).toContain(option)
  })

  test('a config file is read, its paths resolved against its own directory, and flags override it', async () => {
    const dir = await makeTempDir('config')
    const file = await writeConfigFile(dir, {
      port: 9000, timeoutMs: 1000, htdocs: 'site', cgiBin: '/abs/cgi', mounts: [{prefix: '/p/', program: 'bin/run'}],
    })
    const {raw} = parseCommandLine(['--config', file, '--port', '0'], '/elsewhere')
    expect(raw).toMatchObject({
      port: 0, timeoutMs: 1000, htdocs: path.join(dir, 'site'), cgiBin: '/abs/cgi', mounts: [{prefix: '/p/', program: path.join(dir, 'bin/run')}],
    })
  })

  test('a relative --config is found from the working directory', async () => {
    const dir = await makeTempDir('config')
    await writeConfigFile(dir, {port: 9001})
    expect(parseCommandLine(['--config', 'cgibox.json'], dir).raw).toMatchObject({port: 9001})
  })

  test.each<[string, string, unknown]>([
    ['bad JSON', '--config', '{"port": '],
    ['an array', '--config', '[1, 2]'],
    ['null', '--config', 'null'],
  ])('a config file holding %s is refused naming %s', async (_title, option, content) => {
    const dir = await makeTempDir('config')
    const file = await writeConfigFile(dir, content)
    const error = caught(() => parseCommandLine(['--config', file], dir))
    expect(error).toBeInstanceOf(TypeError)
    expect((error as Error).message).toContain(option)
  })

  test.each<[string, string, unknown]>([
    ['a negative timeout', 'timeoutMs', {timeoutMs: -5}],
    ['an unknown key', 'prot', {prot: 80}],
    ['a bad sandbox', 'sandbox', {sandbox: 'strong'}],
    ['a bad mount', 'mounts[0].prefix', {mounts: [{prefix: 'x', program: 'y'}]}],
    // An empty path must be refused, not turned into the config file's directory.
    ['an empty htdocs', 'htdocs', {htdocs: ''}],
    ['an empty cgiBin', 'cgiBin', {cgiBin: ''}],
    ['an empty mount program', 'mounts[0].program', {mounts: [{prefix: '/p/', program: ''}]}],
  ])('a config file with %s is refused at startup naming %s', async (_title, option, content) => {
    const dir = await makeTempDir('config')
    const file = await writeConfigFile(dir, content)
    const error = caught(() => {
      const {raw, baseDir} = parseCommandLine(['--config', file], dir)
      normalizeConfig(raw, baseDir)
    })
    expect(error).toBeInstanceOf(TypeError)
    expect((error as Error).message).toContain(option)
  })

  test.each([['--htdocs'], ['--cgi-bin']])('an empty %s is refused, not taken as the working directory', (flag) => {
    const error = caught(() => {
      const {raw, baseDir} = parseCommandLine([`${flag}=`], '/work')
      normalizeConfig(raw, baseDir)
    })
    expect(error).toBeInstanceOf(TypeError)
    expect((error as Error).message).toContain(flag === '--htdocs' ? 'htdocs' : 'cgi')
  })
})
