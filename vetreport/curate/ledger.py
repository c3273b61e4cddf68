"""The ledger: one JSON record per processed upload, and the questions asked of it.

What belongs here: writing a record (once: the first writer wins), reading the records of a
year, and deciding which submission of each (year, submitter, dataset) is current. The
ledger is what makes ingest idempotent across restarts: an upload whose submission id has
a record is done, whatever the event system remembers.

Records are written once and never changed, so a year's records can be read from
*digests* instead of one object each: ``ledger/_digests/{year}/{id}.jsonl.gz`` holds
records as they were read (key and record, a JSON line each). A digest is a cache, never
the truth: a reader lists the year's record keys, takes from the digests the records of
those keys, and reads the rest one by one. An aggregation writes a digest of the records it
had to read one by one, and merges a year's digests into one when there are many, so the
next one reads a national year's records from a handful of objects instead of one GET each.

What counts is the object now at each key (docs/operations.md, "What counts, and when"):

- a key counts through the record of its current version (the version a listing of
  uploads/ shows now), whatever its bytes or clock: an overwrite, a revert to earlier
  bytes or a file with an old modification time is simply the key's new state;
- a key whose current version is not processed yet keeps its last processed state until
  it is, so a result never flickers while an upload waits for its turn;
- a key that no longer exists counts for nothing (withdrawn), a key whose current
  version was rejected counts for nothing (the school was told: not counted);
- a key whose upload was held (its school's year locked by the bureau) keeps its last
  processed state: the held record counts for nothing until the year is reopened;
- of the keys that count for the same (year, submitter, dataset) — graduates.csv and
  a workbook's sheet, say — the one uploaded last wins.
"""

from __future__ import annotations

import gzip
import json
import logging
import uuid
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import polars as pl

from vetreport.bucket.documents import document_bytes
from vetreport.bucket.keys import (
    LEDGER_ROOT,
    ledger_key,
    ledger_prefix,
    parse_ledger_record_key,
    uploads_prefix,
)
from vetreport.bucket.store import KeyNotFound, ObjectStore

ACCEPTED_OUTCOMES = ("accepted", "accepted_with_warnings")
# An upload kept while the bureau has locked its school's year: recorded and reported, but
# never what a key counts through (vetreport.curate.collection).
HELD = "held"
# The bureau's lock of a school's year and its reopening, as collection events record them
# (vetreport.curate.collection): while locked, nothing the school does changes what counts.
LOCK_EVENT = "approved"
UNLOCK_EVENT = "reopened"
# On a local folder, up to this many reads go one after another: a school's records (about
# ten a year, read back for its upload list after every ingest) took three times the CPU
# on a pool of threads started for them (200 schools' records: 0.12-0.17 s against
# 0.32-0.47 s of CPU, docs/benchmarks.md). The records come back in the same order.
SEQUENTIAL_READS = 64
READ_THREADS = 16
LOGGER = logging.getLogger(__name__)
DIGEST_ROOT = f"{LEDGER_ROOT}_digests/"
DIGEST_SUFFIX = ".jsonl.gz"
DIGESTS_BEFORE_MERGE = 16  # a year's digests beyond which the next writer merges them

CURRENT_SCHEMA: dict[str, type[pl.DataType]] = {
    "year": pl.Int64,
    "submitter": pl.Utf8,
    "dataset": pl.Utf8,
    "submission_id": pl.Utf8,
    "key": pl.Utf8,
    "version_token": pl.Utf8,
    "uploaded_at": pl.Utf8,
    "processed_at": pl.Utf8,
    "outcome": pl.Utf8,
    "curated_key": pl.Utf8,
    "row_count": pl.Int64,
}


def record_ledger_key(record: dict[str, Any]) -> str:
    """Where a record is kept: by year, submitter, file stem, submission id and extension."""
    return ledger_key(
        record["year"],
        record["submitter"],
        record["stem"],
        record["submission_id"],
        record.get("extension"),
    )


def write_record(store: ObjectStore, record: dict[str, Any]) -> bool:
    """Write a record unless one exists for the same submission; return whether written."""
    body = document_bytes(record, sort_keys=True)
    return store.put_if_absent(record_ledger_key(record), body, "application/json")


def processed_submission_ids(store: ObjectStore, prefix: str = LEDGER_ROOT) -> set[str]:
    """Every submission id that has a ledger record (from key names alone; no reads)."""
    return {
        parse_ledger_record_key(key)[0] for key in store.list_keys(prefix) if key.endswith(".json")
    }


