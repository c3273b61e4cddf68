"""Per-school measures (``core_school__yearly_measures``) and their cache in the bucket.

What belongs here: running the measure queries of sql/measures/ over curated rows, and
keeping each school's measures of a year in the bucket
(``bucket.keys.school_measures_key``) with the fingerprint of the submissions that
produced them, so that an aggregation recomputes only the schools whose submissions
changed. The regions are never cached: every grain above the school is summed again from
the school measures by sql/indicators/ (a ratio of sums at every level).

Two kinds of measure queries, told apart by the tables they read:

- school queries read only datasets schools submit (``curated_{dataset}`` with
  ``submitted_by = school``). Their rows group by (year, school_code), and ingest refuses
  a school file with another school's code, so one school's measures depend on its own
  current submissions alone: they are computed for a few hundred schools at a time
  (``VETREPORT_AGGREGATE_SCHOOLS_PER_CHUNK``) and cached;
- bureau queries read the registry or the bureau's city figures (one or two files a year):
  they are computed on every run, never cached.

A school's fingerprint hashes its current (dataset, submission id, curated key) of the
year and the text of the school queries: a corrected file, a withdrawn one, a new
dataset or a changed query gives a new fingerprint, and only that school is recomputed.
The cache holds, per school, a marker row (``measure_id`` null) and its measure rows, all
with the fingerprint; a cache that cannot be read counts as empty.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import duckdb
import polars as pl

from schemas.catalogue import SCHEMA_VERSION, load_datasets
from vetreport.aggregate.engine import connect
from vetreport.bucket.keys import CITY_SUBMITTER, school_measures_key
from vetreport.bucket.store import KeyNotFound, ObjectStore
from vetreport.curate.curated import read_curated_rows
from vetreport.paths import SQL_DIR

MEASURES_DIR = SQL_DIR / "measures"
REGISTRY_TABLE = "core_school__yearly_registry"
CACHE_FORMAT = "1"
_CURATED_TABLE = re.compile(r"\bcurated_([a-z][a-z0-9_]*)\b")

MEASURES_SCHEMA: dict[str, type[pl.DataType]] = {
    "year": pl.Int64,
    "school_code": pl.Utf8,
    "city_name": pl.Utf8,
    "measure_id": pl.Utf8,
    "measure_value": pl.Float64,
}
CACHE_SCHEMA: dict[str, type[pl.DataType]] = {
    "year": pl.Int64,
    "school_code": pl.Utf8,
    "measures_fingerprint": pl.Utf8,
    "measure_id": pl.Utf8,
    "measure_value": pl.Float64,
}
MEASURE_ORDER = ("year", "school_code", "city_name", "measure_id")


def read_sql(relative_path: str) -> str:
    """The text of one SQL file under sql/."""
    return (SQL_DIR / relative_path).read_text(encoding="utf-8")


def school_dataset_ids() -> frozenset[str]:
    """The datasets schools submit (schemas/datasets.csv, ``submitted_by = school``)."""
    return frozenset(
        spec.dataset_id
        for spec in load_datasets().values()
        if spec.submitted_by == "school" and spec.is_data
    )


@dataclass(frozen=True)
class MeasureQueries:
    """The measure queries of sql/measures/, split by what they read."""

    school: tuple[Path, ...]
    bureau: tuple[Path, ...]

    @property
    def every(self) -> tuple[Path, ...]:
        """All of them in file-name order, as one union computes them."""
        return tuple(sorted(self.school + self.bureau))


@cache
def measure_queries() -> MeasureQueries:
    """School queries read school datasets only; bureau queries read anything else."""
    school_datasets = school_dataset_ids()
    school: list[Path] = []
    bureau: list[Path] = []
    for path in sorted(MEASURES_DIR.glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        named = set(_CURATED_TABLE.findall(text))
        if named and named <= school_datasets and REGISTRY_TABLE not in text:
            school.append(path)
        else:
            bureau.append(path)
    return MeasureQueries(tuple(school), tuple(bureau))


def empty_curated(dataset_id: str) -> pl.DataFrame:
    """A dataset's curated frame with no rows (its columns and the curated extras)."""
    dataset = load_datasets()[dataset_id]
    schema = {column.column_name: column.polars_type for column in dataset.columns}
    schema |= {"year": pl.Int64, "submission_id": pl.Utf8, "source_row_number": pl.Int64}
    schema.setdefault("school_code", pl.Utf8)
    return pl.DataFrame(schema=schema)


