"""Contact files in and out: CSV and XLSX, read without type inference, written back as-is.

Reading yields a `ContactTable`: the column names and the text of the few columns
reconcile needs (phone, consent, id). Writing copies kept rows from the original:
for CSV the very bytes of each kept record (so the encoding, BOM, delimiter, quoting
and every field stay byte-identical); for XLSX each kept cell's value and type.
"""

from __future__ import annotations

import codecs
import html
import re
import zipfile
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

from reconcile._csvscan import (
    CsvScan,
    checked_columns,
    header_names,
    polars_columns,
    read_columns,
    read_header,
    scan_csv,
)
from reconcile._text import first_line as _first_line
from reconcile.errors import (
    ColumnError,
    EncodingError,
    InputError,
    ReconcileError,
    UnsupportedFormatError,
)

__all__ = [
    "ColumnChoice",
    "ContactTable",
    "read_contacts",
    "resolve_column",
]

CSV_SUFFIXES = frozenset({".csv", ".txt", ".tsv"})
XLSX_SUFFIXES = frozenset({".xlsx", ".xlsm"})
_REFUSED_SUFFIXES = {
    ".xls": "the old Excel 97-2003 format",
    ".ods": "an OpenDocument spreadsheet",
    ".numbers": "an Apple Numbers file",
    ".xlsb": "a binary Excel workbook",
}
_UTF8_BOM = b"\xef\xbb\xbf"
_ZIP_MAGIC = b"PK\x03\x04"
_WORKBOOK_XML_LIMIT = 4 << 20  # the sheet list; a bigger workbook.xml is not a real one
_MAX_UNPACKED = 8 << 30  # Excel's own limits keep real workbooks far below this
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
# Codecs whose multi-byte sequences never contain ASCII bytes, so that quotes,
# delimiters and newlines can be found in the raw bytes.
_ASCII_SAFE_CODECS = frozenset(
    {"utf-8", "cp1252", "latin-1", "iso8859-1", "iso8859-15", "ascii", "cp1250", "mac-roman"}
)

PHONE_GUESSES = (
    "phone",
    "mobile",
    "mobile phone",
    "phone number",
    "mobile number",
    "cell",
    "cell phone",
    "cellphone",
    "mobilephone",
    "phonenumber",
    "msisdn",
    "telephone",
    "sms number",
    "sms phone",
    "contact number",
    "primary phone",
)
CONSENT_GUESSES = (
    "opt in date",
    "optin date",
    "opted in",
    "opted in at",
    "opt in",
    "optin",
    "opt in timestamp",
    "consent date",
    "consent",
    "consented at",
    "consent timestamp",
    "sms opt in date",
    "sms consent date",
    "date opted in",
    "subscribed at",
    "subscription date",
)
ID_GUESSES = ("id", "contact id", "record id", "customer id", "lead id", "external id")


@dataclass(frozen=True)
class ColumnChoice:
    """Which columns to read: explicit names, or None to guess from common CRM names."""

    phone: str | None = None
    consent: str | None = None
    id: str | None = None


