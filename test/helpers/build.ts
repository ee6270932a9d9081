// The real `cgibox` built from src/ as `npm run build` builds it (tsc, then launcher.py beside the JavaScript), into a
// directory of its own with package.json and node_modules beside dist/, so tests never race a build into dist/.
import {execFile} from 'node:child_process'
import {chmod, copyFile, mkdtemp, rm, stat, symlink} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

export const REPO = fileURLToPath(new URL('../../', import.meta.url))
export const BUILD_TIMEOUT_MS = 120_000

export interface Build {
  /** dist/cli.js of the build. */
  readonly cliPath: string
  remove(): Promise<void>
}

// Builds into a fresh directory; rejects with tsc's output when no dist/cli.js came out.
export async function buildCli(): Promise<Build> {
  const root = await mkdtemp(path.join(process.env.CGIBOX_TEST_SITES ?? tmpdir(), 'cgibox-build-'))
  await chmod(root, 0o755) // a test may run it as another user
  await copyFile(path.join(REPO, 'package.json'), path.join(root, 'package.json'))
  await symlink(path.join(REPO, 'node_modules'), path.join(root, 'node_modules'))
  const tsc = path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc')
  const dist = path.join(root, 'dist')
  const result = await new Promise<{error: Error | null; output: string}>((resolve) => {
    execFile(process.execPath, [tsc, '-p', path.join(REPO, 'tsconfig.build.json'), '--outDir', dist],
      {cwd: REPO, timeout: BUILD_TIMEOUT_MS}, (error, stdout, stderr) => resolve({error, output: stdout + stderr}))
  })
  const cliPath = path.join(dist, 'cli.js')
  // Type errors still emit JavaScript (typecheck is `npm test`'s own step); only a missing cli.js stops the tests.
  if (!await stat(cliPath).then(() => true, () => false)) {
    throw new Error(`tsc did not produce dist/cli.js: ${result.error?.message ?? ''}\n${result.output}`)
  }
  await copyFile(path.join(REPO, 'src', 'process', 'launcher.py'), path.join(dist, 'process', 'launcher.py'))
  return {cliPath, remove: () => rm(root, {recursive: true, force: true})}
}
