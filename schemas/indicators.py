"""The indicator catalogue: tables, indicators and measures, typed and checked on load.

What belongs here: loading schemas/tables.csv, schemas/indicators.csv and
schemas/measures.csv; the checks that keep them consistent; formulas parsed once into
``Formula`` specs (numerator and denominator measures, multiplier, aggregation) and said
in words for every document that explains them. The SQL that computes the measures is in
sql/; running it is vetreport.aggregate.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import polars as pl

from schemas.catalogue import CATALOGUE_DIR, read_csv_rows, split_terms


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


def load_table_specs() -> list[TableSpec]:
    """The tables of the report, in display order, from schemas/tables.csv."""
    rows = read_csv_rows("tables.csv")
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
    "years_shown",
    "source_datasets",
    "note",
    *DEFINITION_COLUMNS,
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


def years_shown(report_year: int) -> list[int]:
    """The years a report year's tables show: itself and those before it, ascending."""
    longest = max(spec.years_shown for spec in load_table_specs())
    return list(range(report_year - longest + 1, report_year + 1))


def format_value(value: float | None, unit: str, decimals: int) -> str:
    """Format one figure as the report prints it."""
    if value is None:
        return "—"
    text = f"{value:.{decimals}f}"
    if unit == "%":
        return f"{text}%"
    if unit == "1:x":
        return f"1:{text}"
    return text


AGGREGATION_WORDS = {
    "sum": "ratio of sums",
    "max": "largest school value",
    "min": "smallest school value",
}


@dataclass(frozen=True)
class Formula:
    """An indicator's formula, parsed once: sum(numerator) / sum(denominator) × multiplier.

    ``numerator`` and ``denominator`` are measure ids (the catalogue writes them as
    ``a+b``); ``max``/``min`` aggregations take one numerator measure and no denominator.
    """

    numerator: tuple[str, ...]
    denominator: tuple[str, ...]
    multiplier: float
    aggregation: str

    @classmethod
    def parse(
        cls,
        numerator: str | None,
        denominator: str | None,
        multiplier: float | None = 1.0,
        aggregation: str | None = "sum",
    ) -> Formula:
        """A formula from the catalogue's text cells (``a+b``, ``c``, ...)."""
        return cls(
            numerator=split_terms(numerator, "+"),
            denominator=split_terms(denominator, "+"),
            multiplier=1.0 if multiplier is None else float(multiplier),
            aggregation=aggregation or "sum",
        )

    def in_words(self, names: dict[str, str], show_ids: bool = False) -> str:
        """The formula with measure names, e.g. ``[招生数] ÷ [招生数 + 普高招生数] × 100``.

        With ``show_ids`` each name is followed by its measure id and a ``max``/``min``
        aggregation is said in words (the form docs/indicators.md uses).
        """

        def words(terms: tuple[str, ...]) -> str:
            return " + ".join(
                f"{names.get(term, term)} (`{term}`)" if show_ids else names.get(term, term)
                for term in terms
            )

        if not self.numerator:
            return ""
        text = words(self.numerator)
        if show_ids and self.aggregation != "sum":
            return f"{AGGREGATION_WORDS[self.aggregation]} of {text}"
        if self.denominator:
            text = f"[{text}] ÷ [{words(self.denominator)}]"
        if self.multiplier != 1:
            text += f" × {self.multiplier:g}"
        return text


@dataclass(frozen=True)
class IndicatorSpec:
    """One indicator as defined in schemas/indicators.csv (its first table's names)."""

    indicator_id: str
    table_id: str
    row_order: int
    name_zh: str
    name_en: str
    unit: str
    formula: Formula
    decimals: int
    rounding: str
    years_shown: int | None
    is_school_level: bool
    variance_tolerance_pct: float
    source_datasets: tuple[str, ...]
    note: str


@cache
def load_indicator_specs() -> tuple[IndicatorSpec, ...]:
    """Every (table, indicator) row of the catalogue as a typed spec, in file order."""
    return tuple(
        IndicatorSpec(
            indicator_id=row["indicator_id"],
            table_id=row["table_id"],
            row_order=row["row_order"],
            name_zh=row["name_zh"],
            name_en=row["name_en"] or "",
            unit=row["unit"] or "",
            formula=Formula.parse(
                row["numerator"], row["denominator"], row["multiplier"], row["aggregation"]
            ),
            decimals=row["decimals"],
            rounding=row["rounding"],
            years_shown=row["years_shown"],
            is_school_level=row["is_school_level"],
            variance_tolerance_pct=row["variance_tolerance_pct"],
            source_datasets=split_terms(row["source_datasets"]),
            note=row["note"] or "",
        )
        for row in load_indicator_catalogue().iter_rows(named=True)
    )


@cache
def measure_names() -> dict[str, str]:
    """Measure id → Chinese name, from schemas/measures.csv."""
    return dict(load_measure_catalogue().select("measure_id", "name_zh").iter_rows())


def table_source_datasets(table_id: str) -> set[str]:
    """The datasets a catalogue table's indicators are computed from."""
    return {
        dataset
        for spec in load_indicator_specs()
        if spec.table_id == table_id
        for dataset in spec.source_datasets
    }


@dataclass(frozen=True)
class OutputColumn:
    """What a published column outside the indicator catalogue means (output_columns.csv)."""

    column_name: str
    name_zh: str
    name_en: str
    unit: str
    description_en: str


@dataclass(frozen=True)
class OutputTable:
    """A published table beside the report's own tables (output_tables.csv)."""

    table_id: str
    title_zh: str
    title_en: str
    grain_en: str


@cache
def load_output_columns() -> tuple[OutputColumn, ...]:
    """The meaning of every published column that is not an indicator."""
    return tuple(OutputColumn(**row) for row in read_csv_rows("output_columns.csv"))


@cache
def load_output_tables() -> tuple[OutputTable, ...]:
    """The published tables that are not report tables (indicator values, completeness...)."""
    return tuple(OutputTable(**row) for row in read_csv_rows("output_tables.csv"))


# The shapes of a report table: its id is the city shape, a suffix names each other shape.
BY_SCHOOL_SUFFIX = "_by_school"
BY_PROVINCE_SUFFIX = "_by_province"
NATIONAL_SUFFIX = "_national"
SHAPE_MARKERS: dict[str, tuple[str, ...]] = {
    BY_SCHOOL_SUFFIX: (BY_SCHOOL_SUFFIX, "按学校", "分学校"),
    BY_PROVINCE_SUFFIX: (BY_PROVINCE_SUFFIX, "按省份", "分省份", "按省", "分省"),
    NATIONAL_SUFFIX: (NATIONAL_SUFFIX, "全国"),
}


def table_id_for(name: str) -> str | None:
    """The table id a reader means: the id itself, the report's label (表5, 附表1) or title.

    Full-width characters and spaces are folded; ``表5_by_school`` (or ``表5 按学校``) names
    the per-school shape, ``表5_by_province`` (``表5 分省``) the province shape and
    ``表5_national`` (``表5 全国``) the national one. None when nothing matches.
    """
    folded = unicodedata.normalize("NFKC", name).strip().replace(" ", "")
    suffix = ""
    for shape, markers in SHAPE_MARKERS.items():
        for marker in markers:
            if folded.endswith(marker) and folded != marker:
                folded, suffix = folded.removesuffix(marker), shape
                break
        if suffix:
            break
    for spec in load_table_specs():
        names = {spec.table_id, spec.report_label, spec.title_zh, spec.title_en.lower()}
        if folded in names or folded.lower() in names:
            return spec.table_id + suffix
    return None
