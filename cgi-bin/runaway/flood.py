#!/usr/bin/env python3
# A runaway script: it writes as fast as it can, forever. Its location in cgibox.json caps its output at 1 MiB; then
# cgibox kills the whole run and cuts the response off, and the run record says kill reason `output-cap`.
import sys

sys.stdout.write("Content-Type: text/plain; charset=utf-8\r\n\r\n")
sys.stdout.flush()
line = b"flood " * 10 + b"\n"
chunk = line * 1000
while True:
    sys.stdout.buffer.write(chunk)
