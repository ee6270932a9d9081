#!/usr/bin/env python3
# A form that POSTs to itself and shows what it received (urlencoded body read from stdin).
import html
import os
import sys
import urllib.parse

fields = {}
received = 0
if os.environ.get("REQUEST_METHOD") == "POST":
    length = int(os.environ.get("CONTENT_LENGTH") or 0)
    raw = sys.stdin.buffer.read(length)
    received = len(raw)
    fields = urllib.parse.parse_qs(raw.decode("utf-8", "replace"))

name = fields.get("name", [""])[0]
message = fields.get("message", [""])[0]
answer = ""
if received:
    answer = """<h2>You sent</h2>
<table><tr><th>name</th><td id="sent-name">%s</td></tr><tr><th>message</th><td id="sent-message">%s</td></tr></table>
<p class="note">%d bytes of <code>%s</code> on stdin, as <code>CONTENT_LENGTH</code> said.</p>""" % (
        html.escape(name), html.escape(message), received, html.escape(os.environ.get("CONTENT_TYPE", "")))

sys.stdout.write("Content-Type: text/html; charset=utf-8\r\n\r\n")
sys.stdout.write("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Form</title><link rel="icon" href="data:,"><link rel="stylesheet" href="/demo.css"></head>
<body><h1>Guest form</h1>
<p>The form POSTs to this script, which reads the urlencoded body from its stdin.</p>
<form method="post" action="%s">
<p><label>Name <input name="name"></label></p>
<p><label>Message <input name="message" size="40"></label></p>
<p><button type="submit">Send</button></p>
</form>
%s
<nav><a href="/">back to the demo</a></nav></body></html>
""" % (html.escape(os.environ.get("SCRIPT_NAME", "")), answer))
