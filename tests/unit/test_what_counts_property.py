"""Property: after any sequence of uploads, overwrites, reverts, deletions and lost events,
what counts equals a clean run over the objects the bucket holds now.

Hypothesis generates sequences of bucket operations on two schools, each with two files of
the same dataset (staff.csv and staff.parquet), with contents that are valid (of several
sizes) or broken; events are delivered for some operations and lost for others, and a
sweep may run at any point. At the end the sweep catches up. The curated rows that count
(what aggregation reads) must equal those of a fresh bucket into which the current objects
were copied, oldest first. And every processed upload event has one ledger record and one
report.
"""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vetreport.aggregate.compute import load_curated
from vetreport.bucket.store import LocalStore
from vetreport.curate.ingest import ingest_keys, unprocessed_upload_keys
from vetreport.curate.ledger import read_records

YEAR = 2023
SCHOOLS = ("3133060003", "3133060004")
NAMES = ("staff.csv", "staff.parquet")
HEADER = ["学校代码", "教职工编号", "是否在编", "是否专任教师", "最高学历", "专业技术职称"]
CONTENTS = ("good-1", "good-2", "good-3", "broken")


def content(school: str, name: str, kind: str) -> bytes:
    """The bytes of a file: ``good-n`` has n staff rows; ``broken`` lacks required columns."""
    if kind == "broken":
        rows, header = [[school, "T0001", "也许"]], HEADER[:3]
    else:
        size = int(kind[-1])
        rows = [[school, f"T{i:04d}", "是", "是", "大学本科", "中级"] for i in range(size)]
        header = HEADER
    if name.endswith(".csv"):
        return ("\n".join(",".join(row) for row in [header, *rows]) + "\n").encode()
    frame = pl.DataFrame(rows, schema=header, orient="row")
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def key_of(school: str, name: str) -> str:
    return f"uploads/{YEAR}/{school}/{name}"


put = st.tuples(
    st.just("put"), st.sampled_from(SCHOOLS), st.sampled_from(NAMES), st.sampled_from(CONTENTS)
)
delete = st.tuples(st.just("delete"), st.sampled_from(SCHOOLS), st.sampled_from(NAMES))
operation = st.tuples(st.one_of(put, delete), st.booleans(), st.booleans())
# (what happens, is its event delivered, does a sweep run afterwards)

counter = itertools.count()


def counted_rows(store: LocalStore) -> list[tuple]:
    """The staff rows that count, without ids that differ between two runs."""
    frames, _ = load_curated(store, [YEAR])
    staff = frames["staff"]
    columns = [name for name in staff.columns if name not in ("submission_id",)]
    return sorted(staff.select(columns).rows())


def check_one_record_per_event(store: LocalStore, results: list) -> None:
    records = read_records(store, [YEAR])
    processed = [result for result in results if not result.was_skipped]
    assert len(records) == len(processed)
    by_id = {record["submission_id"]: record for record in records}
    for result in processed:
        assert store.exists(by_id[result.submission_id]["report_key"])


def test_the_generated_files_are_judged_as_intended(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "bucket")
    for name, kind in itertools.product(NAMES, CONTENTS):
        key = key_of(SCHOOLS[0], name)
        store.put(key, content(SCHOOLS[0], name, kind))
        [result] = ingest_keys(store, [key])
        assert result.outcome == ("rejected" if kind == "broken" else "accepted"), (name, kind)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=st.lists(operation, min_size=1, max_size=10))
def test_what_counts_equals_a_clean_run_over_the_bucket_now(tmp_path: Path, operations) -> None:
    root = tmp_path / f"run-{next(counter)}"
    store = LocalStore(root / "bucket")
    results = []
    for (what, school, name, *kind), delivered, sweep in operations:
        key = key_of(school, name)
        if what == "put":
            store.put(key, content(school, name, kind[0]))
        else:
            store.delete(key)
        if delivered:
            results += ingest_keys(store, [key])
        if sweep:
            results += ingest_keys(store, unprocessed_upload_keys(store))
    results += ingest_keys(store, unprocessed_upload_keys(store))
    assert unprocessed_upload_keys(store) == []
    check_one_record_per_event(store, results)

    clean = LocalStore(root / "clean")
    for info in sorted(store.list("uploads/"), key=lambda info: info.last_modified):
        clean.put(info.key, store.get(info.key))
    ingest_keys(clean, unprocessed_upload_keys(clean))
    assert counted_rows(store) == counted_rows(clean)
    # and nothing of a key that is gone or refused now
    for school, name in itertools.product(SCHOOLS, NAMES):
        if not store.exists(key_of(school, name)):
            latest = [
                record
                for record in read_records(store, [YEAR])
                if record["key"] == key_of(school, name)
            ]
            if latest:
                newest = max(latest, key=lambda record: record["processed_at"])
                assert newest["outcome"] == "withdrawn", json.dumps(newest)[:300]
