"""What every published table and column means, worked out from the catalogue.

What belongs here: the one place that turns a table id and a frame's columns into names
(Chinese and English), units, decimals, formulas and source datasets, for every writer
(workbook headers, the data dictionary, the DuckDB comments, the HTML report). It works
generically: a report table of schemas/tables.csv in either layout, in its city shape (the
table id), province shape (``_by_province``), national shape (``_national``) or per-school
shape (``_by_school``), and any other frame an aggregation adds (``indicator_values``,
``completeness``, ``regions``, ``variance`` or frames not known yet, which get their column
names as labels).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import polars as pl

from schemas.catalogue import load_datasets
from schemas.indicators import (
    BY_PROVINCE_SUFFIX,
    BY_SCHOOL_SUFFIX,
    NATIONAL_SUFFIX,
    Formula,
    TableSpec,
    indicator_definitions,
    load_indicator_catalogue,
    load_output_columns,
    load_output_tables,
    load_table_specs,
    measure_names,
)

YEAR_COLUMN = re.compile(r"^value_(\d{4})$")
STATUS_ZH = {"provisional": "暂定版", "final": "正式版", "revision": "修订版"}

# Columns that are not indicators: (中文, English, unit, description).
# What the columns outside the indicator catalogue mean, and the tables beside the report's
# (schemas/output_columns.csv and schemas/output_tables.csv).
KNOWN_COLUMNS: dict[str, tuple[str, str, str, str]] = {
    column.column_name: (column.name_zh, column.name_en, column.unit, column.description_en)
    for column in load_output_columns()
}
EXTRA_TABLES: dict[str, tuple[str, str, str]] = {
    table.table_id: (table.title_zh, table.title_en, table.grain_en)
    for table in load_output_tables()
}


@dataclass(frozen=True)
class VersionInfo:
    """The facts about one version that every output prints."""

    report_year: int
    version: int
    status: str
    created_at: str
    previous_version: int | None
    revision_of: int | None
    schema_version: str
    catalogue_version: str

    @property
    def status_zh(self) -> str:
        """暂定版, 正式版 or 修订版 (with the final it revises)."""
        text = STATUS_ZH.get(self.status, self.status)
        return f"{text}（修订 v{self.revision_of}）" if self.revision_of else text


# The report-table shapes with one row per region (and year or indicator): city, province,
# nation. Their titles add the region (the city shape's is the report's own title).
REGION_KINDS = ("city", "province", "national")
REGION_SHAPES = {
    BY_PROVINCE_SUFFIX: ("province", "（分省）", ", by province", "province"),
    NATIONAL_SUFFIX: ("national", "（全国）", ", national", ""),
}
KIND_ORDER = {"city": 0, "by_school": 1, "province": 2, "national": 3}


@dataclass(frozen=True)
class TableInfo:
    """One published table: where it comes from and how to title it."""

    table_id: str
    kind: str  # "city", "province", "national", "by_school" or "extra"
    spec: TableSpec | None
    label: str
    title_zh: str
    title_en: str
    grain_en: str

    def summary(self, row_count: int) -> dict[str, object]:
        """The facts every listing of tables gives: ids, titles, layout, grain, rows."""
        return {
            "table_id": self.table_id,
            "report_label": self.label,
            "title_zh": self.title_zh,
            "title_en": self.title_en,
            "layout": self.layout,
            "grain": self.grain_en,
            "row_count": row_count,
        }

    @property
    def full_title_zh(self) -> str:
        """The title as the report prints it, e.g. 表1 招生普职比情况."""
        return f"{self.label} {self.title_zh}".strip()

    @property
    def layout(self) -> str:
        """years_as_rows, indicators_as_rows, schools_as_rows or records."""
        if self.kind in REGION_KINDS and self.spec is not None:
            return self.spec.layout
        return "schools_as_rows" if self.kind == "by_school" else "records"


@dataclass(frozen=True)
class ColumnInfo:
    """One column of a published table."""

    name: str
    dtype: str
    name_zh: str
    name_en: str
    unit: str
    decimals: int | None
    indicator_id: str | None
    numerator: str | None
    denominator: str | None
    multiplier: float | None
    aggregation: str | None
    source_datasets: tuple[str, ...]
    description: str

    @property
    def header_zh(self) -> str:
        """The Chinese header with its unit, e.g. 普高招生数（人）."""
        if not self.unit or f"（{self.unit}）" in self.name_zh:
            return self.name_zh
        return f"{self.name_zh}（{self.unit}）"


@cache
def _specs() -> dict[str, TableSpec]:
    return {spec.table_id: spec for spec in load_table_specs()}


@cache
def _catalogue() -> pl.DataFrame:
    return load_indicator_catalogue()


@cache
def _definitions() -> dict[str, dict]:
    return {row["indicator_id"]: row for row in indicator_definitions(_catalogue()).to_dicts()}


def describe_table(table_id: str) -> TableInfo:
    """Titles and grain of any table id an aggregation may produce."""
    specs = _specs()
    if table_id in specs:
        spec = specs[table_id]
        grain = (
            "one row per city and year"
            if spec.layout == "years_as_rows"
            else "one row per city and indicator, a column per year"
        )
        return TableInfo(
            table_id, "city", spec, spec.report_label, spec.title_zh, spec.title_en, grain
        )
    for suffix, (kind, title_zh, title_en, region) in REGION_SHAPES.items():
        base = table_id.removesuffix(suffix)
        if table_id.endswith(suffix) and base in specs:
            spec = specs[base]
            per = f"one row per {region} and " if region else "one row per "
            grain = (
                per + "year"
                if spec.layout == "years_as_rows"
                else per + "indicator, a column per year"
            )
            if not region:
                grain += " (the whole nation)"
            return TableInfo(
                table_id,
                kind,
                spec,
                spec.report_label,
                spec.title_zh + title_zh,
                spec.title_en + title_en,
                grain,
            )
    base = table_id.removesuffix(BY_SCHOOL_SUFFIX)
    if table_id.endswith(BY_SCHOOL_SUFFIX) and base in specs:
        spec = specs[base]
        return TableInfo(
            table_id,
            "by_school",
            spec,
            spec.report_label,
            f"{spec.title_zh}（分学校）",
            f"{spec.title_en}, by school",
            "one row per school and year",
        )
    title_zh, title_en, grain = EXTRA_TABLES.get(table_id, (table_id, table_id, "see columns"))
    return TableInfo(table_id, "extra", None, "", title_zh, title_en, grain)


def ordered_table_ids(table_ids: list[str]) -> list[str]:
    """Report tables shape by shape (city, school, province, national), then the rest."""
    order = {spec_id: index for index, spec_id in enumerate(_specs())}

    def rank(table_id: str) -> tuple[int, int, str]:
        info = describe_table(table_id)
        base = info.spec.table_id if info.spec else ""
        kind = KIND_ORDER.get(info.kind, len(KIND_ORDER))
        return kind, order.get(base, 0), table_id

    return sorted(table_ids, key=rank)


@cache
def table_indicators(table_id: str) -> pl.DataFrame:
    """The catalogue rows of a report table (empty for other tables), in row order."""
    info = describe_table(table_id)
    if info.spec is None:
        return _catalogue().clear()
    rows = _catalogue().filter(pl.col("table_id") == info.spec.table_id).sort("row_order")
    if info.kind == "by_school":
        rows = rows.filter(pl.col("is_school_level"))
    return rows


def table_sources(table_id: str) -> list[str]:
    """The datasets a table's numbers come from (every dataset for tables outside the catalogue)."""
    rows = table_indicators(table_id)
    if rows.height == 0:
        return sorted(load_datasets())
    sources = (
        rows.get_column("source_datasets").str.split("|").explode(empty_as_null=True).unique()
    ).to_list()
    return sorted({*sources, "school_registry"})


