// What a script run needs from the server: settings, the gate, the command resolver, the spawner, the log,
// the registry of live runs (for shutdown) and the dispatcher (for local redirects).
import type {IncomingMessage, ServerResponse} from 'node:http'
import type {Config, Limits} from '../config.js'
import type {Gate} from '../limits/concurrency.js'
import type {Logger} from '../log.js'
import type {KillReason, ScriptProcess} from '../process/spawn-script.js'
import type {ScriptRoute} from '../route.js'

// The method and target a request is served as; a local redirect changes both (RFC 3875 §6.2.2).
export interface RequestLine {
  readonly method: string
  /** Raw request target: path and query, undecoded. */
  readonly url: string
  /** Local redirects followed so far. */
  readonly redirects: number
  readonly requestId: number
}

export interface RunSpec {
  readonly argv: readonly string[]
  readonly env: Readonly<Record<string, string>>
  readonly cwd: string
  readonly limits: Limits
  readonly script: ScriptRoute
}

export interface CgiContext {
  readonly config: Config
  /** The real path of htdocs (DOCUMENT_ROOT). */
  readonly documentRoot: string
  readonly gate: Gate
  readonly commands: {commandFor(script: ScriptRoute): Promise<string[]>}
  readonly logger: Logger
  /** Live runs; shutdown kills what is left of them. */
  readonly runs: Set<{kill(reason: KillReason): void}>
  spawn(spec: RunSpec): ScriptProcess
  dispatch(req: IncomingMessage, res: ServerResponse, line: RequestLine): Promise<void>
}
