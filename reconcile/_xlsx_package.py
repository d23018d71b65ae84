"""The cleaned workbook written as the input workbook with only the decided changes.

Every part of the package is copied as it is (hidden sheets, styles, number formats,
column widths and hidden columns, panes, validation, defined names), except the chosen
sheet's XML, in which only the decided rows are removed (strip mode: the rows below move
up, their references with them) or the decided cells emptied (blank mode: the cell keeps
its style). A Dynamics 365 export so cleaned imports back into the CRM that wrote it.

When the sheet's XML is not plain enough to edit safely (rows without numbers, cells
without references, rows out of order, a row that is not where the reader saw it), the
caller writes the workbook from its cells instead: `write_package` says so.
"""

from __future__ import annotations

import html  # its escape: xml.sax.saxutils' would bring urllib and ssl to every run
import posixpath
import re
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from reconcile._cells import NEEDS_ESCAPE, excel_escaped_text
from reconcile._xlsx_ranges import (
    Collapsed,
    drop_elements,
    renumbered,
    shift_of,
    shift_ranges,
    without_emptied_ranges,
)

__all__ = ["Appended", "write_package"]

_CELL_REFERENCE = re.compile(rb'\sr="([A-Z]{1,3})([0-9]+)"')


@dataclass(frozen=True)
class Appended:
    """Flag mode's columns: their names, written on the header row, and each data row's
    values (by its position among the data rows), after the sheet's last used column."""

    header_row: int
    names: Sequence[str]
    values: Sequence[Sequence[str | None]]


_LAST_COLUMN = 16_384  # XFD


def _column_number(letters: bytes) -> int:
    """``A`` -> ``1``, ``AA`` -> ``27``."""
    number = 0
    for letter in letters:
        number = number * 26 + letter - 64
    return number


def _column_letters(index: int) -> bytes:
    """``0`` -> ``A``, ``26`` -> ``AA``."""
    letters = ""
    index += 1
    while index:
        index, remainder = divmod(index - 1, 26)
        letters = chr(65 + remainder) + letters
    return letters.encode()


def write_package(
    source: Path,
    entry: str,
    sheet_rows: Sequence[int],
    keep: npt.NDArray[np.bool_],
    blank: Mapping[int, Sequence[int]] | None,
    target: Path,
    appended: Appended | None = None,
) -> str | None:
    """Write ``target`` as ``source`` with sheet part ``entry`` edited: the data rows at
    ``sheet_rows`` (1-based sheet row numbers) not in ``keep`` removed, the cells of
    ``blank`` (a data row's position -> column indexes) emptied, the ``appended`` columns
    added. None when done; else why the workbook cannot be edited in place (nothing
    written then)."""
    try:
        return _write_package(source, entry, sheet_rows, keep, blank, target, appended)
    except (zipfile.BadZipFile, zlib.error, EOFError):
        return "a part of the workbook is damaged"


def _write_package(
    source: Path,
    entry: str,
    sheet_rows: Sequence[int],
    keep: npt.NDArray[np.bool_],
    blank: Mapping[int, Sequence[int]] | None,
    target: Path,
    appended: Appended | None,
) -> str | None:
    with zipfile.ZipFile(source) as archive:
        if _shown_elsewhere(archive, entry):
            return "a chart, a pivot table or another sheet's formula shows its cells"
        try:
            xml = archive.read(entry)
        except KeyError:
            return "its sheet's part is missing"
        edited = _edit_sheet(xml, sheet_rows, keep, blank or {}, appended)
        if edited is None:
            return "its sheet holds comments or markup too irregular to edit in place"
        removed = sorted({sheet_rows[int(index)] for index in np.flatnonzero(~keep)})
        tables = _tables_of(archive, entry) if removed else set()
        shifted: dict[str, bytes] = {}
        for table in tables:
            try:  # the sheet's own tables follow its rows; another sheet's stay
                shifted[table] = _with_a_data_row(shift_ranges(archive.read(table), removed))
            except (KeyError, Collapsed):
                return "a table over its rows cannot follow them"
        shifted.update(_traces_of_what_went(archive, entry, xml, edited))
        with zipfile.ZipFile(target, "w") as out:
            for info in archive.infolist():
                data = archive.read(info.filename)
                if info.filename == entry:
                    data = edited
                elif info.filename in shifted:
                    data = shifted[info.filename]
                if not data and info.filename == _CALC_CHAIN:
                    continue  # its formulas went: Excel builds the chain again
                copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                copy.compress_type = info.compress_type
                copy.external_attr = info.external_attr
                out.writestr(copy, data)
    return None


