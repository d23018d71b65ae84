"""``python -m reconcile``: the same as the ``reconcile`` command."""

from reconcile._process import process_main

process_main()
