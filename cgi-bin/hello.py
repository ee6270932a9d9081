#!/usr/bin/env python3
# Hello in Python: the same page as hello.sh.
import os
import sys

sys.stdout.write("Content-Type: text/plain; charset=utf-8\r\n\r\n")
sys.stdout.write("Hello from %s\n" % os.environ.get("SERVER_SOFTWARE", "a CGI server"))
