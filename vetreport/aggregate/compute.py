"""Aggregation: curated submissions in, indicator values and report-shaped tables out.

What belongs here: loading the current accepted submissions of each dataset into DuckDB,
running the SQL files of sql/ (measures per school, then indicators at nation, province,
city, county and school grain), and shaping the results into the report's tables with
Polars. The rules (which measures, which indicators, which tables) live in sql/ and
schemas/*.csv. Regions are attributes from the registry: a second city or province only
adds rows. The school measures and their cache in the bucket are
vetreport.aggregate.measures'; the DuckDB connections (memory limit, spilling) are
vetreport.aggregate.engine's.

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

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

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
from vetreport.aggregate.measures import (
    MEASURE_ORDER,
    curated_connection,
    empty_curated,
    measure_queries,
    read_sql,
    run_measure_queries,
    school_dataset_ids,
    school_measures,
)
from vetreport.aggregate.regions import region_directory
from vetreport.aggregate.school_feedback import school_feedback
from vetreport.aggregate.variance import history_findings, variance_table
from vetreport.bucket.store import ObjectStore
from vetreport.curate.collection import mark_explained, year_statuses
from vetreport.curate.completeness import (
    completeness_by_region,
    completeness_matrix,
    published_completeness,
)
from vetreport.curate.curated import read_curated_rows
from vetreport.curate.ledger import LedgerView, current_submissions_of_years, read_ledger_view
from vetreport.settings import load_settings

__all__ = [
    "AggregateResult",
    "aggregate",
    "compute_indicator_values",
    "compute_measures",
    "load_curated",
    "read_sql",
    "rollup_indicator_values",
    "shape_tables",
]


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
    school_feedback: pl.DataFrame = field(default_factory=pl.DataFrame)
    recomputed_school_count: int = 0
    reused_school_count: int = 0


_empty_curated = empty_curated


def load_curated(
    store: ObjectStore, years: Iterable[int], view: LedgerView | None = None
) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """The rows of every current accepted submission, one frame per dataset.

    ``view`` is the ledger as already read (``read_ledger_view`` of these years); without
    it the ledger is read here. Each curated file is read once, keeping the rows of the
    submissions that count (vetreport.curate.curated).
    """
    years = list(years)
    view = view or read_ledger_view(store, years)
    current = view.current_submissions().filter(pl.col("year").is_in(years))
    frames = read_curated_rows(store, current)
    for dataset_id in load_datasets():
        if dataset_id not in frames:
            frames[dataset_id] = empty_curated(dataset_id)
    return frames, current


def compute_measures(curated: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """The long per-school (and per-city) measures: core_school__yearly_measures."""
    return run_measure_queries(curated, measure_queries().every).sort(
        MEASURE_ORDER, nulls_last=False
    )


def rollup_indicator_values(measures: pl.DataFrame, registry_rows: pl.DataFrame) -> pl.DataFrame:
    """Every indicator at every grain from the long measures and the curated registry rows.

    ``measures`` is core_school__yearly_measures (MEASURES_SCHEMA); ``registry_rows`` the
    curated school_registry rows of the same years. Regions are sums over their schools
    (sql/indicators/compute_indicator_values.sql), computed in a memory-limited DuckDB.
    """
    catalogue = load_indicator_catalogue()
    connection = curated_connection({"school_registry": registry_rows})
    try:
        connection.register("core_school__yearly_measures", measures)
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


def compute_indicator_values(curated: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Run sql/ over the curated frames and return every indicator at every grain."""
    registry_rows = curated.get("school_registry")
    return rollup_indicator_values(
        compute_measures(curated),
        empty_curated("school_registry") if registry_rows is None else registry_rows,
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
    the completeness matrix, each school's history findings and each school's own numbers
    beside its city and peers (vetreport.aggregate.school_feedback) for the flow to show
    and write.

    The ledger is read (from its digests, leaving a digest of the records it read one by
    one) and the uploads listed once, a year at a time: only the report year's records are
    kept past what counts (see ``current_submissions_of_years``). School measures come
    from the cache of vetreport.aggregate.measures where a school's submissions are
    unchanged and are recomputed, a chunk of schools at a time, where they changed (the
    cache is the one thing this step writes); the bureau's registry and city figures are
    read on every run; every region is summed again from the school measures.
    """
    years = years_shown(report_year)
    # the report year's records are asked about again (completeness, explained warnings);
    # of the earlier years only what counts is kept
    view = read_ledger_view(store, [report_year], write_digest=True)
    submissions = current_submissions_of_years(store, years, write_digest=True, known=view)
    school_datasets = sorted(school_dataset_ids())
    bureau = read_curated_rows(store, submissions.filter(~pl.col("dataset").is_in(school_datasets)))
    registry_rows = bureau.get("school_registry", empty_curated("school_registry"))
    school_run = school_measures(
        store, submissions, years, load_settings().aggregate_schools_per_chunk
    )
    recomputed, reused = school_run.recomputed_school_count, school_run.reused_school_count
    measures = pl.concat(
        [school_run.measures, run_measure_queries(bureau, measure_queries().bureau)]
    ).sort(MEASURE_ORDER, nulls_last=False)
    del school_run
    values = rollup_indicator_values(measures, registry_rows)
    del measures
    tables = shape_tables(values, report_year)
    variance = variance_table(values)
    registry = registry_rows.filter(pl.col("year") == report_year)
    findings = history_findings(variance, report_year)
    matrix = completeness_matrix(store, report_year, view, registry, findings)
    tables["variance"] = variance
    tables["completeness"] = published_completeness(matrix)
    tables["completeness_by_region"] = completeness_by_region(matrix, registry)
    tables["regions"] = region_directory(values)
    schools_in_year = (
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
        history_findings=_with_explanations(view, report_year, findings),
        schools_in_year=sorted(schools_in_year),
        school_feedback=school_feedback(values, registry_rows, report_year),
        recomputed_school_count=recomputed,
        reused_school_count=reused,
    )


def _with_explanations(
    view: LedgerView, report_year: int, findings: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    """The schools' history findings, each marked explained (with the reason) or not."""
    year_view = view.of_year(report_year)
    statuses = year_statuses(
        year_view.records, year_view.current_versions, report_year, sorted(findings), findings
    )
    return mark_explained(findings, statuses)