@dataclass
class ContactTable:
    """A contact file as read: names, the needed columns as text, and how to copy rows.

    The values (one row per data row: row (1-based), phone, consent, id, raw text) are
    read once: from a workbook by calamine, from a CSV file by polars, only the columns
    reconcile needs; `value_chunks` hands them out a chunk at a time.
    """

    path: Path
    kind: Literal["csv", "xlsx"]
    columns: list[str]
    phone_column: str
    consent_column: str
    id_column: str | None
    row_count: int
    blank_rows: int
    encoding: str = "utf-8"
    bom: bytes = b""
    scan: CsvScan | None = None
    sheet: str | None = None
    notes: list[str] = field(default_factory=list)
    # XLSX: every row's values; CSV: the indexes of the columns to read
    loaded: pl.DataFrame | None = None
    csv_columns: tuple[int, ...] = ()
    _columns: list[pl.Series] | None = field(default=None, repr=False)
    _reading: Future[list[pl.Series] | None] | None = field(default=None, repr=False)

    def value_chunks(self, rows: int) -> Iterator[pl.DataFrame]:
        """The values, ``rows`` data rows at a time, in order."""
        for first in range(0, self.row_count, rows):
            yield self._values(first, min(first + rows, self.row_count))

    @property
    def values(self) -> pl.DataFrame:
        """Every row's values at once."""
        return self._values(0, self.row_count)

    def _values(self, first: int, stop: int) -> pl.DataFrame:
        if self.loaded is not None:
            return self.loaded.slice(first, stop - first)
        assert self.scan is not None
        if self._columns is None:
            # polars reads the columns of every row in one parallel pass over the bytes
            # as they are (a pass per chunk would first copy each chunk's bytes), most
            # often already begun beside the scan.
            wanted = list(self.csv_columns)
            if self._reading is not None:
                read = self._reading.result()
                self._reading = None
                self._columns = checked_columns(
                    self.scan, read, wanted, self.encoding, self.scan.data_records
                )
            else:
                self._columns = read_columns(self.scan, wanted, self.encoding, 0, self.row_count)
        read = [column.slice(first, stop - first) for column in self._columns]
        count = stop - first
        return pl.DataFrame(
            {
                "row": pl.int_range(first + 1, stop + 1, eager=True, dtype=pl.UInt32),
                "phone": read[0],
                "consent": read[1],
                "id": read[2]
                if len(read) > 2
                else pl.repeat(None, count, dtype=pl.String, eager=True),
            }
        )


def _normalize_name(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower()).strip()


def resolve_column(
    path: Path,
    columns: Sequence[str],
    wanted: str | None,
    guesses: Sequence[str],
    role: str,
    option: str,
    required: bool = True,
) -> str | None:
    """Find one column by name (case-insensitive) or by the CRM names in ``guesses``."""
    listing = ", ".join(repr(name) for name in columns)
    if wanted is not None:
        matches = [name for name in columns if name.strip().lower() == wanted.strip().lower()]
        if not matches:
            raise ColumnError(
                f"{path.name}: no column named {wanted!r} ({option}); the file has: {listing}."
            )
        if len(matches) > 1:
            raise ColumnError(
                f"{path.name}: {len(matches)} columns are named {wanted!r}; rename one so "
                f"{option} can tell them apart."
            )
        return matches[0]
    normalized = [_normalize_name(name) for name in columns]
    for guess in guesses:
        matches = [name for name, norm in zip(columns, normalized, strict=True) if norm == guess]
        if len(matches) == 1:
            others = [
                name
                for name, norm in zip(columns, normalized, strict=True)
                if norm in guesses and norm != guess
            ]
            if others:
                found = ", ".join(repr(name) for name in [matches[0], *others])
                raise ColumnError(
                    f"{path.name}: several columns could hold the {role} ({found}); "
                    f"choose one with {option}."
                )
            return matches[0]
        if len(matches) > 1:
            raise ColumnError(
                f"{path.name}: {len(matches)} columns are named {matches[0]!r}; rename one "
                f"or choose with {option}."
            )
    if not required:
        return None
    raise ColumnError(
        f"{path.name}: no {role} column found; name it with {option}. The file has: {listing}."
    )


def _resolve_all(
    path: Path, columns: list[str], choice: ColumnChoice
) -> tuple[str, str, str | None]:
    if not columns or all(not name.strip() for name in columns):
        raise InputError(f"{path.name}: the first row has no column names; it must be the header.")
    phone = resolve_column(path, columns, choice.phone, PHONE_GUESSES, "phone", "--phone-column")
    consent = resolve_column(
        path, columns, choice.consent, CONSENT_GUESSES, "consent date", "--consent-column"
    )
    identifier = resolve_column(
        path, columns, choice.id, ID_GUESSES, "id", "--id-column", required=choice.id is not None
    )
    assert phone is not None and consent is not None  # required=True raised otherwise
    if phone == consent:
        raise ColumnError(f"{path.name}: the phone and consent columns are both {phone!r}.")
    return phone, consent, identifier