_CALC_CHAIN = "xl/calcChain.xml"
_SHARED_REFERENCE = re.compile(
    rb'<(?:\w+:)?c\b[^>]*?\bt="s"[^>]*>\s*<(?:\w+:)?v>([0-9]+)</(?:\w+:)?v>'
)
_LINK_ID = re.compile(rb'<(?:\w+:)?hyperlink\b[^>]*?\s(?:\w+:)?id="([^"]*)"')
_FORMULA = re.compile(rb"<(?:\w+:)?f[\s>/]")


def _traces_of_what_went(
    archive: zipfile.ZipFile, entry: str, before: bytes, after: bytes
) -> dict[str, bytes]:
    """The other parts that still carried what the edit removed, cleaned: the shared
    strings only removed or emptied cells used (blanked, their places kept, so no other
    cell's index moves), the relationships of links that went (their targets held the
    number: ``tel:+1415…``), and the calculation chain of formulas that went (emptied,
    then left out with its mentions)."""
    changed: dict[str, bytes] = {}
    names = archive.namelist()
    gone = set(_SHARED_REFERENCE.findall(before)) - set(_SHARED_REFERENCE.findall(after))
    if gone and "xl/sharedStrings.xml" in names:
        for name in names:
            if name != entry and name.startswith("xl/worksheets/") and name.endswith(".xml"):
                gone -= set(_SHARED_REFERENCE.findall(archive.read(name)))
        if gone:
            orphaned = {int(index) for index in gone}
            position = iter(range(1 << 62))

            def blanked(match: re.Match[bytes]) -> bytes:
                if next(position) not in orphaned:
                    return match.group(0)
                tag = match.group(1) or b""
                return b"<" + tag + b"si><" + tag + b"t/></" + tag + b"si>"

            changed["xl/sharedStrings.xml"] = re.sub(
                rb"<(\w+:)?si\b[^>]*?(?:/>|>.*?</(?:\w+:)?si>)",
                blanked,
                archive.read("xl/sharedStrings.xml"),
                flags=re.DOTALL,
            )
    links = set(_LINK_ID.findall(before)) - set(_LINK_ID.findall(after))
    folder, base = posixpath.split(entry)
    relations = posixpath.join(folder, "_rels", base + ".rels")
    if links and relations in names:
        changed[relations] = re.sub(
            rb"<(?:\w+:)?Relationship\b[^>]*>",
            lambda match: (
                b""
                if (found := re.search(rb'\bId="([^"]*)"', match.group(0)))
                and found.group(1) in links
                else match.group(0)
            ),
            archive.read(relations),
        )
    if _CALC_CHAIN in names and len(_FORMULA.findall(after)) < len(_FORMULA.findall(before)):
        changed[_CALC_CHAIN] = b""
        for part, pattern in (
            (
                "[Content_Types].xml",
                rb'<(?:\w+:)?Override\b[^>]*?PartName="/xl/calcChain\.xml"[^>]*/>',
            ),
            (
                "xl/_rels/workbook.xml.rels",
                rb'<(?:\w+:)?Relationship\b[^>]*?Target="[^"]*calcChain\.xml"[^>]*/>',
            ),
        ):
            if part in names:
                changed[part] = re.sub(pattern, b"", archive.read(part))
    return changed


def _with_a_data_row(table: bytes) -> bytes:
    """A table whose data rows were all removed keeps one empty row under its header (a
    table of a header alone is not one Excel opens)."""

    def widened(match: re.Match[bytes]) -> bytes:
        first, last = int(match.group(3)), int(match.group(5))
        if last > first:
            return match.group(0)
        return (
            match.group(1)
            + match.group(2)
            + match.group(3)
            + b":"
            + match.group(4)
            + str(first + 1).encode()
            + match.group(6)
        )

    return re.sub(
        rb'(\sref=")(\$?[A-Z]{1,3}\$?)([0-9]+):(\$?[A-Z]{1,3}\$?)([0-9]+)(")', widened, table
    )


