"""Baseline: the pandas script an analyst would write for the same job.

phonenumbers row by row, pandas' own date parsing, then a merge with the events.
Usage: python bench/baseline_pandas.py contacts.csv events.parquet out_dir
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import phonenumbers


def to_e164(raw: object) -> int | None:
    if not isinstance(raw, str) or not raw.strip():
        return None
    try:
        number = phonenumbers.parse(raw, "US")
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return int(f"{number.country_code}{number.national_number}")


def main(contacts_path: str, events_path: str, out_dir: str) -> None:
    contacts = pd.read_csv(contacts_path, dtype=str, keep_default_na=False)
    contacts["number"] = contacts["Mobile Phone"].apply(to_e164).astype("UInt64")
    contacts["consent"] = pd.to_datetime(
        contacts["Opt-In Date"], format="mixed", utc=True, errors="coerce"
    )
    events = pd.read_parquet(events_path, columns=["number", "type", "occurred_at"])
    deactivations = events[events["type"].isin(["DEACTIVATION", "ACTIVATION"])]
    last_deactivation = (
        deactivations.groupby("number")["occurred_at"].max().rename("deactivated_at")
    )
    latest = events.sort_values("occurred_at").groupby("number").tail(1)
    suspended = latest[latest["type"] == "SUSPENSION"][["number"]].assign(suspended=True)
    merged = contacts.merge(last_deactivation, left_on="number", right_index=True, how="left")
    merged = merged.merge(suspended, on="number", how="left")
    deactivated = merged["deactivated_at"].notna() & (
        merged["consent"].isna() | (merged["deactivated_at"] >= merged["consent"])
    )
    is_suspended = merged["suspended"].fillna(False).astype(bool)
    drop = merged["number"].notna() & (deactivated | is_suspended)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    contacts.loc[~drop.to_numpy(), contacts.columns[:-2]].to_csv(out / "cleaned.csv", index=False)
    merged.loc[drop | merged["number"].isna()].to_csv(out / "changes.csv", index=False)


if __name__ == "__main__":
    main(*sys.argv[1:4])