def read_contacts(
    path: Path, choice: ColumnChoice, *, sheet: str | None = None, encoding: str | None = None
) -> ContactTable:
    """Read a CSV or XLSX contact file; raise an InputError subclass on anything unusable."""
    suffix = path.suffix.lower()
    if suffix in _REFUSED_SUFFIXES:
        raise UnsupportedFormatError(
            f"{path.name} is {_REFUSED_SUFFIXES[suffix]}, which reconcile does not read; "
            "save it as .xlsx or .csv."
        )
    if suffix not in CSV_SUFFIXES | XLSX_SUFFIXES:
        raise UnsupportedFormatError(
            f"{path.name}: unknown file type {suffix or '(no extension)'!r}; "
            "reconcile reads .csv, .txt, .tsv and .xlsx files."
        )
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file.") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a contact file.") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied (cannot read the file).") from None
    if suffix in XLSX_SUFFIXES:
        if not head:
            raise InputError(f"{path.name}: the file is empty (0 bytes).")
        if head != _ZIP_MAGIC:
            raise UnsupportedFormatError(
                f"{path.name} is not an Excel .xlsx workbook (it may be damaged, password-"
                "protected, or another format renamed); open it in Excel and save as .xlsx."
            )
        _refuse_zip_bomb(path)
        return _read_xlsx(path, choice, sheet)
    if head == _ZIP_MAGIC:
        raise UnsupportedFormatError(
            f"{path.name} is a zip archive (an Excel workbook?), not CSV text; "
            "rename it to .xlsx or export it as CSV."
        )
    return _read_csv(path, choice, encoding)


# --- CSV ---------------------------------------------------------------------------


def _check_codec(name: str) -> str:
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        raise EncodingError(f"--encoding {name!r} is not an encoding Python knows.") from None
    if canonical not in _ASCII_SAFE_CODECS:
        raise EncodingError(
            f"--encoding {name!r} is not supported; use UTF-8 or a single-byte encoding such "
            "as cp1252 or latin-1 (save UTF-16 files as UTF-8)."
        )
    return canonical


_DECODE_BLOCK = 1 << 14  # small enough for the allocator to reuse one block


def first_undecodable(body: bytes, codec: str) -> int | None:
    """Where ``body`` stops being valid ``codec`` text, or None when all of it is.

    Decoded block by block and thrown away: decoding a large file whole would build a
    string as big as the file only to check it.
    """
    if body.isascii():  # every supported codec is ASCII-compatible
        return None
    decoder = codecs.getincrementaldecoder(codec)()
    view = memoryview(body)
    for begin in range(0, len(body), _DECODE_BLOCK):
        try:
            decoder.decode(view[begin : begin + _DECODE_BLOCK], final=False)
        except UnicodeDecodeError:
            break
    else:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            pass
        else:
            return None
    # the exact position comes from decoding the whole text once, on this rare path
    try:
        body.decode(codec)
    except UnicodeDecodeError as error:
        return error.start
    return None


def detect_encoding(name: str, body: bytes, has_bom: bool) -> str:
    """UTF-8 when the bytes decode as UTF-8, else Windows-1252; mixed files are refused."""
    if body.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise EncodingError(f"{name} is UTF-16 text; save it as CSV UTF-8 (or pass --encoding).")
    first_bad = first_undecodable(body, "utf-8")
    if first_bad is None:
        return "utf-8"
    line = body.count(b"\n", 0, first_bad) + 1
    # A UTF-8 file with a few broken bytes holds more valid multi-byte sequences than
    # stray high bytes; in Windows-1252 text, valid-looking sequences are coincidences.
    valid_sequences = _UTF8_SEQUENCE.findall(body)
    valid_bytes = sum(len(sequence) for sequence in valid_sequences)
    high_bytes = int(np.count_nonzero(np.frombuffer(body, dtype=np.uint8) >= 0x80))
    stray_bytes = high_bytes - valid_bytes
    if has_bom or len(valid_sequences) > stray_bytes:
        raise EncodingError(
            f"{name}: line {line} is not valid UTF-8 although the file looks like UTF-8 "
            "elsewhere (mixed encodings?); fix that line, or pass --encoding cp1252 if the "
            "whole file is Windows-1252."
        )
    try:
        body.decode("cp1252")
    except UnicodeDecodeError as error:
        bad_line = body.count(b"\n", 0, error.start) + 1
        raise EncodingError(
            f"{name}: line {bad_line} is neither UTF-8 nor Windows-1252 text; "
            "pass the file's encoding with --encoding."
        ) from None
    return "cp1252"


