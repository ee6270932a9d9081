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
<html><head><meta charset="utf-8"><title>CGI environment</title>
<style>th{text-align:left;padding-right:1em;font-family:monospace}td{font-family:monospace}</style></head>
<body><h1>CGI environment</h1><table>
%s
</table><p><a href="/">back</a></p></body></html>
""" % rows)
