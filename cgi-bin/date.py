#!/usr/bin/env python3
# The classic dynamic page: generated on every request.
import datetime
import html
import sys

now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
sys.stdout.write("Content-Type: text/html; charset=utf-8\r\n\r\n")
sys.stdout.write("""<!doctype html>
<html><head><meta charset="utf-8"><title>Generated page</title></head>
<body><h1>Generated %s</h1><p><a href="/">back</a></p></body></html>
""" % html.escape(now))
