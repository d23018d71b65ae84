"""Seeded generators of messy contact files and operator histories, at any size.

Contacts mix the samples' phone formats (2 % empty, 1.5 % junk, about 1 % international),
consent dates in ISO, US and Salesforce styles, and 5 % of contacts have a matching
deactivation (most of them after consent). Events are spread over two years of daily
reports by three operators. Everything is vectorized (numpy + polars): 10M contacts and
50M events are generated in well under a minute.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

OPERATORS = [("Verizon Wireless", 1717), ("AT&T Mobility", 1733), ("T-Mobile USA", 1750)]
HISTORY_START = datetime(2024, 11, 1, tzinfo=UTC)
HISTORY_DAYS = 730
_US = 10**10


def _nanp(rng: np.random.Generator, count: int) -> np.ndarray:
    """Valid NANP numbers as integers 1NXXNXXXXXX."""
    area = rng.integers(200, 1000, count)
    exchange = rng.integers(200, 1000, count)
    line = rng.integers(0, 10000, count)
    return _US + area * 10**7 + exchange * 10**4 + line


def contacts_frame(
    count: int, seed: int = 1, first_id: int = 0
) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Messy contacts; also returns their numbers and consent instants (epoch seconds)."""
    rng = np.random.default_rng(seed)
    numbers = _nanp(rng, count)
    digits = pl.Series(numbers).cast(pl.String)
    area, exchange, line = digits.str.slice(1, 3), digits.str.slice(4, 3), digits.str.slice(7, 4)
    style = pl.Series(rng.integers(0, 10, count))
    frame = pl.DataFrame({"a": area, "e": exchange, "l": line, "s": style})
    written = frame.select(
        pl.when(pl.col("s") == 0)
        .then(pl.format("+1 ({}) {}-{}", "a", "e", "l"))
        .when(pl.col("s") == 1)
        .then(pl.format("{}.{}.{}", "a", "e", "l"))
        .when(pl.col("s") == 2)
        .then(pl.format("{}{}{}", "a", "e", "l"))
        .when(pl.col("s") == 3)
        .then(pl.format("1-{}-{}-{}", "a", "e", "l"))
        .when(pl.col("s") == 4)
        .then(pl.format("({}) {}-{} x12", "a", "e", "l"))
        .when(pl.col("s") == 5)
        .then(pl.format("tel:+1{}{}{}", "a", "e", "l"))
        .when(pl.col("s") == 6)
        .then(pl.format("001{}{}{}", "a", "e", "l"))
        .when(pl.col("s") == 7)
        .then(pl.format("{}-{}-{} ext. 45", "a", "e", "l"))
        .when(pl.col("s") == 8)
        .then(pl.format("+1{}{}{}", "a", "e", "l"))
        .otherwise(pl.format("({}) {}-{}", "a", "e", "l"))
    ).to_series()
    roll = rng.random(count)
    junk = np.array(
        ["N/A", "call office", "4.15555E+09", "(123) 555-0123", "555-0199", "+44 20 7946 095"]
    )
    international = np.array(
        ["+44 20 7946 0958", "011 44 20 7946 0321", "+49 30 901820", "+33 1 42 68 53 00"]
    )
    written = pl.select(
        pl.when(pl.lit(pl.Series(roll < 0.02)))
        .then(pl.lit(""))
        .when(pl.lit(pl.Series(roll < 0.035)))
        .then(pl.lit(pl.Series(junk[rng.integers(0, len(junk), count)])))
        .when(pl.lit(pl.Series(roll < 0.045)))
        .then(pl.lit(pl.Series(international[rng.integers(0, 4, count)])))
        .otherwise(pl.lit(written))
    ).to_series()
    consent = (
        HISTORY_START.timestamp()
        + rng.integers(-90, HISTORY_DAYS, count) * 86400
        + rng.integers(0, 86400, count)
    )
    moment = pl.Series(consent * 1_000_000).cast(pl.Datetime("us", "UTC"))
    consent_style = pl.Series(rng.integers(0, 4, count))
    consent_text = (
        pl.DataFrame({"m": moment, "s": consent_style})
        .select(
            pl.when(pl.col("s") == 0)
            .then(pl.col("m").dt.strftime("%Y-%m-%d"))
            .when(pl.col("s") == 1)
            .then(pl.col("m").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
            .when(pl.col("s") == 2)
            .then(pl.col("m").dt.strftime("%-m/%-d/%Y"))
            .otherwise(pl.col("m").dt.strftime("%-m/%-d/%Y %-I:%M %p"))
        )
        .to_series()
    )
    consent_text = pl.select(
        pl.when(pl.lit(pl.Series(rng.random(count) < 0.03)))
        .then(pl.lit(""))
        .otherwise(pl.lit(consent_text))
    ).to_series()
    ids = pl.Series(np.arange(first_id, first_id + count)).cast(pl.String)
    contacts = pl.DataFrame(
        {
            "Contact ID": "C-" + ids,
            "First Name": pl.Series(
                rng.choice(["Ana", "Ben", "Chloé", "Dev", "Eli", "Omar"], count)
            ),
            "Last Name": pl.Series(
                rng.choice(["Garcia", "Nguyen", "O'Brien", "Smith, Jr.", "Müller"], count)
            ),
            "Email": ids + "@example.com",
            "Mobile Phone": written,
            "Opt-In Date": consent_text,
            "Zip": pl.Series(rng.integers(0, 100000, count)).cast(pl.String).str.zfill(5),
            "Notes": pl.Series(
                rng.choice(
                    ["", "", "", "VIP", "prefers SMS, not calls", 'moved from "Old CRM"'], count
                )
            ),
        }
    )
    return contacts, numbers, consent


def events_frame(
    count: int, contact_numbers: np.ndarray, consent: np.ndarray, seed: int = 2
) -> pl.DataFrame:
    """Operator events; 5 % of contacts get a deactivation (80 % of those after consent)."""
    rng = np.random.default_rng(seed)
    matched = int(len(contact_numbers) * 0.05)
    chosen = rng.choice(len(contact_numbers), matched, replace=False)
    after = rng.random(matched) < 0.8
    window_end = HISTORY_START.timestamp() + HISTORY_DAYS * 86400
    start = np.where(
        after, np.maximum(consent[chosen], HISTORY_START.timestamp()), HISTORY_START.timestamp()
    )
    end = np.where(after, window_end, np.maximum(consent[chosen], HISTORY_START.timestamp() + 1))
    matched_times = start + rng.random(matched) * np.maximum(end - start, 1)
    rest = count - matched
    numbers = np.concatenate([contact_numbers[chosen], _nanp(rng, rest)])
    times = np.concatenate(
        [matched_times, HISTORY_START.timestamp() + rng.random(rest) * HISTORY_DAYS * 86400]
    )
    types = np.concatenate(
        [
            np.zeros(matched, dtype=np.int8),
            rng.choice(4, rest, p=[0.85, 0.03, 0.07, 0.05]).astype(np.int8),
        ]
    )
    day = ((times - HISTORY_START.timestamp()) // 86400).astype(np.int64)
    operator = rng.integers(0, 3, count)
    frame = pl.DataFrame(
        {
            "number": pl.Series(numbers, dtype=pl.UInt64),
            "type": pl.Series(
                np.array(["DEACTIVATION", "ACTIVATION", "SUSPENSION", "REACTIVATION"])[types]
            ),
            "occurred_at": pl.Series((times * 1_000_000).astype(np.int64))
            .cast(pl.Datetime("us", "UTC"))
            .dt.truncate("1s"),
            "new_number": pl.Series(
                np.where(rng.random(count) < 0.1, _nanp(rng, count), 0), dtype=pl.UInt64
            ),
            "report_id": pl.Series(operator).cast(pl.String) + "-" + pl.Series(day).cast(pl.String),
            "network_id": pl.Series(
                np.array([op[1] for op in OPERATORS])[operator], dtype=pl.Int64
            ),
            "network_name": pl.Series(np.array([op[0] for op in OPERATORS])[operator]),
        }
    )
    return frame.with_columns(
        new_number=pl.when(pl.col("new_number") > 0).then(pl.col("new_number")),
        report_id=pl.lit("rpt-") + pl.col("report_id"),
    )


def with_second_phone(contacts: pl.DataFrame, seed: int = 3) -> pl.DataFrame:
    """``contacts`` with a ``Phone`` column beside ``Mobile Phone``: half its cells hold
    a number, and 1 % of those a label or two numbers (``Home: …``, ``… / …``)."""
    rng = np.random.default_rng(seed)
    count = contacts.height
    digits = pl.Series(_nanp(rng, count)).cast(pl.String)
    plain = pl.format(
        "({}) {}-{}", digits.str.slice(1, 3), digits.str.slice(4, 3), digits.str.slice(7, 4)
    )
    other = pl.Series(_nanp(rng, count)).cast(pl.String).str.slice(1)
    roll = rng.random(count)
    phone = pl.select(
        pl.when(pl.lit(pl.Series(roll < 0.5)))
        .then(pl.lit(""))
        .when(pl.lit(pl.Series(roll < 0.5025)))
        .then(pl.lit("Home: ") + plain)
        .when(pl.lit(pl.Series(roll < 0.505)))
        .then(plain + pl.lit(" / ") + pl.lit(other))
        .otherwise(plain)
    ).to_series()
    position = contacts.columns.index("Mobile Phone")
    return contacts.insert_column(position, phone.rename("Phone"))


# From this many contacts the file is written a chunk at a time, without the second
# phone file (100M contacts at once would not fit in memory).
CHUNKED_FROM = 50_000_000
CHUNK = 5_000_000


def write_dataset(folder: Path, contacts: int, events: int, seed: int = 1) -> tuple[Path, Path]:
    """contacts.csv and events.parquet (the ledger's own columns) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    if contacts >= CHUNKED_FROM:
        return _write_chunked(folder, contacts, events, seed)
    frame, numbers, consent = contacts_frame(contacts, seed)
    contacts_path = folder / "contacts.csv"
    frame.write_csv(contacts_path)
    with_second_phone(frame).write_csv(folder / "contacts-2phones.csv")
    events_path = folder / "events.parquet"
    events_frame(events, numbers, consent, seed + 1).write_parquet(events_path)
    return contacts_path, events_path


def _write_chunked(folder: Path, contacts: int, events: int, seed: int) -> tuple[Path, Path]:
    """`write_dataset` a chunk of contacts at a time: only their numbers and consent
    instants are kept for the events (16 bytes a contact)."""
    contacts_path = folder / "contacts.csv"
    numbers: list[np.ndarray] = []
    consents: list[np.ndarray] = []
    with contacts_path.open("wb") as stream:
        for index, first in enumerate(range(0, contacts, CHUNK)):
            count = min(CHUNK, contacts - first)
            frame, chunk_numbers, chunk_consent = contacts_frame(count, seed + 100 * index, first)
            frame.write_csv(stream, include_header=index == 0)
            numbers.append(chunk_numbers)
            consents.append(chunk_consent)
            del frame
    events_path = folder / "events.parquet"
    events_frame(events, np.concatenate(numbers), np.concatenate(consents), seed + 1).write_parquet(
        events_path
    )
    return contacts_path, events_path
