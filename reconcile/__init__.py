"""reconcile: keep SMS and voice contact lists safe to message.

The public API is small; the modules behind it are private in spirit.
"""

from __future__ import annotations

# Kept equal to pyproject.toml's version by a test; reading it from the installed
# metadata would cost every command a twentieth of a second of start-up.
__version__ = "0.1.0"

from reconcile.changefiles import load_change_files
from reconcile.clean import CleanOptions, CleanResult, clean_files, reconcile_file
from reconcile.contacts import ColumnChoice, read_contacts
from reconcile.errors import (
    ChangeFileError,
    ColumnError,
    EncodingError,
    InputError,
    MalformedCSVError,
    OptionError,
    OutputError,
    ReconcileError,
    UnsupportedFormatError,
)
from reconcile.history import Coverage, History, compute_coverage
from reconcile.verdicts import decide

__all__ = [
    "ChangeFileError",
    "CleanOptions",
    "CleanResult",
    "ColumnChoice",
    "ColumnError",
    "Coverage",
    "EncodingError",
    "History",
    "InputError",
    "MalformedCSVError",
    "OptionError",
    "OutputError",
    "ReconcileError",
    "UnsupportedFormatError",
    "__version__",
    "clean_files",
    "compute_coverage",
    "decide",
    "load_change_files",
    "read_contacts",
    "reconcile_file",
]
