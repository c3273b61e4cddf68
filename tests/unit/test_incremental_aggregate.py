"""Incremental aggregation: one school's correction recomputes that school, nothing else.

A small national bucket is ingested, aggregated and published; one school then corrects
its graduates file. The aggregate after the correction reuses every other school's cached
measures, and what it publishes is byte for byte what an aggregation from scratch (no
cache at all) publishes, which in turn equals the one-query computation over every
curated row.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import polars as pl
import pytest

from schemas.indicators import years_shown
from vetreport.aggregate.compute import aggregate, compute_indicator_values, load_curated
from vetreport.bucket.keys import school_measures_key
from vetreport.bucket.store import LocalStore
from vetreport.curate.ingest import ingest_keys, unprocessed_upload_keys
from vetreport.demo.national import read_manifest, write_national_bucket
from vetreport.publish.writer import publish

SCHOOLS = 8
YEAR = 2023


def correct_graduates_file(root: Path) -> str:
    """Drop the last graduate of the first school whose accepted graduates file is a CSV."""
    manifest = read_manifest(root)
    candidates = manifest.filter(
        pl.col("key").str.ends_with("/graduates.csv")
        & pl.col("defect").is_null()
        & (pl.col("data_rows") >= 2)
    )
    key = candidates.item(0, "key")
    path = root / key
    body = path.read_bytes()
    encoding = "utf-8-sig" if body.startswith(b"\xef\xbb\xbf") else "gbk"
    lines = body.decode(encoding).splitlines(keepends=True)
    while not lines[-1].strip():
        lines.pop()
    lines.pop()
    path.write_bytes("".join(lines).encode(encoding))
    return key


def table_files(manifest: dict) -> dict[str, str]:
    """Every published table file's checksum, by table and format."""
    return {
        f"{table_id}.{extension}": entry["sha256"]
        for table_id, table in manifest["tables"].items()
        for extension, entry in table["files"].items()
    }


@pytest.fixture(scope="module")
def corrected(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("incremental") / "bucket"
    write_national_bucket(root, schools=SCHOOLS, seed=YEAR, years=(YEAR,))
    store = LocalStore(root)
    ingest_keys(store, unprocessed_upload_keys(store, YEAR))
    first = aggregate(store, YEAR)
    publish(store, first)

    key = correct_graduates_file(root)
    school = key.split("/")[2]
    ingest_keys(store, unprocessed_upload_keys(store, YEAR))
    scratch_root = root.parent / "scratch"
    shutil.copytree(root, scratch_root)
    scratch_store = LocalStore(scratch_root)
    scratch_store.delete(school_measures_key(YEAR))

    incremental = aggregate(store, YEAR)
    scratch = aggregate(scratch_store, YEAR)
    return {
        "school": school,
        "first": first,
        "incremental": incremental,
        "scratch": scratch,
        "incremental_published": publish(store, incremental),
        "scratch_published": publish(scratch_store, scratch),
        "store": store,
    }


def graduates_count(result, school: str) -> float:
    values = result.indicator_values
    return (
        values.filter(
            (pl.col("region_level") == "school")
            & (pl.col("school_code") == school)
            & (pl.col("indicator_id") == "graduates_count")
            & (pl.col("year") == YEAR)
        )
        .get_column("indicator_value")
        .item()
    )


def test_the_first_aggregate_computes_every_school(corrected: dict) -> None:
    assert corrected["first"].recomputed_school_count == SCHOOLS
    assert corrected["first"].reused_school_count == 0


def test_a_correction_recomputes_only_its_school(corrected: dict) -> None:
    assert corrected["incremental"].recomputed_school_count == 1
    assert corrected["incremental"].reused_school_count == SCHOOLS - 1
    assert corrected["scratch"].recomputed_school_count == SCHOOLS


def test_the_correction_reaches_the_published_numbers(corrected: dict) -> None:
    school = corrected["school"]
    before = graduates_count(corrected["first"], school)
    assert graduates_count(corrected["incremental"], school) == before - 1
    assert corrected["incremental_published"].is_new_version


def test_incremental_tables_are_byte_identical_to_a_recomputation(corrected: dict) -> None:
    incremental = corrected["incremental_published"].manifest
    scratch = corrected["scratch_published"].manifest
    assert incremental["content_sha256"] == scratch["content_sha256"]
    assert table_files(incremental) == table_files(scratch)
    for table_id, frame in corrected["scratch"].tables.items():
        assert corrected["incremental"].tables[table_id].equals(frame), table_id


def test_chunked_measures_equal_one_query_over_every_row(
    corrected: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    store = corrected["store"]
    shutil.copytree(store.root, tmp_path / "bucket")
    copy = LocalStore(tmp_path / "bucket")
    copy.delete(school_measures_key(YEAR))
    monkeypatch.setenv("VETREPORT_AGGREGATE_SCHOOLS_PER_CHUNK", "3")
    chunked = aggregate(copy, YEAR).indicator_values
    curated, _ = load_curated(store, years_shown(YEAR))
    assert chunked.equals(compute_indicator_values(curated))


def test_an_unreadable_cache_is_recomputed(corrected: dict, tmp_path: Path) -> None:
    shutil.copytree(corrected["store"].root, tmp_path / "bucket")
    copy = LocalStore(tmp_path / "bucket")
    copy.put(school_measures_key(YEAR), b"not parquet")
    result = aggregate(copy, YEAR)
    assert result.recomputed_school_count == SCHOOLS
    assert result.indicator_values.equals(corrected["incremental"].indicator_values)