def _indicator_column(name: str, dtype: str, row: dict) -> ColumnInfo:
    return ColumnInfo(
        name=name,
        dtype=dtype,
        name_zh=row["name_zh"],
        name_en=row["name_en"],
        unit=row["unit"] or "",
        decimals=row["decimals"],
        indicator_id=row["indicator_id"],
        numerator=row["numerator"],
        denominator=row["denominator"],
        multiplier=row["multiplier"],
        aggregation=row["aggregation"],
        source_datasets=tuple((row["source_datasets"] or "").split("|")),
        description=row["note"] or "",
    )


def describe_columns(table_id: str, schema: pl.Schema | dict) -> list[ColumnInfo]:
    """Every column of a table, in the frame's order, with names, units and formulas."""
    table_rows = {row["indicator_id"]: row for row in table_indicators(table_id).to_dicts()}
    datasets = load_datasets()
    columns: list[ColumnInfo] = []
    for name, dtype in schema.items():
        dtype_text = str(dtype)
        row = table_rows.get(name) or _definitions().get(name)
        year = YEAR_COLUMN.match(name)
        if row is not None:
            columns.append(_indicator_column(name, dtype_text, row))
            continue
        if year:
            zh, en, unit = f"{year[1]}年", f"value in {year[1]}", ""
            text = f"The indicator's value in {year[1]}; unit and decimals per row."
        elif name in KNOWN_COLUMNS:
            zh, en, unit, text = KNOWN_COLUMNS[name]
        elif name in datasets:
            zh, en, unit = datasets[name].name_zh, datasets[name].name_en, ""
            text = f"Status of the {name} dataset."
        else:
            zh, en, unit, text = name, name, "", ""
        columns.append(
            ColumnInfo(name, dtype_text, zh, en, unit, None, None, None, None, None, None, (), text)
        )
    return columns


def formula_words(numerator: str | None, denominator: str | None, multiplier: float | None) -> str:
    """A formula in Chinese measure names, e.g. [招生数] ÷ [招生数 + 普高招生数] × 100."""
    return Formula.parse(numerator, denominator, multiplier).in_words(measure_names())
