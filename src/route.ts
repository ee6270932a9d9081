// The outcome of routing one request path: what serves it. Produced by router.ts, consumed by app.ts.
import type {Location} from './config.js'

// A script to run for a request (RFC 3875 §3.3: the script-URI split into SCRIPT_NAME and PATH_INFO).
export interface ScriptRoute {
  /** URL path of the script, decoded, e.g. `/cgi-bin/env.py` or `/git`. */
  readonly scriptName: string
  /** Decoded rest of the path after the script, `''` when there is none (RFC 3875 §4.1.5). */
  readonly pathInfo: string
  /** Absolute real path of the script file (for a location with a program: the program). */
  readonly scriptFilename: string
  /** True for `nph-` scripts: their output goes to the client raw. */
  readonly nph: boolean
  /** The location the request falls under (its policy: level, user, paths, env, limits), or null. */
  readonly location: Location | null
  /** True when the location's program serves the request (Apache ScriptAlias), not a file found by routing. */
  readonly isProgram: boolean
}

export type Route =
  | {readonly kind: 'static'; readonly filePath: string}
  | {readonly kind: 'directory'; readonly dirPath: string; readonly urlPath: string; readonly location: Location | null}
  | {readonly kind: 'redirect'; readonly location: string}
  | {readonly kind: 'script'; readonly script: ScriptRoute}
