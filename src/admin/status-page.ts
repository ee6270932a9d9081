// The status page (Apache mod_status, for CGI): what runs now, what waits, what ran last, and the counters, as JSON
// and as one self-refreshing HTML page (plain HTML and CSS, no script, no external asset). Pure rendering.
import {escapeHtml} from '../html.js'

export interface StatusRun {
  readonly requestId: string
  readonly script: string
  readonly pid: number
  readonly uid: number | null
  readonly level: string
  readonly client: string
  readonly elapsedMs: number
  readonly bytesOut: number
}

export interface StatusFinishedRun {
  readonly at: string
  readonly requestId: string
  readonly script: string
  readonly outcome: string
  readonly killReason: string | null
  readonly limitHit: string | null
  readonly ms: number
  readonly bytesOut: number
  readonly warm: boolean
}

export interface Status {
  readonly version: string
  readonly level: string
  readonly levelDescription: string
  readonly startedAt: string
  readonly uptimeSeconds: number
  readonly draining: boolean
  readonly config: Readonly<Record<string, unknown>>
  readonly running: readonly StatusRun[]
  readonly queue: {readonly waiting: number; readonly running: number; readonly maxConcurrent: number; readonly maxQueued: number}
  readonly recent: readonly StatusFinishedRun[]
  readonly counters: Readonly<Record<string, number>>
}

/** Seconds between the page's own reloads. */
const REFRESH_SECONDS = 2
const STYLE = 'body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.5em}' +
  'table{border-collapse:collapse}th,td{padding:.2em .8em;text-align:left;border-bottom:1px solid #ddd;font-variant-numeric:tabular-nums}' +
  'td.n{text-align:right}.draining{color:#b00;font-weight:bold}.cut{color:#b00}code{font-size:.95em}'

// The status as an HTML page that reloads itself every few seconds.
export function renderStatusPage(status: Status): string {
  const rows = (cells: readonly string[][]) => cells.map((cell) => `<tr>${cell.join('')}</tr>`).join('\n')
  const td = (text: string | number, numeric = false) => `<td${numeric ? ' class="n"' : ''}>${escapeHtml(String(text))}</td>`
  const running = status.running.length === 0
    ? '<p>No script is running.</p>'
    : `<table><thead><tr><th>request</th><th>script</th><th>pid</th><th>uid</th><th>level</th><th>client</th><th>elapsed</th><th>bytes out</th></tr></thead><tbody>\n${rows(status.running.map((run) => [
      td(run.requestId), td(run.script), td(run.pid, true), td(run.uid ?? '-', true), td(run.level), td(run.client),
      td(`${(run.elapsedMs / 1000).toFixed(1)} s`, true), td(run.bytesOut, true),
    ]))}\n</tbody></table>`
  const recent = status.recent.length === 0
    ? '<p>No run has finished yet.</p>'
    : `<table><thead><tr><th>finished</th><th>request</th><th>script</th><th>outcome</th><th>kill</th><th>limit</th><th>ms</th><th>bytes out</th></tr></thead><tbody>\n${rows(status.recent.map((run) => [
      td(run.at), td(run.requestId), td(run.script), td(run.outcome + (run.warm ? ' (warm)' : '')),
      run.killReason ? `<td class="cut">${escapeHtml(run.killReason)}</td>` : td('-'), td(run.limitHit ?? '-'),
      td(run.ms, true), td(run.bytesOut, true),
    ]))}\n</tbody></table>`
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="refresh" content="${REFRESH_SECONDS}">`,
    '<meta name="viewport" content="width=device-width">',
    '<title>cgibox status</title>',
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    `<h1>cgibox ${escapeHtml(status.version)} status</h1>`,
    status.draining ? '<p class="draining">Draining: shutting down, no new requests should come here.</p>' : '',
    `<p>Sandbox <strong>${escapeHtml(status.level)}</strong>: <code>${escapeHtml(status.levelDescription)}</code></p>`,
    `<p>Up ${formatDuration(status.uptimeSeconds)} (since ${escapeHtml(status.startedAt)}). ` +
      `${status.queue.running} of ${status.queue.maxConcurrent} slots busy, ${status.queue.waiting} of ${status.queue.maxQueued} waiting.</p>`,
    '<h2>Running scripts</h2>',
    running,
    '<h2>Last finished runs</h2>',
    recent,
    '<h2>Counters</h2>',
    `<table><tbody>\n${rows(Object.entries(status.counters).map(([name, value]) => [td(name), td(value, true)]))}\n</tbody></table>`,
    '<h2>Configuration</h2>',
    `<table><tbody>\n${rows(Object.entries(status.config).map(([name, value]) => [td(name), `<td><code>${escapeHtml(JSON.stringify(value))}</code></td>`]))}\n</tbody></table>`,
    '<p><a href="?format=json">JSON</a> · <a href="metrics">metrics</a> · <a href="health">health</a></p>',
    '</body>',
    '</html>',
    '',
  ].join('\n')
}

function formatDuration(seconds: number): string {
  const whole = Math.floor(seconds)
  const parts = [[Math.floor(whole / 86_400), 'd'], [Math.floor(whole / 3600) % 24, 'h'], [Math.floor(whole / 60) % 60, 'min'], [whole % 60, 's']] as const
  return parts.filter(([value], index) => value > 0 || index === parts.length - 1).map(([value, unit]) => `${value} ${unit}`).join(' ')
}