def with_every_column(frame: pl.DataFrame, dataset_id: str) -> pl.DataFrame:
    """``frame`` with the catalogue's columns it lacks added as nulls.

    Curated files written before an optional column joined the catalogue, or files that
    leave an optional column out, have no such column; the measure SQL reads it as null.
    """
    schema = empty_curated(dataset_id).schema
    missing = [name for name in schema if name not in frame.columns]
    if not missing:
        return frame
    return frame.with_columns(pl.lit(None, dtype=schema[name]).alias(name) for name in missing)


def curated_connection(curated: dict[str, pl.DataFrame]) -> duckdb.DuckDBPyConnection:
    """A DuckDB (memory-limited) with every curated dataset and the yearly registry.

    Datasets missing from ``curated`` are registered empty; columns missing from a frame as
    nulls (with_every_column).
    """
    connection = connect()
    for dataset_id in load_datasets():
        frame = curated.get(dataset_id)
        connection.register(
            f"curated_{dataset_id}",
            empty_curated(dataset_id) if frame is None else with_every_column(frame, dataset_id),
        )
    connection.execute(
        f"create table {REGISTRY_TABLE} as " + read_sql("create_core_school__yearly_registry.sql")
    )
    return connection


def run_measure_queries(curated: dict[str, pl.DataFrame], queries: Iterable[Path]) -> pl.DataFrame:
    """The long measures (MEASURES_SCHEMA) the queries give over the curated frames."""
    queries = list(queries)
    if not queries:
        return pl.DataFrame(schema=MEASURES_SCHEMA)
    union = "\nunion all\n".join(
        f"select * from ({path.read_text(encoding='utf-8')})" for path in queries
    )
    connection = curated_connection(curated)
    try:
        measures = connection.execute(union).pl()
    finally:
        connection.close()
    return measures.select(list(MEASURES_SCHEMA)).cast(MEASURES_SCHEMA)


@cache
def _fingerprint_salt() -> bytes:
    """What every fingerprint depends on besides the submissions: the school queries."""
    digest = hashlib.sha256(f"{CACHE_FORMAT}|{SCHEMA_VERSION}".encode())
    for path in measure_queries().school:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.digest()


def school_fingerprints(current: pl.DataFrame) -> pl.DataFrame:
    """(year, school_code, measures_fingerprint) of every school with a counting submission.

    ``current`` is ``ledger.current_submissions``; only the schools' own submissions of
    school datasets count (not the bureau's).
    """
    rows = current.filter(
        (pl.col("submitter") != CITY_SUBMITTER)
        & pl.col("dataset").is_in(sorted(school_dataset_ids()))
        & pl.col("curated_key").is_not_null()
    )
    grouped = (
        rows.sort("year", "submitter", "dataset", "submission_id")
        .group_by("year", "submitter", maintain_order=True)
        .agg(
            pl.format("{}={}@{}", "dataset", "submission_id", "curated_key")
            .str.join("|")
            .alias("parts")
        )
    )
    salt = _fingerprint_salt()
    fingerprints = [
        hashlib.sha256(salt + parts.encode()).hexdigest()[:32]
        for parts in grouped.get_column("parts")
    ]
    return pl.DataFrame(
        {
            "year": grouped.get_column("year"),
            "school_code": grouped.get_column("submitter"),
            "measures_fingerprint": pl.Series(fingerprints, dtype=pl.Utf8),
        },
        schema={"year": pl.Int64, "school_code": pl.Utf8, "measures_fingerprint": pl.Utf8},
    )


def read_measure_cache(store: ObjectStore, year: int) -> pl.DataFrame:
    """A year's cached school measures (CACHE_SCHEMA); empty when absent or unreadable."""
    try:
        frame = pl.read_parquet(io.BytesIO(store.get(school_measures_key(year))))
        return frame.select(list(CACHE_SCHEMA)).cast(CACHE_SCHEMA)
    except (KeyNotFound, pl.exceptions.PolarsError, OSError):
        return pl.DataFrame(schema=CACHE_SCHEMA)


