"""Which submission counts, and how versions are published."""

from __future__ import annotations

import json

import polars as pl
import pytest

from vetreport.aggregate.compute import AggregateResult
from vetreport.bucket.store import open_store
from vetreport.curate.ledger import CURRENT_SCHEMA, current_submissions
from vetreport.publish.outputs.tabular import csv_bytes, neutralise_formulas
from vetreport.publish.reader import read_pointer, read_table, table_lineage
from vetreport.publish.writer import publish


def record(
    submission: str,
    uploaded_at: str,
    outcome: str,
    dataset: str = "graduates",
    extension: str = "csv",
    processed_at: str | None = None,
) -> dict:
    return {
        "submission_id": submission,
        "key": f"uploads/2023/S00001/{dataset}.{extension}",
        "version_token": submission,
        "uploaded_at": uploaded_at,
        "processed_at": processed_at or uploaded_at,
        "year": 2023,
        "submitter": "S00001",
        "datasets": [
            {
                "dataset": dataset,
                "outcome": outcome,
                "curated_key": f"c/{submission}",
                "row_count": 1,
            }
        ],
    }


KEY = "uploads/2023/S00001/graduates.csv"


def counted(records: list[dict], bucket: dict[str, str]) -> list[str]:
    return current_submissions(records, bucket).get_column("submission_id").to_list()


def test_the_version_now_at_the_key_counts_whatever_its_clock_or_processing_order() -> None:
    newer = record("b", "2023-09-02T00:00:00+00:00", "accepted")
    older = record("a", "2023-09-01T00:00:00+00:00", "accepted")
    for records in ([older, newer], [newer, older]):
        assert counted(records, {KEY: "b"}) == ["b"]
        # a revert to the earlier file (or a re-upload with an old clock) counts as is
        assert counted(records, {KEY: "a"}) == ["a"]


def test_a_version_not_processed_yet_leaves_the_key_as_it_was() -> None:
    first = record("a", "2023-09-01T00:00:00+00:00", "accepted")
    assert counted([first], {KEY: "not-yet-ingested"}) == ["a"]


def test_a_refused_file_at_the_key_counts_for_nothing_a_deleted_one_neither() -> None:
    accepted = record("a", "2023-09-01T00:00:00+00:00", "accepted_with_warnings")
    rejected = record("b", "2023-09-02T00:00:00+00:00", "rejected")
    assert counted([accepted, rejected], {KEY: "b"}) == []
    assert counted([accepted], {}) == []


def test_of_two_files_of_one_dataset_the_last_uploaded_counts_and_a_refused_one_never() -> None:
    csv = record("a", "2023-09-01T00:00:00+00:00", "accepted")
    xlsx = record("b", "2023-09-02T00:00:00+00:00", "accepted", extension="xlsx")
    bad_xlsx = record("c", "2023-09-03T00:00:00+00:00", "rejected", extension="xlsx")
    xlsx_key = KEY.replace(".csv", ".xlsx")
    assert counted([csv, xlsx], {KEY: "a", xlsx_key: "b"}) == ["b"]
    assert counted([csv, xlsx, bad_xlsx], {KEY: "a", xlsx_key: "c"}) == ["a"]


def test_no_records_gives_an_empty_typed_frame() -> None:
    current = current_submissions([], {})
    assert current.height == 0
    assert dict(current.schema) == {name: dtype() for name, dtype in CURRENT_SCHEMA.items()}


def result(value: float, text: str = "绍兴市") -> AggregateResult:
    table = pl.DataFrame({"city_name": [text], "year": [2023], "staff_count": [value]})
    submissions = pl.DataFrame(
        {
            "year": [2023],
            "dataset": ["staff"],
            "submitter": ["S00001"],
            "key": ["uploads/2023/S00001/staff.csv"],
            "version_token": ["etag1"],
            "submission_id": ["sub1"],
        }
    )
    values = pl.DataFrame({"indicator_id": ["staff_count"], "indicator_value": [value]})
    return AggregateResult(2023, values, {"staff_size": table}, submissions)


def test_publish_writes_a_version_then_nothing_when_unchanged(store_url: str) -> None:
    store = open_store(store_url)
    first = publish(store, result(10.0))
    again = publish(store, result(10.0))
    changed = publish(store, result(11.0))
    assert (first.version, first.is_new_version) == (1, True)
    assert (again.version, again.is_new_version) == (1, False)
    assert (changed.version, changed.is_new_version) == (2, True)
    assert read_pointer(store, 2023)["version"] == 2
    assert read_table(store, "staff_size", 2023, 1).get_column("staff_count").to_list() == [10.0]
    assert read_table(store, "staff_size", 2023).get_column("staff_count").to_list() == [11.0]


def test_manifest_lists_checksums_and_lineage(store_url: str) -> None:
    store = open_store(store_url)
    published = publish(store, result(10.0))
    manifest = json.loads(store.get(published.prefix + "manifest.json"))
    entry = manifest["tables"]["staff_size"]
    assert entry["row_count"] == 1
    for file in entry["files"].values():
        import hashlib

        assert hashlib.sha256(store.get(file["key"])).hexdigest() == file["sha256"]
    assert entry["lineage"]["submission_count"] == 1
    assert table_lineage(store, "staff_size", 2023)["submission_id"].to_list() == ["sub1"]
    assert store.get(entry["files"]["csv"]["key"]).startswith(b"\xef\xbb\xbf")


def test_reader_refuses_a_file_whose_checksum_changed(store_url: str) -> None:
    store = open_store(store_url)
    published = publish(store, result(10.0))
    key = published.prefix + "tables/staff_size.parquet"
    store.put(key, store.get(published.prefix + "tables/indicator_values.parquet"))
    with pytest.raises(ValueError, match="checksum"):
        read_table(store, "staff_size", 2023)


def test_formula_cells_are_neutralised_in_csv() -> None:
    frame = pl.DataFrame(
        {"name": ['=HYPERLINK("x")', "+1", "-2", "@a", "ok"], "n": [1, 2, 3, 4, 5]}
    )
    assert neutralise_formulas(frame).get_column("name").to_list() == [
        '\'=HYPERLINK("x")',
        "'+1",
        "'-2",
        "'@a",
        "ok",
    ]
    assert b"'=HYPERLINK" in csv_bytes(frame)
