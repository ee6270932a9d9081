// What a script run needs from the server: settings, the gate, the command resolver, the launch function, the log
// and the dispatcher (for local redirects).
import type {IncomingMessage, ServerResponse} from 'node:http'
import type {Config} from '../config.js'
import type {Gate} from '../limits/concurrency.js'
import type {BodySpooler} from '../limits/body-limit.js'
import type {Logger} from '../log.js'
import type {Launch} from '../process/launch.js'
import type {ScriptRoute} from '../route.js'
import type {Command} from './interpreter.js'

// The method and target a request is served as; a local redirect changes both (RFC 3875 §6.2.2).
export interface RequestLine {
  readonly method: string
  /** Raw request target: path and query, undecoded. */
  readonly url: string
  /** Local redirects followed so far. */
  readonly redirects: number
  readonly requestId: string
  /** The client's address: the peer, or what a trusted proxy's X-Forwarded-For names. */
  readonly client: string
  /** What the access log and metrics learn of the request while it is served. */
  readonly state: RequestState
  /** Aborted when the client goes away before its response is finished: every run of every hop dies with it. */
  readonly clientGone: AbortSignal
  /** The user a location's Basic auth let in, or null. */
  readonly remoteUser: string | null
}

// Filled in while a request is served: what served it, and why a response that had started was cut off.
export interface RequestState {
  /** static, cache, directory, redirect, upload, script, admin; error when nothing else answered. */
  kind: string
  /** deadline, output-cap, client-gone, error, a signal…; null for a response that ended cleanly. */
  cut: string | null
}

export interface CgiContext {
  readonly config: Config
  /** The real path of htdocs (DOCUMENT_ROOT). */
  readonly documentRoot: string
  readonly gate: Gate
  readonly commands: {commandFor(script: ScriptRoute): Promise<Command>}
  readonly logger: Logger
  readonly spooler: BodySpooler
  readonly launch: Launch
  dispatch(req: IncomingMessage, res: ServerResponse, line: RequestLine): Promise<void>
}
