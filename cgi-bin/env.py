#!/usr/bin/env python3
# Environment viewer: every variable the script received (RFC 3875 meta-variables and HTTP_*).
import html
import os
import sys

rows = "\n".join(
    "<tr><th>%s</th><td>%s</td></tr>" % (html.escape(key), html.escape(os.environ[key]))
    for key in sorted(os.environ)
)
sys.stdout.write("Content-Type: text/html; charset=utf-8\r\n\r\n")
sys.stdout.write("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>CGI environment</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/demo.css">
<style>th,td{font-family:monospace}</style></head>
<body><h1>CGI environment</h1>
<p>cgibox builds this environment from nothing for each run: the RFC 3875 variables, one <code>HTTP_*</code> per
request header, and safe defaults; nothing of its own. Try another <code>PATH_INFO</code> or query string in the URL.</p>
<table id="env">
%s
</table>
<nav><a href="/">back to the demo</a></nav></body></html>
""" % rows)
