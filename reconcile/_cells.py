"""Text as a spreadsheet cell carries it (SpreadsheetML's ``_xHHHH_`` escapes): one rule
for every writer of cells, the audit workbook's and the cleaned workbook's."""

from __future__ import annotations

import polars as pl

__all__ = ["NEEDS_ESCAPE", "excel_escaped", "excel_escaped_text"]

# What a cell's text cannot carry as it is: characters XML 1.0 cannot hold, a CR (an XML
# reader turns it into LF), and text that reads as SpreadsheetML's own escape
# (``_x0041_`` is read as "A"). All are written as ``_xHHHH_`` escapes, which Excel,
# LibreOffice, openpyxl and calamine read back as the character: a contact id arrives
# in the workbook as it is in the file. One pattern for Python's re (openpyxl cells)
# and polars (cells built as XML).
NEEDS_ESCAPE = r"[\x00-\x08\x0b-\x0d\x0e-\x1f\ufffe\uffff]|_x[0-9A-Fa-f]{4}_"
_ESCAPED_CHARACTERS = [
    chr(code) for code in (*range(0x00, 0x09), 0x0B, 0x0C, 0x0D, *range(0x0E, 0x20))
]
# the two non-characters no reader gives back from an escape: shown as U+FFFD
_NONCHARACTERS = "[\ufffe\uffff]"


def excel_escaped(text: pl.Expr) -> pl.Expr:
    """``text`` as a cell carries it: each ``_x`` has its underscore escaped (every one,
    so that overlapping look-alikes such as ``_x005F_x0041_`` come back whole), then each
    character of ``_ESCAPED_CHARACTERS`` becomes its ``_xHHHH_`` escape."""
    return (
        text.str.replace_all("_x", "_x005F_x", literal=True)
        .str.replace_many(
            _ESCAPED_CHARACTERS, [f"_x{ord(char):04X}_" for char in _ESCAPED_CHARACTERS]
        )
        .str.replace_all(_NONCHARACTERS, "\ufffd")
    )


def excel_escaped_text(value: str) -> str:
    """`excel_escaped` for one string (the cells openpyxl writes)."""
    return str(pl.select(excel_escaped(pl.lit(value, pl.String))).item())
