"""``python -m reconcile``: the same as the ``reconcile`` command."""

from reconcile.cli import process_main

process_main()