def _shown_elsewhere(archive: zipfile.ZipFile, entry: str) -> bool:
    """Whether the sheet's cells are shown by another part that keeps its own copy of
    their values: a chart or a pivot cache (their caches), or another sheet's formula
    (its cached value). A removed number would stay visible there, so the workbook is
    written from its cells instead."""
    names = archive.namelist()
    if any(name.startswith(("xl/charts/", "xl/pivotCache/")) for name in names):
        return True
    others = [
        name
        for name in names
        if name != entry and name.startswith("xl/worksheets/") and name.endswith(".xml")
    ]
    formula = re.compile(rb"<(?:\w+:)?f[\s>/]")
    return any(formula.search(archive.read(name)) for name in others)


def _tables_of(archive: zipfile.ZipFile, entry: str) -> set[str]:
    """The table parts the sheet ``entry`` links to (its relationships)."""
    folder, name = posixpath.split(entry)
    try:
        relations = archive.read(posixpath.join(folder, "_rels", name + ".rels"))
    except KeyError:
        return set()
    found = set()
    for link in re.findall(rb"<(?:\w+:)?Relationship\b[^>]*>", relations):
        kind = re.search(rb'\bType="([^"]*)"', link)
        target = re.search(rb'\bTarget="([^"]*)"', link)
        if kind and target and kind.group(1).endswith(b"/table"):
            where = target.group(1).decode("utf-8", errors="replace")
            path = where.lstrip("/") if where.startswith("/") else posixpath.join(folder, where)
            found.add(posixpath.normpath(path))
    return found