def read_records(
    store: ObjectStore, years: Iterable[int], write_digest: bool = False
) -> list[dict[str, Any]]:
    """Read every ledger record of the given years: from the digests, the rest in parallel.

    With ``write_digest`` the records read one by one are written as a new digest of their
    year (and a year's many digests merged into one), for the next reader.
    """
    records: list[dict[str, Any]] = []
    for year in years:
        records += _year_records(store, year, write_digest)
    return records


def digest_prefix(year: int) -> str:
    """Where a year's ledger digests are kept."""
    return f"{DIGEST_ROOT}{year}/"


def _year_records(store: ObjectStore, year: int, write_digest: bool) -> list[dict[str, Any]]:
    keys = [key for key in store.list_keys(ledger_prefix(year)) if key.endswith(".json")]
    digests = [key for key in store.list_keys(digest_prefix(year)) if key.endswith(DIGEST_SUFFIX)]
    wanted = set(keys)
    found: dict[str, dict[str, Any]] = {}
    for entries in _map(store, _read_digest, digests):
        for key, record in entries:
            if key in wanted:
                found[key] = record
    missing = [key for key in keys if key not in found]
    for key, record in zip(missing, _map(store, _read_record, missing), strict=True):
        found[key] = record
    if write_digest and (missing or len(digests) > DIGESTS_BEFORE_MERGE):
        _write_digest(store, year, [(key, found[key]) for key in missing], digests, found)
    return [found[key] for key in keys]


def _map(store: ObjectStore, read: Any, keys: list[str]) -> list[Any]:
    """``read(store, key)`` for each key, in order: on threads unless few and local."""
    if len(keys) <= SEQUENTIAL_READS and not getattr(store, "is_remote", True):
        return [read(store, key) for key in keys]
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        return list(pool.map(lambda key: read(store, key), keys))


def _read_record(store: ObjectStore, key: str) -> dict[str, Any]:
    return json.loads(store.get(key))  # type: ignore[no-any-return]


def _read_digest(store: ObjectStore, key: str) -> list[tuple[str, dict[str, Any]]]:
    """The (record key, record) pairs of a digest; none when it was merged away meanwhile."""
    try:
        body = store.get(key)
        entries = [json.loads(line) for line in gzip.decompress(body).splitlines() if line]
        return [(entry["key"], entry["record"]) for entry in entries]
    except KeyNotFound:
        return []  # its records are read one by one this time
    except (OSError, EOFError, ValueError, KeyError, TypeError) as error:
        LOGGER.warning("ledger digest %s unreadable (%s): its records are read alone", key, error)
        return []


def _write_digest(
    store: ObjectStore,
    year: int,
    new: list[tuple[str, dict[str, Any]]],
    digests: list[str],
    every: dict[str, dict[str, Any]],
) -> None:
    """A digest of the records just read one by one; or, past the limit, one of them all.

    Merging writes the whole year's digest before deleting the ones it replaces, so a
    reader finds each record in some digest or reads it alone, and never loses it.
    """
    merge = len(digests) > DIGESTS_BEFORE_MERGE
    entries = sorted(every.items()) if merge else new
    lines = [
        json.dumps({"key": key, "record": record}, ensure_ascii=False, sort_keys=True)
        for key, record in entries
    ]
    body = gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=5, mtime=0)
    store.put(f"{digest_prefix(year)}{uuid.uuid4().hex}{DIGEST_SUFFIX}", body, "application/gzip")
    if merge:
        for key in digests:
            store.delete(key)


def read_records_under(store: ObjectStore, prefixes: Iterable[str]) -> list[dict[str, Any]]:
    """Read the ledger records under some prefixes (e.g. one submitter's), in parallel."""
    keys = [key for prefix in prefixes for key in store.list_keys(prefix) if key.endswith(".json")]
    if len(keys) <= SEQUENTIAL_READS and not getattr(store, "is_remote", True):
        return [json.loads(store.get(key)) for key in keys]
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
            "processed_at": record.get("processed_at", record["uploaded_at"]),
            "outcome": entry["outcome"],
            "curated_key": entry.get("curated_key"),
            "row_count": entry.get("row_count", 0),
        }
        for record in records
        for entry in record.get("datasets", [])
        if entry.get("dataset")
    ]
    return pl.DataFrame(rows, schema=CURRENT_SCHEMA)


def current_upload_versions(store: ObjectStore, years: Iterable[int]) -> dict[str, str]:
    """Every upload key of the given years as it is now: key -> version token."""
    return {
        info.key: info.version_token for year in years for info in store.list(uploads_prefix(year))
    }


