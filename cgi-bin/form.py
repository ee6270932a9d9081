#!/usr/bin/env python3
# A form that POSTs to itself and shows what it received (urlencoded body read from stdin).
import html
import os
import sys
import urllib.parse

fields = {}
if os.environ.get("REQUEST_METHOD") == "POST":
    length = int(os.environ.get("CONTENT_LENGTH") or 0)
    body = sys.stdin.buffer.read(length).decode("utf-8", "replace")
    fields = urllib.parse.parse_qs(body)

name = fields.get("name", [""])[0]
message = fields.get("message", [""])[0]
answer = ""
if name or message:
    answer = "<h2>You sent</h2><p><b>%s</b>: %s</p>" % (html.escape(name), html.escape(message))

sys.stdout.write("Content-Type: text/html; charset=utf-8\r\n\r\n")
sys.stdout.write("""<!doctype html>
<html><head><meta charset="utf-8"><title>Form</title></head>
<body><h1>Guest form</h1>
<form method="post" action="%s">
<p><label>Name <input name="name"></label></p>
<p><label>Message <input name="message"></label></p>
<p><button type="submit">Send</button></p>
</form>
%s
<p><a href="/">back</a></p></body></html>
""" % (html.escape(os.environ.get("SCRIPT_NAME", "")), answer))