def _edit_sheet(
    xml: bytes,
    sheet_rows: Sequence[int],
    keep: npt.NDArray[np.bool_],
    blank: Mapping[int, Sequence[int]],
    appended: Appended | None = None,
) -> bytes | None:
    root = re.search(rb"<(\w+:)?worksheet\b", xml)
    prefix = (root.group(1) or b"") if root else b""
    data_start = re.search(rb"<" + prefix + rb"sheetData\b[^>]*?(/?)>", xml)
    if data_start is None:
        return None
    if data_start.group(1):  # <sheetData/>: no rows at all
        return None
    data_end = xml.find(b"</" + prefix + b"sheetData>", data_start.end())
    if data_end < 0:
        return None
    body = xml[data_start.end() : data_end]
    if b"<!--" in body or b"<![CDATA[" in body:
        return None  # markup the cell patterns below would read into
    row_pattern = re.compile(
        rb"<" + prefix + rb"row\b([^>]*?)(?:/>|>(.*?)</" + prefix + rb"row>)", re.DOTALL
    )
    cell_pattern = re.compile(
        rb"<" + prefix + rb"c\b([^>]*?)(?:/>|>.*?</" + prefix + rb"c>)", re.DOTALL
    )
    removed_rows = sorted(sheet_rows[int(index)] for index in np.flatnonzero(~keep))
    formula = re.compile(rb"<" + prefix + rb"f\b[^>]*?(?:/>|>.*?</" + prefix + rb"f>)", re.DOTALL)
    removed = set(removed_rows)
    removed_array = np.asarray(removed_rows, dtype=np.int64)
    emptied = {sheet_rows[position]: set(columns) for position, columns in blank.items()}
    wanted = set(sheet_rows)
    adding: dict[int, Sequence[str | None]] = {}
    first_added = 0
    if appended is not None:
        used = re.findall(rb'\sr="([A-Z]{1,3})[0-9]+"', body)
        first_added = max((_column_number(letters) for letters in set(used)), default=0)
        if first_added + len(appended.names) > _LAST_COLUMN:
            return None  # the flag columns would lie past Excel's last column
        adding[appended.header_row] = appended.names
        for place, number in enumerate(sheet_rows):
            adding[number] = appended.values[place]
    parts: list[bytes] = []
    position = 0
    previous = 0
    seen: set[int] = set()
    for match in row_pattern.finditer(body):
        if body[position : match.start()].strip():
            return None  # something between rows that is not a row
        parts.append(body[position : match.start()])
        position = match.end()
        number_match = re.search(rb'\sr="([0-9]+)"', match.group(1))
        if number_match is None:
            return None  # a row without its number
        number = int(number_match.group(1))
        if number <= previous:
            return None  # rows out of order, or numbered twice
        previous = number
        seen.add(number)
        if number in removed:
            continue
        text = match.group(0)
        inner = match.group(2) or b""
        own = str(number).encode()
        for cell in cell_pattern.finditer(inner):
            reference = _CELL_REFERENCE.search(cell.group(1))
            if reference is None or reference.group(2) != own:
                # a cell without its reference, in lower case, or naming another row:
                # readers place it by its reference, this edit by its row
                return None
        if number in emptied:
            letters = {_column_letters(column) for column in emptied[number]}

            def empty(cell: re.Match[bytes], letters: set[bytes] = letters) -> bytes:
                reference = re.search(rb'\sr="([A-Z]+)[0-9]+"', cell.group(1))
                if reference is None or reference.group(1) not in letters:
                    return cell.group(0)
                if formula.search(cell.group(0)):
                    raise Collapsed  # a formula others may share: written from cells
                style = re.search(rb'\ss="[0-9]+"', cell.group(1))
                kept = style.group(0) if style else b""
                return b"<" + prefix + b"c" + reference.group(0) + kept + b"/>"

            try:
                text = cell_pattern.sub(empty, text)
            except Collapsed:
                return None
        if number in adding:
            text = _with_cells(text, number, first_added, adding[number], prefix)
        if removed_rows:
            shift = shift_of(number, removed_array)
            if shift:
                text = renumbered(text, number - shift)
            # a formula's references would point elsewhere once rows move: its value stays
            text = formula.sub(b"", text)
        parts.append(text)
    if body[position:].strip():
        return None
    parts.append(body[position:])
    if not wanted <= seen:
        return None  # a data row is not where the reader saw it
    head = xml[: data_start.end()]
    tail = xml[data_end:]
    if appended is not None:  # the sheet's extent reaches the columns added
        last = _column_letters(first_added + len(appended.names) - 1)
        head = re.sub(
            rb"(<" + prefix + rb'dimension\b[^>]*?\sref="[^":]*:)([A-Z]{1,3})([0-9]+")',
            lambda match: match.group(1) + last + match.group(3),
            head,
            count=1,
        )
    if (removed_rows or emptied) and re.search(rb"<" + prefix + rb"legacyDrawing\b", tail):
        return None  # comments (in their own parts) would stay on the wrong cells
    if emptied:  # a link on an emptied cell (tel:+1415...) holds the number too
        cleared = {
            _column_letters(column) + str(number).encode()
            for number, columns in emptied.items()
            for column in columns
        }
        tail = drop_elements(
            tail, prefix, b"hyperlink", lambda ref: ref.replace(b"$", b"") in cleared
        )
    if removed_rows:
        removed_set = set(removed_rows)

        def wholly_removed(ref: bytes) -> bool:
            rows = [int(number) for number in re.findall(rb"[0-9]+", ref)]
            return bool(rows) and all(
                number in removed_set for number in range(min(rows), max(rows) + 1)
            )

        tail = drop_elements(tail, prefix, b"hyperlink", wholly_removed)
        tail = drop_elements(tail, prefix, b"mergeCell", wholly_removed)
        head = without_emptied_ranges(shift_ranges(head, removed_rows, may_empty=True), prefix)
        tail = without_emptied_ranges(shift_ranges(tail, removed_rows, may_empty=True), prefix)
        if re.search(rb'\s(?:ref|sqref)=""', head + tail):
            return None  # a structure left with no range that cannot simply go
    return head + b"".join(parts) + tail


def _with_cells(
    row: bytes, number: int, after: int, values: Sequence[str | None], prefix: bytes
) -> bytes:
    """A row element with text cells added after column ``after`` (its ``spans`` hint,
    which would no longer hold, dropped)."""
    cells = b"".join(
        b"<"
        + prefix
        + b'c r="'
        + _column_letters(after + offset)
        + str(number).encode()
        + b'" t="inlineStr"><'
        + prefix
        + b"is><"
        + prefix
        + b't xml:space="preserve">'
        + html.escape(
            excel_escaped_text(value) if re.search(NEEDS_ESCAPE, value) else value, quote=False
        ).encode()
        + b"</"
        + prefix
        + b"t></"
        + prefix
        + b"is></"
        + prefix
        + b"c>"
        for offset, value in enumerate(values)
        if value
    )
    row = re.sub(rb'\sspans="[^"]*"', b"", row, count=1)
    if row.endswith(b"/>"):
        return row[:-2] + b">" + cells + b"</" + prefix + b"row>"
    closing = row.rindex(b"</")
    return row[:closing] + cells + row[closing:]