def _read_csv(path: Path, choice: ColumnChoice, encoding: str | None) -> ContactTable:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise InputError(f"{path}: cannot read the file ({error.strerror}).") from None
    if not raw or raw.isspace():
        raise InputError(f"{path.name}: the file is empty; it needs a header line and rows.")
    bom = _UTF8_BOM if raw.startswith(_UTF8_BOM) else b""
    body = raw[len(bom) :]
    if encoding is not None:
        codec = _check_codec(encoding)
        bad = first_undecodable(body, codec)
        if bad is not None:
            line = body.count(b"\n", 0, bad) + 1
            raise EncodingError(
                f"{path.name}: line {line} is not valid {encoding}; check --encoding."
            ) from None
    else:
        codec = detect_encoding(path.name, body, bool(bom))
    # When the header names the columns, polars reads them in the background while the
    # scan checks the whole file. A header with a problem is looked at again after the
    # scan, so that errors come in the same order as if nothing had been read ahead.
    reading: Future[list[pl.Series] | None] | None = None
    try:
        delimiter, columns = read_header(path.name, body, codec)
        phone, consent, identifier = _resolve_all(path, columns, choice)
    except ReconcileError:
        scan = scan_csv(path.name, body)
        columns = header_names(scan, codec)
        phone, consent, identifier = _resolve_all(path, columns, choice)
        wanted = _wanted(columns, (phone, consent, identifier))
    else:
        wanted = _wanted(columns, (phone, consent, identifier))
        reader = ThreadPoolExecutor(max_workers=1)
        reading = reader.submit(polars_columns, body, wanted, delimiter, codec)
        reader.shutdown(wait=False)
        scan = scan_csv(path.name, body, delimiter)
    if scan.row_count == 0:
        raise InputError(f"{path.name}: the file has a header but no data rows.")
    return ContactTable(
        path=path,
        kind="csv",
        columns=columns,
        phone_column=phone,
        consent_column=consent,
        id_column=identifier,
        row_count=scan.row_count,
        csv_columns=tuple(wanted),
        blank_rows=scan.blank_lines,
        encoding=codec,
        bom=bom,
        scan=scan,
        _reading=reading,
    )


def _wanted(columns: list[str], chosen: tuple[str, str, str | None]) -> list[int]:
    return [columns.index(name) for name in chosen if name]


def _quote_expr(value: pl.Expr, delimiter: str) -> pl.Expr:
    needs_quotes = value.str.contains(f'[{re.escape(delimiter)}"\r\n]')
    return (
        pl.when(needs_quotes)
        .then(pl.lit('"') + value.str.replace_all('"', '""', literal=True) + pl.lit('"'))
        .otherwise(value)
        .fill_null("")
    )


