"""The ``reconcile`` process: the command line, then an exit that skips the teardown.

Two tricks, measured by the benchmark (docs/performance.md), live here and nowhere else:

- ``gc.freeze()``: the objects of the modules just imported are not garbage, so the
  collector stops walking them on every collection of a large run;
- ``os._exit``: a large run ends holding hundreds of megabytes of frames and arrays,
  and freeing them one by one takes a noticeable part of a second that the system
  spends anyway when the process ends. Every output is committed (or discarded) when
  the command returns, so only the standard streams are left to flush.
"""

from __future__ import annotations

import gc
import os
import sys
from contextlib import suppress


def process_main() -> None:
    """Run the command line as the ``reconcile`` console script does."""
    from reconcile.cli import main

    gc.freeze()
    try:
        main()
        code: object = 0
    except SystemExit as stop:
        code = stop.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        sys.stderr.write(f"{code}\n")  # what sys.exit("message") would print
        code = 1
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a closed pipe or stream
            stream.flush()
    os._exit(code)
