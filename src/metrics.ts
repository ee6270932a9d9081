// Prometheus metrics of one cgibox (prom-client, a registry of its own so several servers can share a process):
// requests by route kind and status, runs by outcome, kill reason and limit hit, run durations, body bytes both
// ways, the gate's queue and running runs, rejections, the static cache, launcher restarts, and Node's process
// metrics. Every name starts with cgibox_ (the process_* and nodejs_* defaults excepted).
import {Counter, Gauge, Histogram, Registry, collectDefaultMetrics} from 'prom-client'
import type {RunRecord} from './log.js'

export interface Metrics {
  readonly registry: Registry
  request(kind: string, status: number, bodyBytes: number): void
  runStarted(): void
  runFinished(record: RunRecord): void
  rejected(reason: 'busy' | 'spool'): void
  staticCache(hit: boolean): void
}

export interface MetricsSources {
  /** Scripts waiting for a slot. */
  queued(): number
  /** Runs alive now. */
  running(): number
  /** How often the launcher was restarted. */
  launcherRestarts(): number
}

// Creates the registry and its instruments; gauges read their sources when scraped.
export function createMetrics(sources: MetricsSources): Metrics {
  const registry = new Registry()
  collectDefaultMetrics({register: registry})
  const requests = new Counter({name: 'cgibox_requests_total', help: 'Requests answered, by route kind and status', labelNames: ['kind', 'status'], registers: [registry]})
  const responseBytes = new Counter({name: 'cgibox_response_body_bytes_total', help: 'Response body bytes sent', registers: [registry]})
  const runsStarted = new Counter({name: 'cgibox_runs_started_total', help: 'Script runs started', registers: [registry]})
  const runsFinished = new Counter({
    name: 'cgibox_runs_finished_total', help: 'Script runs over, by outcome (exit, signal), kill reason and limit hit',
    labelNames: ['outcome', 'kill_reason', 'limit', 'warm'], registers: [registry],
  })
  const runSeconds = new Histogram({
    name: 'cgibox_run_duration_seconds', help: 'Duration of script runs', registers: [registry],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
  })
  const runBytesIn = new Counter({name: 'cgibox_run_stdin_bytes_total', help: 'Request body bytes fed to scripts', registers: [registry]})
  const runBytesOut = new Counter({name: 'cgibox_run_stdout_bytes_total', help: 'Bytes scripts wrote to stdout (headers included)', registers: [registry]})
  const rejections = new Counter({name: 'cgibox_rejections_total', help: '503 answers: no free slot (busy) or no spool budget (spool)', labelNames: ['reason'], registers: [registry]})
  const cache = new Counter({name: 'cgibox_static_cache_requests_total', help: 'Static file requests answered from memory (hit) or from disk (miss)', labelNames: ['result'], registers: [registry]})
  new Gauge({name: 'cgibox_queue_length', help: 'Scripts waiting for a slot', registers: [registry], collect() { this.set(sources.queued()) }})
  new Gauge({name: 'cgibox_runs_running', help: 'Script runs alive now', registers: [registry], collect() { this.set(sources.running()) }})
  new Gauge({name: 'cgibox_launcher_restarts', help: 'Times the launcher had to be started again', registers: [registry], collect() { this.set(sources.launcherRestarts()) }})
  return {
    registry,
    request(kind, status, bodyBytes) {
      requests.inc({kind, status: String(status)})
      responseBytes.inc(bodyBytes)
    },
    runStarted() {
      runsStarted.inc()
    },
    runFinished(record) {
      runsFinished.inc({
        outcome: record.signal ? 'signal' : 'exit', kill_reason: record.killReason ?? '', limit: record.limitHit ?? '',
        warm: record.warm ? 'yes' : 'no',
      })
      runSeconds.observe(record.ms / 1000)
      runBytesIn.inc(record.bytesIn)
      runBytesOut.inc(record.bytesOut)
    },
    rejected(reason) {
      rejections.inc({reason})
    },
    staticCache(hit) {
      cache.inc({result: hit ? 'hit' : 'miss'})
    },
  }
}