def write_csv_rows(
    stream: BinaryIO,
    table: ContactTable,
    first: int,
    stop: int,
    keep: npt.NDArray[np.bool_],
    extra: pl.DataFrame | None = None,
) -> None:
    """Write data rows ``first`` to ``stop`` of the cleaned CSV, after the header if
    ``first`` is 0.

    Strip mode copies runs of consecutive kept records straight from the input's bytes
    (blank lines are dropped). With ``extra`` (flag mode) every record gets those
    columns appended, encoded and quoted in the file's own encoding and delimiter.
    """
    scan = table.scan
    assert scan is not None
    records = scan.data_records[first:stop]
    body = memoryview(scan.body)
    if first == 0:
        stream.write(table.bom)
    if extra is None:
        begin = 0 if first == 0 else int(records[0])
        record_keep = np.zeros(int(records[-1]) + 1 - begin, dtype=bool)
        record_keep[0] = first == 0  # the header
        record_keep[records - begin] = keep
        edges = np.flatnonzero(np.diff(record_keep.astype(np.int8))) + 1
        bounds = np.concatenate(([0], edges, [record_keep.size]))
        starts, stops = bounds[:-1], bounds[1:]
        kept_runs = record_keep[starts]
        stream.writelines(
            body[run_start:run_end]
            for run_start, run_end in zip(
                scan.record_start[starts[kept_runs] + begin].tolist(),
                scan.record_end[stops[kept_runs] - 1 + begin].tolist(),
                strict=True,
            )
        )
        return
    delimiter = scan.delimiter
    suffixes = extra.select(
        pl.concat_str(
            [_quote_expr(pl.col(name), delimiter) for name in extra.columns], separator=delimiter
        )
    ).to_series()
    newline = scan.newline
    if first == 0:
        header_end = int(scan.content_end[0])
        stream.write(body[:header_end])
        stream.write((delimiter + delimiter.join(extra.columns)).encode(table.encoding))
        stream.write(body[header_end : int(scan.record_end[0])] or newline)
    encoded = [(delimiter + suffix).encode(table.encoding, errors="replace") for suffix in suffixes]
    last = scan.row_count - 1 - first  # the file's last row gets no terminator it lacked
    pieces: list[bytes | memoryview] = []
    for index, (start, content_end, end) in enumerate(
        zip(
            scan.record_start[records].tolist(),
            scan.content_end[records].tolist(),
            scan.record_end[records].tolist(),
            strict=True,
        )
    ):
        pieces.append(body[start:content_end])
        pieces.append(encoded[index])
        pieces.append(body[content_end:end] if end > content_end or index == last else newline)
    stream.writelines(pieces)


# --- XLSX --------------------------------------------------------------------------


def _open_workbook_reader(path: Path) -> Any:
    import fastexcel

    try:
        return fastexcel.read_excel(path)
    except Exception as error:  # noqa: BLE001  (fastexcel raises its own untyped errors)
        raise UnsupportedFormatError(
            f"{path.name} cannot be read as an Excel workbook ({_first_line(error)}); "
            "open it in Excel and save it again as .xlsx."
        ) from None


def choose_sheet(path: Path, names: list[str], visible: list[bool], sheet: str | None) -> int:
    """Index of the sheet to read: by name, by 1-based number, or the first visible one."""
    if not names:
        raise InputError(f"{path.name}: the workbook has no sheets.")
    listing = ", ".join(repr(name) for name in names)
    if sheet is None:
        for index, is_visible in enumerate(visible):
            if is_visible:
                return index
        return 0
    if sheet in names:
        return names.index(sheet)
    lowered = [name.lower() for name in names]
    if sheet.lower() in lowered:
        return lowered.index(sheet.lower())
    if sheet.isdigit() and 1 <= int(sheet) <= len(names):
        return int(sheet) - 1
    raise InputError(f"{path.name}: no sheet {sheet!r} (--sheet); the workbook has: {listing}.")


def _read_xlsx(path: Path, choice: ColumnChoice, sheet: str | None) -> ContactTable:
    reader = _open_workbook_reader(path)
    names = list(reader.sheet_names)
    sheet_index = choose_sheet(path, names, _sheet_visibility(path, names), sheet)
    try:
        loaded = reader.load_sheet(sheet_index, header_row=None, dtypes="string")
        frame = loaded.to_polars()
    except Exception as error:  # noqa: BLE001  (fastexcel raises its own untyped errors)
        raise UnsupportedFormatError(
            f"{path.name}: sheet {names[sheet_index]!r} cannot be read ({_first_line(error)})."
        ) from None
    if frame.width == 0 or frame.height == 0:
        raise InputError(f"{path.name}: sheet {names[sheet_index]!r} is empty.")
    frame = frame.select(pl.all().cast(pl.String))
    non_blank = frame.select(
        pl.any_horizontal(
            [pl.col(name).is_not_null() & (pl.col(name) != "") for name in frame.columns]
        )
    ).to_series()
    frame = frame.filter(non_blank)
    header = [value if value is not None else "" for value in frame.row(0)]
    data = frame.slice(1)
    phone, consent, identifier = _resolve_all(path, header, choice)
    if data.height == 0:
        raise InputError(f"{path.name}: sheet {names[sheet_index]!r} has a header but no rows.")
    by_name = dict(zip(header, data.columns, strict=True))
    values = pl.DataFrame(
        {
            "row": pl.int_range(1, data.height + 1, eager=True, dtype=pl.UInt32),
            "phone": data.get_column(by_name[phone]),
            "consent": data.get_column(by_name[consent]),
            "id": data.get_column(by_name[identifier])
            if identifier
            else pl.repeat(None, data.height, dtype=pl.String, eager=True),
        }
    )
    return ContactTable(
        path=path,
        kind="xlsx",
        columns=header,
        phone_column=phone,
        consent_column=consent,
        id_column=identifier,
        row_count=values.height,
        loaded=values,
        blank_rows=int((~non_blank).sum()),
        sheet=names[sheet_index],
    )


