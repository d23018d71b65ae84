"""`CleanOptions`: everything `clean` and `run` can be told, in one object.

It is built from the command line (`reconcile clean`) or from a run config's
``[[inputs]]`` table, and checks itself where it is built: an `OptionError` from
``CleanOptions(...)`` carries the option's name (``consent_timezone``), so that the
command line says ``--consent-timezone 'X' ...`` and a run config says
``[inputs][2].consent_timezone: 'X' ...``. No other module checks an option.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconcile.columns import ColumnChoice
from reconcile.consent import check_consent_format, validate_timezone
from reconcile.errors import OptionError
from reconcile.phones import validate_region
from reconcile.verdicts import DEFAULT_ACTIONS, DELIMITER_NAMES, MODES, resolve_actions

__all__ = ["CleanOptions", "as_delimiter"]


def as_delimiter(text: str | None) -> str | None:
    """A delimiter as the command line and run configs write it: the character, or
    ``tab`` (any case) for a tab."""
    if text is not None and text.strip().lower() == "tab":
        return "\t"
    return text


@dataclass(frozen=True)
class CleanOptions:
    """Everything `reconcile clean` (and each input of `reconcile run`) can be told.

    ``actions`` may name only the verdicts whose action changes (``{"unverified":
    "remove"}``); the object holds the whole map.
    ``delimiter`` may be ``tab``. Building it raises OptionError naming the option.
    """

    columns: ColumnChoice = field(default_factory=ColumnChoice)
    mode: str = "strip"
    actions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_ACTIONS))
    default_region: str = "US"
    consent_timezone: str = "UTC"
    consent_format: str | None = None
    sheet: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    out_dir: Path | None = None
    force: bool = False
    report: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise OptionError.of("mode", self.mode, f"is not one of {', '.join(MODES)}.")
        # frozen: the normalized values are set once, here
        object.__setattr__(self, "default_region", validate_region(self.default_region))
        validate_timezone(self.consent_timezone)
        if self.consent_format is not None:
            check_consent_format(self.consent_format)
        delimiter = as_delimiter(self.delimiter)
        if delimiter is not None and delimiter not in {as_delimiter(n) for n in DELIMITER_NAMES}:
            raise OptionError.of(
                "delimiter",
                self.delimiter,
                f"is not one of {' '.join(DELIMITER_NAMES[:-1])} or {DELIMITER_NAMES[-1]}.",
            )
        object.__setattr__(self, "delimiter", delimiter)
        object.__setattr__(self, "actions", resolve_actions(self.actions))

    def described(self) -> dict[str, str]:
        """The options that shape verdicts and outputs, for the audit trail."""
        return {
            "mode": self.mode,
            "actions": ", ".join(f"{verdict}={action}" for verdict, action in self.actions.items()),
            "default_region": self.default_region,
            "consent_timezone": self.consent_timezone,
            "consent_format": self.consent_format or "(ISO 8601, M/D/YYYY)",
            "sheet": self.sheet or "(first visible)",
            "encoding": self.encoding or "(detected)",
            "delimiter": repr(self.delimiter) if self.delimiter else "(detected)",
            "columns": f"phone={', '.join(self.columns.phones) or '(every phone column)'}, "
            f"consent={self.columns.consent or '(guessed)'}, id={self.columns.id or '(guessed)'}",
        }
