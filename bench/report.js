// What the bench measures, the goals of issue 9 for each, and the table that prints the figures as ratios.
export const SANDBOX_LEVELS = ['none', 'rlimit', 'bwrap']
const atEveryLevel = (ratio) => Object.fromEntries(SANDBOX_LEVELS.map((level) => [level, ratio]))

/** Requests/s workloads: each ratio is to the `baseline` host, and meets its goal when ≥ goal[level]. */
export const WORKLOADS = [
  {path: '/cgi-bin/hello.sh', name: 'hello.sh', title: 'hello.sh req/s', baseline: 'lighttpd', goal: {none: 0.7, bwrap: 0.4}},
  // ≥ 3× and 2× need warm Python (a config key `warmPython` that does not exist yet); printed as is until then.
  {path: '/cgi-bin/hello.py', name: 'hello.py', title: 'hello.py req/s', baseline: 'lighttpd', goal: {none: 3, rlimit: 3, bwrap: 2}},
  {path: '/index.html', name: 'index.html', title: 'index.html req/s', baseline: 'lighttpd', goal: atEveryLevel(0.5)},
  {path: '/1m.bin', name: '1 MiB', title: '1 MiB req/s', baseline: 'apache', goal: atEveryLevel(1.0)},
]
/** The 78 888 897-byte stream: seconds as a ratio to the script run alone, meets its goal when ≤ goal[level]. */
export const STREAM = {
  path: '/cgi-bin/big.py', script: 'big.py', bytes: 78_888_897, name: 'stream', title: '79 MB stream s', baseline: 'script', goal: atEveryLevel(1.1),
}
const BASELINE_LABELS = {lighttpd: 'lighttpd', apache: 'Apache', script: 'the script alone'}

// Prints one markdown table: a row per host ({name, label, level, rps: {path: {rps, errors}}, stream}), absolute
// figures with their ratio to the baseline, ✓/✗ where issue 9 sets a goal for the row's level; then the goals.
export function printTable(rows) {
  const byName = new Map(rows.map((row) => [row.name, row]))
  const header = [...WORKLOADS, STREAM].map((column) => `${column.title} (× ${BASELINE_LABELS[column.baseline]})`)
  console.log(`| host | ${header.join(' | ')} |`)
  console.log(`| --- |${' --- |'.repeat(header.length)}`)
  const problems = []
  for (const row of rows) {
    const cells = WORKLOADS.map((workload) => {
      const result = row.rps?.[workload.path]
      if (result === undefined) return ''
      if (result.errors) problems.push(`${row.label} ${workload.path}: ${result.errors}`)
      const base = byName.get(workload.baseline)?.rps?.[workload.path]?.rps
      return `${thousands(result.rps)}${result.errors ? '*' : ''}${ratio(result.rps, base, workload.goal[row.level], 'min')}`
    })
    cells.push(streamCell(row, byName.get(STREAM.baseline)?.stream?.seconds, problems))
    console.log(`| ${row.label} | ${cells.join(' | ')} |`)
  }
  console.log(`\n✓ meets its goal, ✗ misses it (issue 9): ${[...WORKLOADS, STREAM].map(describeGoal).join('; ')}.`)
  for (const problem of problems) console.log(`* ${problem}`)
}

// Seconds of the stream and their ratio to base; a failure or a wrong length is marked and listed in `problems`.
function streamCell(row, base, problems) {
  const {stream} = row
  if (stream === undefined) return ''
  if (stream.failed !== undefined) {
    problems.push(`${row.label} ${STREAM.path}: failed: ${stream.failed}`)
    return 'failed*'
  }
  const wrongLength = stream.bytes !== null && stream.bytes !== STREAM.bytes
  if (wrongLength) problems.push(`${row.label} ${STREAM.path}: ${stream.bytes} bytes, expected ${STREAM.bytes}`)
  return `${stream.seconds.toFixed(2)}${wrongLength ? '*' : ''}${ratio(stream.seconds, base, STREAM.goal[row.level], 'max')}`
}

// "hello.py ≥ 3× lighttpd at none and rlimit, ≥ 2× at bwrap".
function describeGoal(column) {
  const levels = new Map()
  for (const [level, goal] of Object.entries(column.goal)) levels.set(goal, [...levels.get(goal) ?? [], level])
  const parts = [...levels].map(([goal, names]) => `${column === STREAM ? '≤' : '≥'} ${goal}×` +
    (names.length === SANDBOX_LEVELS.length ? '' : ` at ${names.join(' and ')}`))
  return `${column.name} ${parts.join(', ').replace('×', `× ${BASELINE_LABELS[column.baseline]}`)}`
}

// " (0.52× ✓)": value as a ratio to base, judged against goal (a lower bound, or an upper one for 'max').
function ratio(value, base, goal, kind) {
  if (!base) return ''
  const r = value / base
  const mark = goal === undefined ? '' : (kind === 'min' ? r >= goal : r <= goal) ? ' ✓' : ' ✗'
  return ` (${r.toFixed(2)}×${mark})`
}

function thousands(n) {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ' ')
}
