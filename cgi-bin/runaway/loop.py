#!/usr/bin/env python3
# A runaway script: it never ends. Its location in cgibox.json gives it a 3 s deadline; then cgibox kills the whole
# run and cuts the response off, and the run record says kill reason `deadline`.
import sys
import time

sys.stdout.write("Content-Type: text/plain; charset=utf-8\r\n\r\n")
tick = 0
while True:
    tick += 1
    sys.stdout.write("tick %d: still running\n" % tick)
    sys.stdout.flush()
    time.sleep(0.5)
