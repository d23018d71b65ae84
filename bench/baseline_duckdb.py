"""Baseline: the same job in DuckDB SQL, as a data engineer would write it.

Usage: python bench/baseline_duckdb.py contacts.csv events.parquet out_dir
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

QUERY = """
CREATE TEMP TABLE contacts AS
SELECT row_number() OVER () AS row, *,
    regexp_replace(regexp_replace(lower("Mobile Phone"), '(x|ext\\.?|#)\\s*[0-9]+\\s*$', ''),
                   '[^0-9]', '', 'g') AS digits,
    coalesce(
        try_strptime("Opt-In Date", '%Y-%m-%dT%H:%M:%SZ'),
        try_strptime("Opt-In Date", '%Y-%m-%d'),
        try_strptime("Opt-In Date", '%m/%d/%Y %I:%M %p'),
        try_strptime("Opt-In Date", '%m/%d/%Y')
    ) AS consent
FROM read_csv('{contacts}', all_varchar = true, header = true);

CREATE TEMP TABLE keyed AS
SELECT *,
    CASE
        WHEN length(digits) = 10 AND substr(digits, 1, 1) BETWEEN '2' AND '9'
             AND substr(digits, 4, 1) BETWEEN '2' AND '9' THEN ('1' || digits)::UBIGINT
        WHEN length(digits) = 11 AND digits LIKE '1%' AND substr(digits, 2, 1) BETWEEN '2' AND '9'
             AND substr(digits, 5, 1) BETWEEN '2' AND '9' THEN digits::UBIGINT
        WHEN length(digits) = 13 AND digits LIKE '001%' THEN substr(digits, 3)::UBIGINT
    END AS number
FROM contacts;

CREATE TEMP TABLE per_number AS
SELECT e.number,
    max(occurred_at) FILTER (WHERE type IN ('DEACTIVATION', 'ACTIVATION')) AS deactivated_at,
    arg_max(type, occurred_at) AS latest_type
FROM read_parquet('{events}') e
WHERE e.number IN (SELECT number FROM keyed WHERE number IS NOT NULL)
GROUP BY e.number;

CREATE TEMP TABLE decided AS
SELECT k.*, p.deactivated_at, p.latest_type,
    CASE
        WHEN k.number IS NULL THEN 'invalid_number'
        WHEN p.deactivated_at IS NOT NULL
             AND (k.consent IS NULL OR p.deactivated_at >= k.consent) THEN 'deactivated'
        WHEN p.latest_type = 'SUSPENSION' THEN 'suspended'
        ELSE 'ok'
    END AS verdict
FROM keyed k LEFT JOIN per_number p USING (number);

COPY (SELECT * EXCLUDE (row, digits, consent, number, deactivated_at, latest_type, verdict)
      FROM decided WHERE verdict NOT IN ('deactivated', 'suspended') ORDER BY row)
  TO '{out}/cleaned.csv' (HEADER);
COPY (SELECT row, "Contact ID", "Mobile Phone", "Opt-In Date", verdict, deactivated_at
      FROM decided WHERE verdict <> 'ok' ORDER BY row) TO '{out}/changes.csv' (HEADER);
"""


def main(contacts_path: str, events_path: str, out_dir: str) -> None:
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(QUERY.format(contacts=contacts_path, events=events_path, out=out_dir))


if __name__ == "__main__":
    main(*sys.argv[1:4])
