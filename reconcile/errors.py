"""The one exception tree of reconcile; the CLI turns it into one line and exit 1.

    ReconcileError                  anything reconcile reports to its user
    ├── InputError                  a contact file cannot be used as given
    │   ├── UnsupportedFormatError  .xls, .ods, or not a CSV/XLSX at all
    │   ├── EncodingError           neither UTF-8 nor Windows-1252 (hint: --encoding)
    │   ├── MalformedCSVError       ragged rows, stray quotes, NUL bytes (names the line)
    │   └── ColumnError             unknown, ambiguous or duplicate column (lists the columns)
    ├── ChangeFileError             a change file (--changes) cannot be read
    ├── OptionError                 an option value that cannot work (time zone, region)
    ├── ConfigError                 reconcile.toml is missing, malformed or unsafe
    ├── OutputError                 an output exists (hint: --force) or cannot be written
    ├── ApiError                    the Infobip API failed after bounded retries
    │   ├── AuthError               401/403: wrong key, or the product is not enabled
    │   ├── ReportGoneError         404 on a listed report: deleted (expired) upstream
    │   └── MalformedResponseError  the answer is not the contract's JSON shape
    ├── LedgerError                 the local ledger is locked, damaged or unreadable
    │   └── LedgerBusyError         another reconcile holds the ledger's lock
    └── EngineError                 Spark is missing (hint: the spark extra) or failed

Every message is a full sentence that names the file, row or column at fault and,
where there is one, what to do about it.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "AuthError",
    "ChangeFileError",
    "ColumnError",
    "ConfigError",
    "EncodingError",
    "EngineError",
    "InputError",
    "LedgerBusyError",
    "LedgerError",
    "MalformedCSVError",
    "MalformedResponseError",
    "OptionError",
    "OutputError",
    "ReconcileError",
    "ReportGoneError",
    "UnsupportedFormatError",
]


class ReconcileError(Exception):
    """Base of every error reconcile reports to its user."""


class InputError(ReconcileError):
    """A contact file cannot be used as given."""


class UnsupportedFormatError(InputError):
    """The file is not a CSV or an XLSX workbook reconcile can read."""


class EncodingError(InputError):
    """The file is neither UTF-8 nor Windows-1252 text."""


class MalformedCSVError(InputError):
    """The CSV breaks its own structure: ragged rows, stray quotes, NUL bytes."""


class ColumnError(InputError):
    """A column named by an option (or guessed) is missing, ambiguous or duplicated."""


class ChangeFileError(ReconcileError):
    """A change file given with --changes cannot be read."""


class OptionError(ReconcileError):
    """An option value that cannot work. Built with `of`, it knows the option's name as
    a run config spells it (``consent_timezone``) and what is wrong without the flag, so
    that `reconcile run` names the config key instead."""

    def __init__(
        self, message: str, *, option: str | None = None, detail: str | None = None
    ) -> None:
        super().__init__(message)
        self.option = option
        self.detail = detail or message

    @classmethod
    def of(cls, option: str, value: object, problem: str, key: str | None = None) -> OptionError:
        """``--consent-timezone 'X' <problem>`` for the option ``consent_timezone`` (``key``:
        its name in a run config, when that differs: ``actions.unverified``)."""
        detail = f"{value!r} {problem}"
        return cls(f"--{option.replace('_', '-')} {detail}", option=key or option, detail=detail)


class OutputError(ReconcileError):
    """An output file exists already or cannot be written."""


class ApiError(ReconcileError):
    """The Infobip API failed, after the retries that temporary failures deserve."""


class AuthError(ApiError):
    """401 or 403: the key is wrong or revoked, or the product is not enabled."""


class ReportGoneError(ApiError):
    """404 on a report that was listed: it was deleted (expired) upstream."""


class MalformedResponseError(ApiError):
    """The API answered with something that is not the contract's JSON shape."""


class LedgerError(ReconcileError):
    """The local ledger is damaged or cannot be read or written."""


class LedgerBusyError(LedgerError):
    """Another reconcile process holds the ledger's lock."""


class ConfigError(ReconcileError):
    """The run configuration (reconcile.toml) is missing, malformed or unsafe."""


class EngineError(ReconcileError):
    """The Spark engine cannot run: pyspark is not installed, or Spark itself failed."""
