#!/bin/sh
# The smallest CGI script: a header block, a blank line, a body.
printf 'Content-Type: text/plain; charset=utf-8\r\n\r\nHello from %s\n' "$SERVER_SOFTWARE"
