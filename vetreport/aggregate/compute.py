"""Aggregation: curated submissions in, indicator values and report-shaped tables out.

What belongs here: loading the current accepted submissions of each dataset into DuckDB,
running the SQL files of sql/ (measures per school, then indicators at nation, province,
city, county and school grain), and shaping the results into the report's tables with
Polars. The rules (which measures, which indicators, which tables) live in sql/ and
schemas/*.csv. Regions are attributes from the registry: a second city or province only
adds rows.

Layers, named by grain (PUDL style):
- ``curated_{dataset}``: the accepted rows of every current submission;
- ``core_school__yearly_registry`` and ``core_school__yearly_measures``;
- ``out_region__yearly_indicator_values``: every indicator at every grain;
- report tables (``admissions``, ``employment``... and the appendix ``scorecard``...):
  city shape (``{table}``), province shape (``{table}_by_province``), national shape
  (``{table}_national``) and per-school shape (``{table}_by_school``);
- ``regions``: every region the values cover, with the path a reader names it by;
- operator frames: ``completeness`` and ``completeness_by_region``
  (vetreport.curate.completeness) and ``variance`` (vetreport.aggregate.variance).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import duckdb
import polars as pl

from schemas.catalogue import load_datasets
from schemas.indicators import (
    BY_PROVINCE_SUFFIX,
    BY_SCHOOL_SUFFIX,
    NATIONAL_SUFFIX,
    indicator_terms,
    load_indicator_catalogue,
    load_table_specs,
    years_shown,
)
from vetreport.aggregate.regions import region_directory
from vetreport.aggregate.variance import history_findings, variance_table
from vetreport.bucket.store import ObjectStore
from vetreport.curate.completeness import (
    completeness_by_region,
    completeness_matrix,
    published_completeness,
)
from vetreport.curate.ledger import (
    current_submissions,
    current_upload_versions,
    read_records,
)
from vetreport.paths import SQL_DIR

READ_THREADS = 16


@dataclass
class AggregateResult:
    """Everything one aggregation produced for a report year."""

    report_year: int
    indicator_values: pl.DataFrame
    tables: dict[str, pl.DataFrame]
    submissions: pl.DataFrame
    completeness: pl.DataFrame = field(default_factory=pl.DataFrame)
    history_findings: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    schools_in_year: list[str] = field(default_factory=list)


def read_sql(relative_path: str) -> str:
    """The text of one SQL file under sql/."""
    return (SQL_DIR / relative_path).read_text(encoding="utf-8")


def load_curated(
    store: ObjectStore, years: Iterable[int]
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """The rows of every current accepted submission, one frame per dataset."""
    years = list(years)
    current = current_submissions(read_records(store, years), current_upload_versions(store, years))
    keys = current.get_column("curated_key").unique(maintain_order=True).to_list()
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        bodies = dict(zip(keys, pool.map(store.get, keys), strict=True))
    frames: dict[str, pl.DataFrame] = {}
    for dataset_id, group in current.group_by("dataset", maintain_order=True):
        # a curated file holds the rows of a batch's submissions: keep those that count
        counting = group.get_column("submission_id")
        parts = [
            pl.read_parquet(io.BytesIO(bodies[key])).filter(
                pl.col("submission_id").is_in(counting.implode())
            )
            for key in group.get_column("curated_key").unique(maintain_order=True)
        ]
        frames[str(dataset_id[0])] = pl.concat(parts, how="diagonal_relaxed")
    for dataset in load_datasets().values():
        if dataset.dataset_id not in frames:
            frames[dataset.dataset_id] = _empty_curated(dataset.dataset_id)
    return frames, current


def _empty_curated(dataset_id: str) -> pl.DataFrame:
    dataset = load_datasets()[dataset_id]
    schema = {column.column_name: column.polars_type for column in dataset.columns}
    schema |= {"year": pl.Int64, "submission_id": pl.Utf8, "source_row_number": pl.Int64}
    schema.setdefault("school_code", pl.Utf8)
    return pl.DataFrame(schema=schema)


def _measures_connection(curated: dict[str, pl.DataFrame]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the curated frames, the registry and the long measures."""
    connection = duckdb.connect(":memory:")
    for dataset_id, frame in curated.items():
        connection.register(f"curated_{dataset_id}", frame)
    connection.execute(
        "create table core_school__yearly_registry as "
        + read_sql("create_core_school__yearly_registry.sql")
    )
    measure_queries = sorted((SQL_DIR / "measures").glob("*.sql"))
    union = "\nunion all\n".join(
        f"select * from ({path.read_text(encoding='utf-8')})" for path in measure_queries
    )
    connection.execute(f"create table core_school__yearly_measures as {union}")
    return connection


