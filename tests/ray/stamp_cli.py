"""A wrapper that appends ``<time> <pid> <prompt>`` to STAMPS, then execs the fake CLI.

``python stamp_cli.py STAMPS PROGRAM ARGS... PROMPT``: the rate-limit scenario counts the
calls started across the fleet during an announced window from these lines.
"""

import os
import sys
import time

stamps, argv = sys.argv[1], sys.argv[2:]
with open(stamps, "a") as f:
    f.write(f"{time.time()} {os.getpid()} {argv[-1]}\n")
os.execv(argv[0], argv)
