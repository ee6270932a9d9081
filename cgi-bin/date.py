#!/usr/bin/env python3
# The classic dynamic page: generated on every request, in UTC and in the server's zone (cgibox passes its TZ).
import datetime
import html
import sys

now = datetime.datetime.now(datetime.timezone.utc)
local = now.astimezone()
sys.stdout.write("Content-Type: text/html; charset=utf-8\r\n")
sys.stdout.write("Cache-Control: no-store\r\n\r\n")
sys.stdout.write("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Generated page (Python)</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/demo.css"></head>
<body><h1>Generated page (Python)</h1>
<p class="big">Generated <time datetime="%s">%s</time></p>
<p>Server time: %s. Python %s computed this page for this request: <a href="">reload</a> and the time moves on.</p>
<nav><a href="/time.ts">The same page in TypeScript</a> · <a href="/">back to the demo</a></nav>
</body></html>
""" % (
    now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    html.escape("%s %d %s UTC" % (now.strftime("%A"), now.day, now.strftime("%B %Y, %H:%M:%S"))),
    html.escape(local.strftime("%H:%M:%S %Z (UTC%z)")),
    html.escape(sys.version.split()[0]),
))