def _refuse_zip_bomb(path: Path) -> None:
    """Refuse a workbook that would unpack to far more than any real contact list."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except (OSError, zipfile.BadZipFile):
        return  # the reader says what is wrong with it
    unpacked = sum(entry.file_size for entry in entries)
    packed = max(sum(entry.compress_size for entry in entries), 1)
    if unpacked > _MAX_UNPACKED or (unpacked > 256 << 20 and unpacked / packed > 200):
        raise UnsupportedFormatError(
            f"{path.name} would unpack to {unpacked >> 20} MiB from {packed >> 20} MiB: "
            "that is not a contact list reconcile will open (a zip bomb?)."
        )


def _sheet_visibility(path: Path, names: list[str]) -> list[bool]:
    """Which sheets are visible, from xl/workbook.xml (loading a sheet to ask would parse it)."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("xl/workbook.xml") as stream:
            text = stream.read(_WORKBOOK_XML_LIMIT).decode("utf-8", errors="replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return [True] * len(names)
    hidden = {
        html.unescape(match.group(1))
        for tag in re.findall(r"<(?:\w+:)?sheet\b[^>]*>", text)
        if re.search(r'\bstate="(?:hidden|veryHidden)"', tag)
        for match in [re.search(r'\bname="([^"]*)"', tag)]
        if match
    }
    return [name not in hidden for name in names]


def iter_xlsx_rows(path: Path, sheet: str) -> Iterator[tuple[Any, ...]]:
    """Yield the non-blank rows of ``sheet`` as openpyxl read-only cells, header first."""
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        worksheet = workbook[sheet]
        for row in worksheet.iter_rows():
            if any(cell.value is not None and cell.value != "" for cell in row):
                yield row
    finally:
        workbook.close()


def write_xlsx_cleaned(
    table: ContactTable,
    keep: npt.NDArray[np.bool_],
    extra: pl.DataFrame | None,
    target: Path,
) -> None:
    """Write the kept rows of the table's sheet, each cell with its value and type."""
    import openpyxl
    from openpyxl.cell import WriteOnlyCell

    assert table.sheet is not None
    workbook = openpyxl.Workbook(write_only=True)
    worksheet = workbook.create_sheet(title=table.sheet)
    extra_rows = extra.rows() if extra is not None else None
    width = 0
    seen = -1

    def cell(value: Any, number_format: str | None = None) -> Any:
        written = WriteOnlyCell(worksheet, value=value)
        if isinstance(value, str) and written.data_type == "f":
            written.data_type = "s"  # text that starts with "=" stays text
        if number_format and number_format != "General":
            written.number_format = number_format
        return written

    for seen, row in enumerate(iter_xlsx_rows(table.path, table.sheet)):
        if seen == 0:
            width = len(row)
        elif seen > table.row_count or not keep[seen - 1]:
            continue
        cells = [
            cell(getattr(source, "value", None), getattr(source, "number_format", None))
            for source in row
        ]
        if extra is not None and extra_rows is not None:
            cells.extend(cell(None) for _ in range(width - len(cells)))
            cells.extend(
                cell(value) for value in (extra.columns if seen == 0 else extra_rows[seen - 1])
            )
        worksheet.append(cells)
    if seen != table.row_count:
        raise InputError(
            f"{table.path.name}: the sheet changed while it was read ({table.row_count} rows "
            f"first, {max(seen, 0)} now); run again."
        )
    workbook.save(target)
