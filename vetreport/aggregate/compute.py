"""Aggregation: curated submissions in, indicator values and report-shaped tables out.

What belongs here: loading the current accepted submissions of each dataset into DuckDB,
running the SQL files of sql/ (measures per school, then indicators at city, county and
school grain), and shaping the results into the report's tables with Polars. The rules
(which measures, which indicators, which tables) live in sql/ and schemas/*.csv.

Layers, named by grain (PUDL style):
- ``curated_{dataset}``: the accepted rows of every current submission;
- ``core_school__yearly_registry`` and ``core_school__yearly_measures``;
- ``out_region__yearly_indicator_values``: every indicator at every grain;
- report tables (``admissions``, ``employment``... and the appendix ``scorecard``...):
  city shape and per-school shape;
- operator frames: ``completeness`` (vetreport.curate.completeness) and ``variance``
  (vetreport.aggregate.variance).
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
from vetreport.bucket.store import ObjectStore
from vetreport.curate.ledger import current_submissions, read_records
from vetreport.paths import SQL_DIR

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
    bad_layouts = [spec.table_id for spec in specs if spec.layout not in LAYOUTS]
    if bad_layouts:
        raise IndicatorCatalogueError(f"tables.csv: layout must be one of {LAYOUTS}: {bad_layouts}")
    return sorted(specs, key=lambda spec: spec.display_order)


AGGREGATIONS = ("sum", "max", "min")
ROUNDINGS = ("half_up", "down")
LAYOUTS = ("years_as_rows", "indicators_as_rows")
MAX_DECIMALS = 6
# Columns that define an indicator's value: an indicator shown in several tables must have
# the same definition in each (its name may differ from table to table).
DEFINITION_COLUMNS = (
    "unit",
    "numerator",
    "denominator",
    "multiplier",
    "decimals",
    "aggregation",
    "rounding",
    "is_school_level",
    "variance_tolerance_pct",
)
INDICATOR_COLUMNS = (
    "indicator_id",
    "table_id",
    "row_order",
    "name_zh",
    "name_en",
    "unit",
    "numerator",
    "denominator",
    "multiplier",
    "decimals",
    "aggregation",
    "rounding",
    "years_shown",
    "is_school_level",
    "variance_tolerance_pct",
    "source_datasets",
    "note",
)


class IndicatorCatalogueError(ValueError):
    """schemas/indicators.csv is inconsistent: raised on load, listing every bad row."""


def load_measure_catalogue() -> pl.DataFrame:
    """The measures the SQL of sql/measures/ produces (schemas/measures.csv)."""
    frame = pl.read_csv(CATALOGUE_DIR / "measures.csv", infer_schema=False)
    duplicated = frame.filter(pl.col("measure_id").is_duplicated())
    if duplicated.height:
        ids = sorted(set(duplicated.get_column("measure_id").to_list()))
        raise IndicatorCatalogueError(f"measures.csv repeats measure ids: {ids}")
    return frame


def load_indicator_catalogue(path: Path | None = None) -> pl.DataFrame:
    """The indicator catalogue (schemas/indicators.csv), checked on load.

    Checks: every table is known; no (table, indicator) twice; row orders unique within a
    table; decimals whole numbers from 0 to 6; known aggregation and rounding rules; every
    measure a numerator or denominator names is produced by sql/measures/ (the error lists
    the unknown ids); ``max``/``min`` take one measure and no denominator; an indicator
    shown in several tables is defined the same way in each.
    """
    source = path or CATALOGUE_DIR / "indicators.csv"
    raw = pl.read_csv(source, infer_schema=False)
    missing = [name for name in INDICATOR_COLUMNS if name not in raw.columns]
    if missing:
        raise IndicatorCatalogueError(f"{source.name}: missing columns {missing}")
    problems: list[str] = []
    bad_decimals = raw.filter(
        ~pl.col("decimals").fill_null("").str.contains(r"^[0-9]$")
        | (pl.col("decimals").cast(pl.Int64, strict=False) > MAX_DECIMALS)
    )
    if bad_decimals.height:
        problems.append(
            "decimals must be a whole number from 0 to "
            f"{MAX_DECIMALS}: {bad_decimals.get_column('indicator_id').to_list()}"
        )
    bad_numbers = raw.filter(
        pl.col("multiplier").cast(pl.Float64, strict=False).is_null()
        | pl.col("row_order").cast(pl.Int64, strict=False).is_null()
        | (
            pl.col("years_shown").is_not_null()
            & pl.col("years_shown").cast(pl.Int64, strict=False).is_null()
        )
        | pl.col("variance_tolerance_pct").cast(pl.Float64, strict=False).is_null()
    )
    if bad_numbers.height:
        problems.append(
            "multiplier, row_order, years_shown and variance_tolerance_pct must be numbers: "
            f"{bad_numbers.get_column('indicator_id').to_list()}"
        )
    if problems:
        raise IndicatorCatalogueError(f"{source.name}: " + "; ".join(problems))

    frame = raw.with_columns(
        pl.col("row_order").cast(pl.Int64),
        pl.col("multiplier").cast(pl.Float64),
        pl.col("decimals").cast(pl.Int64),
        pl.col("years_shown").cast(pl.Int64),
        pl.col("variance_tolerance_pct").cast(pl.Float64),
        pl.col("aggregation").fill_null("sum"),
        pl.col("rounding").fill_null("half_up"),
        pl.col("is_school_level").str.to_lowercase() == "true",
    )
    problems.extend(_catalogue_problems(frame))
    if problems:
        raise IndicatorCatalogueError(f"{source.name}: " + "; ".join(problems))
    return frame


def _catalogue_problems(frame: pl.DataFrame) -> list[str]:
    problems: list[str] = []
    required = ["indicator_id", "table_id", "name_zh", "unit", "numerator", "source_datasets"]
    incomplete = frame.filter(pl.any_horizontal(pl.col(required).is_null()))
    if incomplete.height:
        problems.append(f"rows with empty {required}: {incomplete.get_column('indicator_id')}")
    known_tables = {spec.table_id for spec in load_table_specs()}
    unknown_tables = set(frame.get_column("table_id").drop_nulls().to_list()) - known_tables
    if unknown_tables:
        problems.append(f"unknown tables: {sorted(unknown_tables)}")
    for keys, what in (
        (["table_id", "indicator_id"], "an indicator twice in a table"),
        (["table_id", "row_order"], "a row order twice in a table"),
    ):
        repeated = frame.filter(pl.struct(keys).is_duplicated())
        if repeated.height:
            problems.append(f"{what}: {sorted(set(map(tuple, repeated.select(keys).rows())))}")
    for column, allowed in (("aggregation", AGGREGATIONS), ("rounding", ROUNDINGS)):
        bad = frame.filter(~pl.col(column).is_in(list(allowed)))
        if bad.height:
            problems.append(
                f"{column} must be one of {list(allowed)}: {bad.get_column('indicator_id')}"
            )
    single_measure = frame.filter(
        pl.col("aggregation").is_in(["max", "min"])
        & (pl.col("numerator").str.contains(r"\+") | pl.col("denominator").is_not_null())
    )
    if single_measure.height:
        problems.append(
            "max/min take one numerator measure and no denominator: "
            f"{single_measure.get_column('indicator_id').to_list()}"
        )
    known_measures = set(load_measure_catalogue().get_column("measure_id").to_list())
    named = set(indicator_terms(frame, unique=False).get_column("measure_id").to_list())
    unknown_measures = sorted(named - known_measures - {None, ""})
    if unknown_measures:
        problems.append(f"unknown measure ids (not in measures.csv): {unknown_measures}")
    inconsistent = (
        frame.select("indicator_id", *DEFINITION_COLUMNS)
        .unique()
        .filter(pl.col("indicator_id").is_duplicated())
        .get_column("indicator_id")
        .unique()
        .sort()
        .to_list()
    )
    if inconsistent:
        problems.append(f"indicators defined differently in two tables: {inconsistent}")
    return problems


def indicator_terms(catalogue: pl.DataFrame, unique: bool = True) -> pl.DataFrame:
    """Explode numerator and denominator expressions (a+b) into one row per measure."""
    definitions = catalogue.unique(subset="indicator_id", keep="first") if unique else catalogue
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


def indicator_definitions(catalogue: pl.DataFrame | None = None) -> pl.DataFrame:
    """One row per indicator id: its definition (the first table's names)."""
    catalogue = load_indicator_catalogue() if catalogue is None else catalogue
    return catalogue.unique(subset="indicator_id", keep="first", maintain_order=True)


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


def shape_tables(values: pl.DataFrame, report_year: int) -> dict[str, pl.DataFrame]:
    """Lay the indicator values out as the report's tables, city and per-school shapes.

    City shape by layout: ``years_as_rows`` (the body tables: a row per year, a column per
    indicator) or ``indicators_as_rows`` (the appendix: a row per indicator, a column per
    year named ``value_{year}``). The per-school shape is the same for both: a row per
    school and year, a column per school-level indicator.
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
        city = selected.filter(pl.col("region_level") == "city")
        if spec.layout == "indicators_as_rows":
            tables[spec.table_id] = _indicators_as_rows(city, rows, years)
        else:
            tables[spec.table_id] = _wide(city, ["city_name", "year"], indicator_ids, years)
        school = selected.filter(pl.col("region_level") == "school")
        tables[f"{spec.table_id}_by_school"] = _wide(
            school,
            ["city_name", "county_name", "school_code", "school_name", "year"],
            rows.filter(pl.col("is_school_level")).get_column("indicator_id").to_list(),
            years,
        )
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


def _indicators_as_rows(city: pl.DataFrame, rows: pl.DataFrame, years: list[int]) -> pl.DataFrame:
    """A row per (city, indicator) in row order, a ``value_{year}`` column per year."""
    labels = rows.select("indicator_id", "name_zh", "unit", "row_order")
    value_columns = [f"value_{year}" for year in years]
    schema: dict[str, type[pl.DataType]] = {
        "city_name": pl.Utf8,
        "indicator_id": pl.Utf8,
        "name_zh": pl.Utf8,
        "unit": pl.Utf8,
    }
    schema |= {name: pl.Float64 for name in value_columns}
    cities = city.select("city_name").unique().sort("city_name")
    if cities.height == 0 or labels.height == 0:
        return pl.DataFrame(schema=schema)
    values = city.select(
        "city_name",
        "indicator_id",
        pl.format("value_{}", pl.col("year")).alias("year_column"),
        "indicator_value",
    )
    wide = values.pivot(
        on="year_column",
        index=["city_name", "indicator_id"],
        values="indicator_value",
        aggregate_function="first",
    )
    for name in value_columns:
        if name not in wide.columns:
            wide = wide.with_columns(pl.lit(None, dtype=pl.Float64).alias(name))
    return (
        cities.join(labels, how="cross")
        .join(wide, on=["city_name", "indicator_id"], how="left")
        .sort("city_name", "row_order")
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


def years_shown(report_year: int) -> list[int]:
    """The years a report year's tables show: itself and those before it, ascending."""
    longest = max(spec.years_shown for spec in load_table_specs())
    return list(range(report_year - longest + 1, report_year + 1))


def later_years_showing(store: ObjectStore, year: int) -> list[int]:
    """Published report years after ``year`` whose tables show it, ascending.

    When a year's data changes, these must be aggregated again too: the 2023 report's
    2022 column is the 2022 data.
    """
    from vetreport.publish.writer import read_pointer

    candidates = range(year + 1, year + len(years_shown(year)))  # the years that can show it
    return [later for later in candidates if read_pointer(store, later) is not None]


def aggregate(store: ObjectStore, report_year: int) -> AggregateResult:
    """Aggregate everything a report year shows (its own and the previous years).

    Besides the report's tables this adds two frames for operators: ``completeness``
    (school x dataset status from the ledger and the registry, in its published view:
    vetreport.curate.completeness.published_completeness) and ``variance`` (changes
    against the previous year beyond each indicator's tolerance); the report year's
    variance is also written back to each school as history-layer warnings.
    """
    from vetreport.aggregate.variance import variance_table, write_history_reports
    from vetreport.curate.completeness import completeness_matrix, published_completeness

    curated, submissions = load_curated(store, years_shown(report_year))
    values = compute_indicator_values(curated)
    tables = shape_tables(values, report_year)
    variance = variance_table(values)
    tables["variance"] = variance
    tables["completeness"] = published_completeness(completeness_matrix(store, report_year))
    schools = (
        values.filter((pl.col("region_level") == "school") & (pl.col("year") == report_year))
        .get_column("school_code")
        .unique()
        .to_list()
    )
    write_history_reports(store, variance, report_year, schools)
    return AggregateResult(
        report_year=report_year,
        indicator_values=values,
        tables=tables,
        submissions=submissions,
    )