def locked_owners(records: Iterable[dict[str, Any]]) -> frozenset[tuple[int, str]]:
    """(year, school) pairs whose latest lock event among ``records`` is a lock."""
    latest: dict[tuple[int, str], tuple[str, str]] = {}
    for record in records:
        kind = record.get("collection_event")
        if kind in (LOCK_EVENT, UNLOCK_EVENT):
            owner = (int(record["year"]), str(record["school_code"]))
            moment = record.get("processed_at", "")
            if owner not in latest or latest[owner][0] <= moment:
                latest[owner] = (moment, kind)
    return frozenset(owner for owner, (_, kind) in latest.items() if kind == LOCK_EVENT)


def counting_records(
    records: list[dict[str, Any]], current_versions: dict[str, str]
) -> list[dict[str, Any]]:
    """The one record each existing key counts through (see the module docstring).

    A key deleted while its school's year is locked (a lock event among ``records``)
    still counts through its last record: like a re-upload, the deletion waits for the
    bureau to reopen the year.
    """
    locked = locked_owners(records)
    by_key: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("outcome") != HELD:
            by_key.setdefault(record["key"], []).append(record)
    counting = []
    for key, key_records in by_key.items():
        token = current_versions.get(key)
        first = key_records[0]
        owner = (first.get("year"), first.get("submitter"))
        if token is None and not (key and owner in locked):
            continue  # the object is gone: withdrawn
        of_current = [record for record in key_records if record["version_token"] == token]
        chosen = of_current or key_records  # not processed yet: its last processed state
        counting.append(max(chosen, key=lambda record: record.get("processed_at", "")))
    return counting


def current_submissions(
    records: list[dict[str, Any]], current_versions: dict[str, str]
) -> pl.DataFrame:
    """The accepted submission that counts for each (year, submitter, dataset).

    ``current_versions`` is what the bucket holds now (``current_upload_versions``).
    """
    rows = dataset_rows(counting_records(records, current_versions))
    return (
        rows.filter(pl.col("outcome").is_in(ACCEPTED_OUTCOMES))
        .sort(["uploaded_at", "key", "version_token"], descending=True)
        .unique(subset=["year", "submitter", "dataset"], keep="first", maintain_order=True)
        .sort(["year", "dataset", "submitter"])
    )


@dataclass(frozen=True)
class LedgerView:
    """The ledger records and the uploads of some years, read from the bucket once.

    An aggregation asks several questions of the same state (which submissions count,
    each school's completeness, the registry): it reads the records and lists the uploads
    once (``read_ledger_view``) and hands this view to every function that would otherwise
    read them again.
    """

    years: tuple[int, ...]
    records: list[dict[str, Any]]
    current_versions: dict[str, str]

    def of_year(self, year: int) -> LedgerView:
        """The same view restricted to one of its years (no read)."""
        if year not in self.years:
            raise ValueError(f"this view holds {self.years}, not {year}")
        return LedgerView(
            (year,),
            [record for record in self.records if record["year"] == year],
            {
                key: token
                for key, token in self.current_versions.items()
                if key.startswith(uploads_prefix(year))
            },
        )

    def current_submissions(self) -> pl.DataFrame:
        """The accepted submission that counts for each (year, submitter, dataset)."""
        return current_submissions(self.records, self.current_versions)


def current_submissions_of_years(
    store: ObjectStore,
    years: Iterable[int],
    write_digest: bool = False,
    known: LedgerView | None = None,
) -> pl.DataFrame:
    """``current_submissions`` of some years, their records read a year at a time.

    What counts in a year follows from that year's records and uploads alone (a key, a
    lock and a submission each belong to one year), so each year's records are let go
    before the next year's are read: a nation's three years of records held at once were
    gigabytes of dicts for the whole aggregation. Years ``known`` holds are not read again.
    """
    frames = []
    for year in sorted(set(years)):
        if known is not None and year in known.years:
            view = known.of_year(year)
        else:
            view = read_ledger_view(store, [year], write_digest)
        frames.append(view.current_submissions())
    if not frames:
        return current_submissions([], {})
    return pl.concat(frames).sort(["year", "dataset", "submitter"])


def read_ledger_view(
    store: ObjectStore, years: Iterable[int], write_digest: bool = False
) -> LedgerView:
    """Read the ledger records of the years and list their uploads, once.

    ``write_digest``: leave a digest of the records read one by one (``read_records``).
    """
    years = tuple(sorted(set(years)))
    return LedgerView(
        years,
        read_records(store, years, write_digest),
        current_upload_versions(store, years),
    )
