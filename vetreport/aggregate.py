"""Aggregation: curated submissions in, indicator values and report-shaped tables out.

What belongs here: loading the current accepted submissions of each dataset into DuckDB,
running the SQL files of sql/ (measures per school, then indicators at city, county and
school grain), and shaping the results into the report's tables with Polars. The rules
(which measures, which indicators, which tables) live in sql/ and schemas/*.csv.

Layers, named by grain (PUDL style):
- ``curated_{dataset}``: the accepted rows of every current submission;
- ``core_school__yearly_registry`` and ``core_school__yearly_measures``;
- ``out_region__yearly_indicator_values``: every indicator at every grain;
- report tables (``admissions``, ``employment``...): city shape and per-school shape.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from schemas.catalogue import CATALOGUE_DIR, load_datasets
from vetreport.ledger import current_submissions, read_records
from vetreport.storage import ObjectStore

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
READ_THREADS = 16


@dataclass(frozen=True)
class TableSpec:
    """One published table: ids, titles and how it is laid out."""

    table_id: str
    report_label: str
    title_zh: str
    title_en: str
    layout: str
    years_shown: int
    display_order: int


@dataclass
class AggregateResult:
    """Everything one aggregation produced for a report year."""

    report_year: int
    indicator_values: pl.DataFrame
    tables: dict[str, pl.DataFrame]
    submissions: pl.DataFrame


def load_table_specs() -> list[TableSpec]:
    """The tables of the report, in display order, from schemas/tables.csv."""
    with (CATALOGUE_DIR / "tables.csv").open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    specs = [
        TableSpec(
            table_id=row["table_id"],
            report_label=row["report_label"],
            title_zh=row["title_zh"],
            title_en=row["title_en"],
            layout=row["layout"],
            years_shown=int(row["years_shown"]),
            display_order=int(row["display_order"]),
        )
        for row in rows
    ]
    return sorted(specs, key=lambda spec: spec.display_order)


def load_indicator_catalogue() -> pl.DataFrame:
    """The indicator catalogue (schemas/indicators.csv), checked against the tables."""
    frame = pl.read_csv(
        CATALOGUE_DIR / "indicators.csv",
        schema_overrides={"multiplier": pl.Float64, "decimals": pl.Int64},
    ).with_columns(pl.col("is_school_level").cast(pl.Utf8).str.to_lowercase() == "true")
    known_tables = {spec.table_id for spec in load_table_specs()}
    unknown = set(frame.get_column("table_id").unique().to_list()) - known_tables
    if unknown:
        raise ValueError(f"indicators.csv names unknown tables: {sorted(unknown)}")
    duplicates = frame.filter(pl.struct("table_id", "indicator_id").is_duplicated())
    if duplicates.height:
        raise ValueError("indicators.csv repeats an indicator within a table")
    return frame


def indicator_terms(catalogue: pl.DataFrame) -> pl.DataFrame:
    """Explode numerator and denominator expressions (a+b) into one row per measure."""
    definitions = catalogue.unique(subset="indicator_id", keep="first")
    numerators = definitions.select(
        "indicator_id",
        pl.lit("numerator").alias("role"),
        pl.col("numerator").str.split("+").alias("measure_id"),
    )
    denominators = definitions.filter(pl.col("denominator").is_not_null()).select(
        "indicator_id",
        pl.lit("denominator").alias("role"),
        pl.col("denominator").str.split("+").alias("measure_id"),
    )
    return (
        pl.concat([numerators, denominators])
        .explode("measure_id", empty_as_null=True)
        .with_columns(pl.col("measure_id").str.strip_chars())
    )


def read_sql(relative_path: str) -> str:
    """The text of one SQL file under sql/."""
    return (SQL_DIR / relative_path).read_text(encoding="utf-8")


def load_curated(
    store: ObjectStore, years: Iterable[int]
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """The rows of every current accepted submission, one frame per dataset."""
    current = current_submissions(read_records(store, years))
    keys = current.get_column("curated_key").to_list()
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        bodies = dict(zip(keys, pool.map(store.get, keys), strict=True))
    frames: dict[str, pl.DataFrame] = {}
    for dataset_id, group in current.group_by("dataset", maintain_order=True):
        parts = [
            pl.read_parquet(io.BytesIO(bodies[key])) for key in group.get_column("curated_key")
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


def compute_indicator_values(curated: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Run sql/ over the curated frames and return every indicator at every grain."""
    catalogue = load_indicator_catalogue()
    connection = duckdb.connect(":memory:")
    try:
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


def shape_tables(values: pl.DataFrame, report_year: int) -> dict[str, pl.DataFrame]:
    """Lay the indicator values out as the report's tables, city and per-school shapes."""
    catalogue = load_indicator_catalogue()
    tables: dict[str, pl.DataFrame] = {}
    for spec in load_table_specs():
        rows = catalogue.filter(pl.col("table_id") == spec.table_id).sort("row_order")
        indicator_ids = rows.get_column("indicator_id").to_list()
        years = list(range(report_year - spec.years_shown + 1, report_year + 1))
        selected = values.filter(
            pl.col("indicator_id").is_in(indicator_ids) & pl.col("year").is_in(years)
        )
        city = selected.filter(pl.col("region_level") == "city")
        tables[spec.table_id] = _wide(city, ["city_name", "year"], indicator_ids, years)
        school = selected.filter(pl.col("region_level") == "school")
        tables[f"{spec.table_id}_by_school"] = _wide(
            school,
            ["city_name", "county_name", "school_code", "school_name", "year"],
            [
                row
                for row, level in zip(
                    indicator_ids, rows.get_column("is_school_level"), strict=True
                )
                if level
            ],
            years,
        )
    return tables


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
    """Aggregate everything a report year shows (its own and the previous years)."""
    longest = max(spec.years_shown for spec in load_table_specs())
    years = list(range(report_year - longest + 1, report_year + 1))
    curated, submissions = load_curated(store, years)
    values = compute_indicator_values(curated)
    return AggregateResult(
        report_year=report_year,
        indicator_values=values,
        tables=shape_tables(values, report_year),
        submissions=submissions,
    )
