"""Reference: the same job in plain polars, as a data engineer would write it.

The DuckDB baseline's rules (digits of the phone, four consent formats, the latest
deactivation per number at or after consent, a suspension as the latest event), written
with polars' lazy API: the reference reconcile's own time is held to (issue 21).

Usage: python bench/baseline_polars.py contacts.csv events.parquet out_dir
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl


def main(contacts_path: str, events_path: str, out_dir: str) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    contacts = pl.scan_csv(contacts_path, infer_schema=False).with_row_index("row")
    columns = contacts.collect_schema().names()[1:]
    digits = (
        pl.col("Mobile Phone")
        .str.to_lowercase()
        .str.replace(r"(x|ext\.?|#)\s*[0-9]+\s*$", "")
        .str.replace_all(r"[^0-9]", "")
    )
    consent = pl.coalesce(
        pl.col("Opt-In Date").str.strptime(pl.Datetime("us"), format, strict=False)
        for format in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d", "%m/%d/%Y %I:%M %p", "%m/%d/%Y")
    ).dt.replace_time_zone("UTC")
    nanp = pl.col("digits").str.slice(0, 1).is_between(pl.lit("2"), pl.lit("9")) & pl.col(
        "digits"
    ).str.slice(3, 1).is_between(pl.lit("2"), pl.lit("9"))
    nanp_11 = pl.col("digits").str.slice(1, 1).is_between(pl.lit("2"), pl.lit("9")) & pl.col(
        "digits"
    ).str.slice(4, 1).is_between(pl.lit("2"), pl.lit("9"))
    length = pl.col("digits").str.len_chars()
    number = (
        pl.when((length == 10) & nanp)
        .then(pl.lit("1") + pl.col("digits"))
        .when((length == 11) & pl.col("digits").str.starts_with("1") & nanp_11)
        .then(pl.col("digits"))
        .when((length == 13) & pl.col("digits").str.starts_with("001"))
        .then(pl.col("digits").str.slice(2))
        .cast(pl.UInt64, strict=False)
    )
    keyed = contacts.with_columns(digits=digits, consent=consent).with_columns(number=number)
    wanted = keyed.select("number").drop_nulls().unique()
    per_number = (
        pl.scan_parquet(events_path)
        .join(wanted, on="number", how="semi")
        .group_by("number")
        .agg(
            deactivated_at=pl.col("occurred_at")
            .filter(pl.col("type").is_in(["DEACTIVATION", "ACTIVATION"]))
            .max(),
            latest_type=pl.col("type").sort_by("occurred_at").last(),
        )
    )
    verdict = (
        pl.when(pl.col("number").is_null())
        .then(pl.lit("invalid_number"))
        .when(
            pl.col("deactivated_at").is_not_null()
            & (pl.col("consent").is_null() | (pl.col("deactivated_at") >= pl.col("consent")))
        )
        .then(pl.lit("deactivated"))
        .when(pl.col("latest_type") == "SUSPENSION")
        .then(pl.lit("suspended"))
        .otherwise(pl.lit("ok"))
    )
    decided = (
        keyed.join(per_number, on="number", how="left", maintain_order="left")
        .with_columns(verdict=verdict)
        .collect()
    )
    decided.filter(~pl.col("verdict").is_in(["deactivated", "suspended"])).select(
        columns
    ).write_csv(out / "cleaned.csv")
    decided.filter(pl.col("verdict") != "ok").select(
        "row", "Contact ID", "Mobile Phone", "Opt-In Date", "verdict", "deactivated_at"
    ).write_csv(out / "changes.csv")


if __name__ == "__main__":
    main(*sys.argv[1:4])
