"""The ledger: one JSON record per processed upload, and the questions asked of it.

What belongs here: writing a record (once: the first writer wins), reading the records of a
year, and deciding which submission of each (year, submitter, dataset) is current. The
ledger is what makes ingest idempotent across restarts: an upload whose submission id has
a record is done, whatever the event system remembers.

Current means: the accepted submission whose object was uploaded last (by the store's
last-modified time, then key and version as tie-breakers), so a late-arriving event for
an older version never replaces a newer one, and a rejected upload never replaces an
accepted one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import polars as pl

from vetreport.bucket.keys import LEDGER_ROOT, ledger_key, ledger_prefix
from vetreport.bucket.store import ObjectStore

ACCEPTED_OUTCOMES = ("accepted", "accepted_with_warnings")
READ_THREADS = 16

CURRENT_SCHEMA: dict[str, type[pl.DataType]] = {
    "year": pl.Int64,
    "submitter": pl.Utf8,
    "dataset": pl.Utf8,
    "submission_id": pl.Utf8,
    "key": pl.Utf8,
    "version_token": pl.Utf8,
    "uploaded_at": pl.Utf8,
    "outcome": pl.Utf8,
    "curated_key": pl.Utf8,
    "row_count": pl.Int64,
}


def record_ledger_key(record: dict[str, Any]) -> str:
    """Where a record is kept: by year, submitter, file stem and submission id."""
    return ledger_key(record["year"], record["submitter"], record["stem"], record["submission_id"])


def write_record(store: ObjectStore, record: dict[str, Any]) -> bool:
    """Write a record unless one exists for the same submission; return whether written."""
    body = json.dumps(record, ensure_ascii=False, indent=2, sort_keys=True).encode("utf-8")
    return store.put_if_absent(record_ledger_key(record), body, "application/json")


def processed_submission_ids(store: ObjectStore, prefix: str = LEDGER_ROOT) -> set[str]:
    """Every submission id that has a ledger record (from key names alone; no reads)."""
    return {
        info.key.rsplit("/", 1)[-1].removesuffix(".json")
        for info in store.list(prefix)
        if info.key.endswith(".json")
    }


def read_records(store: ObjectStore, years: Iterable[int]) -> list[dict[str, Any]]:
    """Read every ledger record of the given years, in parallel."""
    return read_records_under(store, [ledger_prefix(year) for year in years])


def read_records_under(store: ObjectStore, prefixes: Iterable[str]) -> list[dict[str, Any]]:
    """Read the ledger records under some prefixes (e.g. one submitter's), in parallel."""
    keys = [
        info.key for prefix in prefixes for info in store.list(prefix) if info.key.endswith(".json")
    ]
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        return [json.loads(body) for body in pool.map(store.get, keys)]


def dataset_rows(records: list[dict[str, Any]]) -> pl.DataFrame:
    """One row per (record, dataset) with the outcome and the curated file of each."""
    rows = [
        {
            "year": record["year"],
            "submitter": record["submitter"],
            "dataset": entry["dataset"],
            "submission_id": record["submission_id"],
            "key": record["key"],
            "version_token": record["version_token"],
            "uploaded_at": record["uploaded_at"],
            "outcome": entry["outcome"],
            "curated_key": entry.get("curated_key"),
            "row_count": entry.get("row_count", 0),
        }
        for record in records
        for entry in record.get("datasets", [])
        if entry.get("dataset")
    ]
    return pl.DataFrame(rows, schema=CURRENT_SCHEMA)


def current_submissions(records: list[dict[str, Any]]) -> pl.DataFrame:
    """The accepted submission that counts for each (year, submitter, dataset)."""
    rows = dataset_rows(records)
    return (
        rows.filter(pl.col("outcome").is_in(ACCEPTED_OUTCOMES))
        .sort(["uploaded_at", "key", "version_token"], descending=True)
        .unique(subset=["year", "submitter", "dataset"], keep="first", maintain_order=True)
        .sort(["year", "dataset", "submitter"])
    )
