// A TypeScript page: cgibox transpiles it once per change and runs it with node.
interface Page {
  title: string
  body: string
}

const page: Page = {
  title: 'TypeScript page',
  body: `Generated ${new Date().toISOString()} by Node ${process.version} for ${process.env.REMOTE_ADDR ?? 'someone'}`,
}

process.stdout.write('Content-Type: text/html; charset=utf-8\r\n\r\n')
process.stdout.write(`<!doctype html><html><head><meta charset="utf-8"><title>${page.title}</title></head>
<body><h1>${page.title}</h1><p>${page.body}</p><p><a href="/">back</a></p></body></html>
`)
