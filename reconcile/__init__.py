"""reconcile: keep SMS and voice contact lists safe to message.

The public API is this module; the modules behind it are private in spirit. What
reaches the network (`fetch`, `run_once`) is imported on first use, so that a
command that never fetches does not pay for the HTTP stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from reconcile._text import first_line
from reconcile._version import version
from reconcile.check import check_number
from reconcile.clean import clean_files, reconcile_file
from reconcile.columns import ColumnChoice, describe_phone_columns, split_column_names
from reconcile.consent import check_since
from reconcile.contacts import read_contacts
from reconcile.errors import (
    ApiError,
    ConfigError,
    InputError,
    LedgerError,
    OptionError,
    OutputError,
    ReconcileError,
)
from reconcile.history import History
from reconcile.ledger import Ledger
from reconcile.lifecycle import EXPIRY_WARNING
from reconcile.options import CleanOptions
from reconcile.results import CleanResult
from reconcile.settings import (
    SOURCES,
    ApiSettings,
    DayListSettings,
    api_settings_from_environment,
    day_list_settings,
    resolve_data_dir,
)
from reconcile.verdicts import (
    ACTIONS,
    DEFAULT_ACTIONS,
    DELIMITER_NAMES,
    MODES,
    VERDICTS,
    decide,
)

if TYPE_CHECKING:
    from reconcile.config import RunConfig, load_config
    from reconcile.history_files import load_change_files
    from reconcile.ledger_import import import_change_files, import_day_lists
    from reconcile.ledger_io import export_events, ledger_status, rebuild_ledger, verify_ledger
    from reconcile.runs import run_once
    from reconcile.sync import fetch, fetch_with_settings
    from reconcile.sync_sources import fetch_sources, sources_to_fetch

# The library: the jobs, the objects they take and give, the vocabulary of verdicts and
# actions, and the branches of the exception tree (every leaf is in reconcile.errors,
# every result's type in the module that makes it).
__all__ = [
    "ACTIONS",
    "DEFAULT_ACTIONS",
    "DELIMITER_NAMES",
    "EXPIRY_WARNING",
    "MODES",
    "SOURCES",
    "VERDICTS",
    "ApiError",
    "ApiSettings",
    "CleanOptions",
    "CleanResult",
    "ColumnChoice",
    "ConfigError",
    "DayListSettings",
    "History",
    "InputError",
    "Ledger",
    "LedgerError",
    "OptionError",
    "OutputError",
    "ReconcileError",
    "RunConfig",
    "__version__",
    "api_settings_from_environment",
    "check_number",
    "check_since",
    "clean_files",
    "day_list_settings",
    "decide",
    "describe_phone_columns",
    "export_events",
    "fetch",
    "fetch_sources",
    "fetch_with_settings",
    "first_line",
    "import_change_files",
    "import_day_lists",
    "ledger_status",
    "load_change_files",
    "load_config",
    "read_contacts",
    "rebuild_ledger",
    "reconcile_file",
    "resolve_data_dir",
    "run_once",
    "sources_to_fetch",
    "split_column_names",
    "verify_ledger",
    "version",
]

# Imported on first use: the network's modules bring httpx and tenacity with them; the
# config's, the ledger's import and export are not what a clean needs to start.
_ON_FIRST_USE = {
    "RunConfig": "reconcile.config",
    "load_config": "reconcile.config",
    "load_change_files": "reconcile.history_files",
    "import_change_files": "reconcile.ledger_import",
    "import_day_lists": "reconcile.ledger_import",
    "export_events": "reconcile.ledger_io",
    "ledger_status": "reconcile.ledger_io",
    "rebuild_ledger": "reconcile.ledger_io",
    "verify_ledger": "reconcile.ledger_io",
    "run_once": "reconcile.runs",
    "fetch": "reconcile.sync",
    "fetch_with_settings": "reconcile.sync",
    "fetch_sources": "reconcile.sync_sources",
    "sources_to_fetch": "reconcile.sync_sources",
}


def __getattr__(name: str) -> object:
    if name == "__version__":
        return version()
    if name in _ON_FIRST_USE:
        return getattr(importlib.import_module(_ON_FIRST_USE[name]), name)
    raise AttributeError(f"module 'reconcile' has no attribute {name!r}")