def compute_measures(curated: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The long per-school (and per-city) measures: core_school__yearly_measures."""
    connection = _measures_connection(curated)
    try:
        return connection.execute("select * from core_school__yearly_measures").pl()
    finally:
        connection.close()


def compute_indicator_values(curated: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Run sql/ over the curated frames and return every indicator at every grain."""
    catalogue = load_indicator_catalogue()
    connection = _measures_connection(curated)
    try:
        connection.register("indicator_terms", indicator_terms(catalogue))
        connection.register("indicator_catalogue", catalogue)
        values = connection.execute(read_sql("indicators/compute_indicator_values.sql")).pl()
    finally:
        connection.close()
    # DuckDB sums arrive as decimals or doubles; the published contract is Float64.
    return values.with_columns(
        pl.col("year").cast(pl.Int64),
        pl.col("numerator", "denominator", "value_unrounded", "indicator_value").cast(pl.Float64),
    )


# The region shapes of a report table: (region_level, table id suffix, region key columns).
REGION_SHAPES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("city", "", ("city_name",)),
    ("province", BY_PROVINCE_SUFFIX, ("province_name",)),
    ("nation", NATIONAL_SUFFIX, ()),
)


def shape_tables(values: pl.DataFrame, report_year: int) -> dict[str, pl.DataFrame]:
    """Lay the indicator values out as the report's tables, in each region shape.

    Region shapes by layout: ``years_as_rows`` (the body tables: a row per region and year,
    a column per indicator) or ``indicators_as_rows`` (the appendix: a row per region and
    indicator, a column per year named ``value_{year}``). The city shape is the table id
    (keyed by ``city_name``), the province shape ``{id}_by_province`` (``province_name``),
    the national shape ``{id}_national`` (no region column: one nation). The per-school
    shape ``{id}_by_school`` is the same for both layouts: a row per school and year, a
    column per school-level indicator.
    """
    catalogue = load_indicator_catalogue()
    tables: dict[str, pl.DataFrame] = {}
    for spec in load_table_specs():
        rows = catalogue.filter(pl.col("table_id") == spec.table_id).sort("row_order")
        indicator_ids = rows.get_column("indicator_id").to_list()
        years = list(range(report_year - spec.years_shown + 1, report_year + 1))
        selected = _within_years_shown(
            values.filter(
                pl.col("indicator_id").is_in(indicator_ids) & pl.col("year").is_in(years)
            ),
            rows,
            report_year,
        )
        shaped: dict[str, pl.DataFrame] = {}
        for level, suffix, keys in REGION_SHAPES:
            region = selected.filter(pl.col("region_level") == level)
            if spec.layout == "indicators_as_rows":
                shaped[spec.table_id + suffix] = _indicators_as_rows(region, rows, years, keys)
            else:
                shaped[spec.table_id + suffix] = _wide(
                    region, [*keys, "year"], indicator_ids, years
                )
        school = selected.filter(pl.col("region_level") == "school")
        tables[spec.table_id] = shaped.pop(spec.table_id)
        tables[spec.table_id + BY_SCHOOL_SUFFIX] = _wide(
            school,
            ["city_name", "county_name", "school_code", "school_name", "year"],
            rows.filter(pl.col("is_school_level")).get_column("indicator_id").to_list(),
            years,
        )
        tables |= shaped
    return tables


