"""reconcile: keep SMS and voice contact lists safe to message.

The public API is this module; the modules behind it are private in spirit. What
reaches the network (`fetch`, `run_once`) is imported on first use, so that a
command that never fetches does not pay for the HTTP stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from reconcile import printed
from reconcile._version import version
from reconcile.changefiles import load_change_files
from reconcile.check import CheckAnswer, check_number, phone_key
from reconcile.clean import (
    CleanOptions,
    CleanResult,
    CleanSummary,
    as_delimiter,
    as_mode,
    clean_files,
    reconcile_file,
)
from reconcile.columns import ColumnChoice, split_column_names
from reconcile.config import InputConfig, RunConfig, load_config
from reconcile.consent import check_since
from reconcile.contacts import ContactTable, read_contacts
from reconcile.errors import (
    ApiError,
    AuthError,
    ChangeFileError,
    ColumnError,
    ConfigError,
    EncodingError,
    InputError,
    LedgerBusyError,
    LedgerError,
    MalformedCSVError,
    MalformedResponseError,
    OptionError,
    OutputError,
    ReconcileError,
    ReportGoneError,
    UnsupportedFormatError,
)
from reconcile.history import Coverage, History, compute_coverage
from reconcile.ledger import Ledger
from reconcile.ledger_io import (
    ImportSummary,
    LedgerStatus,
    RebuildSummary,
    VerifyReport,
    export_events,
    import_change_files,
    ledger_status,
    rebuild_ledger,
    verify_ledger,
)
from reconcile.settings import ApiSettings, api_settings_from_environment, resolve_data_dir
from reconcile.verdicts import (
    ACTIONS,
    DEFAULT_ACTIONS,
    DELIMITER_NAMES,
    MODES,
    VERDICTS,
    decide,
    resolve_actions,
)

if TYPE_CHECKING:
    from reconcile.runs import Attention, RunChanges, RunReport, run_once
    from reconcile.sync import (
        FetchResult,
        FetchSummary,
        ProgressEvent,
        fetch,
        fetch_with_settings,
    )

__all__ = [
    "ACTIONS",
    "DEFAULT_ACTIONS",
    "DELIMITER_NAMES",
    "MODES",
    "VERDICTS",
    "ApiError",
    "ApiSettings",
    "Attention",
    "AuthError",
    "ChangeFileError",
    "CheckAnswer",
    "CleanOptions",
    "CleanResult",
    "CleanSummary",
    "ColumnChoice",
    "ColumnError",
    "ConfigError",
    "ContactTable",
    "Coverage",
    "EncodingError",
    "FetchResult",
    "FetchSummary",
    "History",
    "ImportSummary",
    "InputConfig",
    "InputError",
    "Ledger",
    "LedgerBusyError",
    "LedgerError",
    "LedgerStatus",
    "MalformedCSVError",
    "MalformedResponseError",
    "OptionError",
    "OutputError",
    "ProgressEvent",
    "RebuildSummary",
    "ReconcileError",
    "ReportGoneError",
    "RunChanges",
    "RunConfig",
    "RunReport",
    "UnsupportedFormatError",
    "VerifyReport",
    "__version__",
    "api_settings_from_environment",
    "as_delimiter",
    "as_mode",
    "check_number",
    "check_since",
    "clean_files",
    "compute_coverage",
    "decide",
    "export_events",
    "fetch",
    "fetch_with_settings",
    "import_change_files",
    "ledger_status",
    "load_change_files",
    "load_config",
    "phone_key",
    "printed",
    "read_contacts",
    "rebuild_ledger",
    "reconcile_file",
    "resolve_actions",
    "resolve_data_dir",
    "run_once",
    "split_column_names",
    "verify_ledger",
    "version",
]

# Imported on first use: these bring httpx and tenacity with them.
_ON_FIRST_USE = {
    "Attention": "reconcile.runs",
    "RunChanges": "reconcile.runs",
    "RunReport": "reconcile.runs",
    "run_once": "reconcile.runs",
    "FetchResult": "reconcile.sync",
    "FetchSummary": "reconcile.sync",
    "ProgressEvent": "reconcile.sync",
    "fetch": "reconcile.sync",
    "fetch_with_settings": "reconcile.sync",
}


def __getattr__(name: str) -> object:
    if name == "__version__":
        return version()
    if name in _ON_FIRST_USE:
        return getattr(importlib.import_module(_ON_FIRST_USE[name]), name)
    raise AttributeError(f"module 'reconcile' has no attribute {name!r}")
