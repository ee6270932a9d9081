// A TypeScript page: cgibox transpiles it once per change and runs it with node, on every request.
interface Page {
  readonly title: string
  readonly generated: Date
}

const page: Page = {title: 'Generated page (TypeScript)', generated: new Date()}
const iso = page.generated.toISOString().replace(/\.\d+Z$/, 'Z')
const shown = new Intl.DateTimeFormat('en-GB', {dateStyle: 'full', timeStyle: 'medium', timeZone: 'UTC'}).format(page.generated)

process.stdout.write('Content-Type: text/html; charset=utf-8\r\nCache-Control: no-store\r\n\r\n')
process.stdout.write(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>${page.title}</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/demo.css"></head>
<body><h1>${page.title}</h1>
<p class="big">Generated <time datetime="${iso}">${shown} UTC</time></p>
<p>Node ${process.version} ran this page for ${process.env.REMOTE_ADDR ?? 'someone'}: <a href="">reload</a> and the time moves on.</p>
<nav><a href="/cgi-bin/date.py">The same page in Python</a> · <a href="/">back to the demo</a></nav>
</body></html>
`)