def write_measure_cache(store: ObjectStore, year: int, frame: pl.DataFrame) -> None:
    """Replace a year's cache (each school's rows carry their fingerprint)."""
    buffer = io.BytesIO()
    frame.select(list(CACHE_SCHEMA)).write_parquet(buffer, compression="zstd")
    store.put(school_measures_key(year), buffer.getvalue(), "application/vnd.apache.parquet")


@dataclass(frozen=True)
class SchoolMeasures:
    """The school measures of some years and how many schools were recomputed."""

    measures: pl.DataFrame
    recomputed_school_count: int
    reused_school_count: int


def _compute_schools(
    store: ObjectStore, current: pl.DataFrame, schools: pl.DataFrame
) -> pl.DataFrame:
    """Compute the measures (CACHE_SCHEMA, with markers) of some (year, school) pairs."""
    pairs = schools.select("year", pl.col("school_code").alias("submitter"))
    submissions = current.filter(pl.col("dataset").is_in(sorted(school_dataset_ids()))).join(
        pairs, on=["year", "submitter"], how="semi"
    )
    curated = read_curated_rows(store, submissions)
    measures = run_measure_queries(curated, measure_queries().school)
    del curated
    strays = measures.join(schools, on=["year", "school_code"], how="anti")
    if strays.height:
        found = strays.select("year", "school_code").unique().rows()[:5]
        raise ValueError(
            f"curated rows name schools other than their submitter (ingest refuses those): {found}"
        )
    markers = schools.select(
        "year",
        "school_code",
        "measures_fingerprint",
        pl.lit(None, dtype=pl.Utf8).alias("measure_id"),
        pl.lit(None, dtype=pl.Float64).alias("measure_value"),
    )
    rows = measures.join(schools, on=["year", "school_code"], how="inner").select(
        list(CACHE_SCHEMA)
    )
    return pl.concat([markers, rows]).cast(CACHE_SCHEMA)


def school_measures(
    store: ObjectStore,
    current: pl.DataFrame,
    years: Iterable[int],
    schools_per_chunk: int,
) -> SchoolMeasures:
    """The school-query measures of the years, recomputing only the changed schools.

    Reads each year's cache, keeps the schools whose fingerprint still matches, computes
    the others ``schools_per_chunk`` at a time from their curated rows, and writes the
    cache back when it changed. Returns the measures (MEASURES_SCHEMA) in MEASURE_ORDER.
    """
    fingerprints = school_fingerprints(current)
    years_measures: list[pl.DataFrame] = []
    recomputed = reused = 0
    for year in sorted(set(years)):
        wanted = fingerprints.filter(pl.col("year") == year)
        cached = read_measure_cache(store, year)
        kept = cached.join(wanted, on=["year", "school_code", "measures_fingerprint"], how="semi")
        stale = wanted.join(
            kept.filter(pl.col("measure_id").is_null()),
            on=["year", "school_code", "measures_fingerprint"],
            how="anti",
        ).sort("school_code")
        fresh = [
            _compute_schools(store, current, stale.slice(start, schools_per_chunk))
            for start in range(0, stale.height, schools_per_chunk)
        ]
        year_cache = pl.concat([kept, *fresh]).sort("school_code", "measure_id", nulls_last=False)
        if stale.height or year_cache.height != cached.height:
            write_measure_cache(store, year, year_cache)
        recomputed += stale.height
        reused += wanted.height - stale.height
        years_measures.append(
            year_cache.filter(pl.col("measure_id").is_not_null()).select(
                "year",
                "school_code",
                pl.lit(None, dtype=pl.Utf8).alias("city_name"),
                "measure_id",
                "measure_value",
            )
        )
    measures = pl.concat([pl.DataFrame(schema=MEASURES_SCHEMA), *years_measures])
    return SchoolMeasures(
        measures.cast(MEASURES_SCHEMA).sort(MEASURE_ORDER, nulls_last=False), recomputed, reused
    )