def _within_years_shown(
    selected: pl.DataFrame, rows: pl.DataFrame, report_year: int
) -> pl.DataFrame:
    """Drop values of years an indicator does not show (its own years_shown, if set)."""
    limits = rows.filter(pl.col("years_shown").is_not_null()).select(
        "indicator_id", (report_year - pl.col("years_shown") + 1).alias("first_year")
    )
    if limits.height == 0:
        return selected
    return (
        selected.join(limits, on="indicator_id", how="left")
        .filter(pl.col("first_year").is_null() | (pl.col("year") >= pl.col("first_year")))
        .drop("first_year")
    )


def _indicators_as_rows(
    region: pl.DataFrame, rows: pl.DataFrame, years: list[int], keys: tuple[str, ...]
) -> pl.DataFrame:
    """A row per (region, indicator) in row order, a ``value_{year}`` column per year.

    ``keys`` are the region's columns (``city_name``, ``province_name``, none for the
    nation).
    """
    labels = rows.select("indicator_id", "name_zh", "unit", "row_order")
    value_columns = [f"value_{year}" for year in years]
    schema: dict[str, type[pl.DataType]] = {key: pl.Utf8 for key in keys}
    schema |= {"indicator_id": pl.Utf8, "name_zh": pl.Utf8, "unit": pl.Utf8}
    schema |= {name: pl.Float64 for name in value_columns}
    if region.height == 0 or labels.height == 0:
        return pl.DataFrame(schema=schema)
    values = region.select(
        *keys,
        "indicator_id",
        pl.format("value_{}", pl.col("year")).alias("year_column"),
        "indicator_value",
    )
    wide = values.pivot(
        on="year_column",
        index=[*keys, "indicator_id"],
        values="indicator_value",
        aggregate_function="first",
    )
    for name in value_columns:
        if name not in wide.columns:
            wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    if keys:
        names = region.select(keys).unique().sort(keys)
        labels = names.join(labels, how="cross")
    return (
        labels.join(wide, on=[*keys, "indicator_id"], how="left")
        .sort(*keys, "row_order")
        .select(list(schema))
        .cast(schema)
    )


def _wide(
    long: pl.DataFrame, index: list[str], indicator_ids: list[str], years: list[int]
) -> pl.DataFrame:
    schema = {name: (pl.Int64 if name == "year" else pl.Utf8) for name in index}
    schema |= {indicator_id: pl.Float64 for indicator_id in indicator_ids}
    if long.height == 0 or not indicator_ids:
        return pl.DataFrame(schema=schema)
    wide = long.pivot(
        on="indicator_id", index=index, values="indicator_value", aggregate_function="first"
    )
    for indicator_id in indicator_ids:
        if indicator_id not in wide.columns:
            wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(indicator_id))
    return wide.select(index + indicator_ids).cast(schema).sort(index)


def aggregate(store: ObjectStore, report_year: int) -> AggregateResult:
    """Aggregate everything a report year shows (its own and the previous years).

    Besides the report's tables this adds ``regions`` (every region the values cover, for
    readers to name one) and frames for operators: ``completeness`` (school x dataset
    status from the ledger and the registry, in its published view:
    vetreport.curate.completeness.published_completeness), ``completeness_by_region``
    (schools by status per nation, province, city and county, and dataset) and
    ``variance`` (changes against the previous year beyond each indicator's tolerance).
    The result also carries
    the completeness matrix and each school's history findings for the flow to show and
    write; this step reads the bucket and writes nothing.
    """
    curated, submissions = load_curated(store, years_shown(report_year))
    values = compute_indicator_values(curated)
    tables = shape_tables(values, report_year)
    variance = variance_table(values)
    matrix = completeness_matrix(store, report_year)
    tables["variance"] = variance
    tables["completeness"] = published_completeness(matrix)
    registry = curated["school_registry"].filter(pl.col("year") == report_year)
    tables["completeness_by_region"] = completeness_by_region(matrix, registry)
    tables["regions"] = region_directory(values)
    schools = (
        values.filter((pl.col("region_level") == "school") & (pl.col("year") == report_year))
        .get_column("school_code")
        .unique()
        .to_list()
    )
    return AggregateResult(
        report_year=report_year,
        indicator_values=values,
        tables=tables,
        submissions=submissions,
        completeness=matrix,
        history_findings=history_findings(variance, report_year),
        schools_in_year=sorted(schools),
    )
