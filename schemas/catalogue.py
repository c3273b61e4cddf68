"""The dataset catalogue and the Pandera models generated from it.

What belongs here: loading the data files beside this module (datasets.csv, columns.csv,
rules.csv), checking them on load, and turning each dataset's columns into a Pandera
``DataFrameSchema`` for the polars backend. The catalogue is the single source for the
models, the header aliases and the data dictionary: change a CSV, not this code.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import pandera.polars as pa
import polars as pl

CATALOGUE_DIR = Path(__file__).resolve().parent
SCHEMA_VERSION = "2026.1"

DATA_TYPES: dict[str, type[pl.DataType]] = {
    "string": pl.Utf8,
    "integer": pl.Int64,
    "number": pl.Float64,
    "boolean": pl.Boolean,
}
SEVERITIES = ("error", "warning")
LAYERS = (
    "file",
    "structure",
    "field",
    "row",
    "dataset",
    "cross_dataset",
    "history",
    "collection",
)
# What a dataset is for (datasets.csv ``purpose``): figures the tables are computed from, or
# a record of the collection workflow (a school's explanations of its warnings).
PURPOSES = ("data", "workflow")


class CatalogueError(ValueError):
    """A catalogue file is inconsistent; raised on load so bad rows never reach validation."""


@dataclass(frozen=True)
class ColumnSpec:
    """One column of one dataset, as the catalogue defines it."""

    dataset_id: str
    column_name: str
    data_type: str
    unit: str
    header_zh: str
    header_en: str
    aliases: tuple[str, ...]
    is_required: bool
    min_value: float | None
    max_value: float | None
    allowed_values: tuple[str, ...]
    pattern: str | None
    description_en: str

    @property
    def polars_type(self) -> type[pl.DataType]:
        """The Polars type the column is cast to."""
        return DATA_TYPES[self.data_type]

    @property
    def header_with_unit(self) -> str:
        """The Chinese header as templates print it, e.g. 占地面积（平方米）."""
        return f"{self.header_zh}（{self.unit}）" if self.unit else self.header_zh


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: its names, grain, key and columns."""

    dataset_id: str
    name_zh: str
    name_en: str
    grain: str
    submitted_by: str
    key_columns: tuple[str, ...]
    description_en: str
    columns: tuple[ColumnSpec, ...] = field(default=())
    purpose: str = "data"

    @property
    def is_data(self) -> bool:
        """Whether tables are computed from it (not a record of the collection workflow)."""
        return self.purpose == "data"

    @property
    def column_names(self) -> list[str]:
        """Canonical column names in catalogue order."""
        return [column.column_name for column in self.columns]

    def column(self, name: str) -> ColumnSpec:
        """Return one column's spec."""
        for column in self.columns:
            if column.column_name == name:
                return column
        raise KeyError(f"{self.dataset_id} has no column {name}")


@dataclass(frozen=True)
class RuleSpec:
    """One validation rule: stable id, layer, severity, messages and an optional predicate."""

    rule_id: str
    layer: str
    severity: str
    dataset_id: str
    columns: tuple[str, ...]
    predicate_sql: str
    message_zh: str
    message_en: str
    fix_zh: str
    # A warning of this rule must be explained by the school before it may sign off.
    needs_explanation: bool = False


def read_csv_rows(path: Path | str) -> list[dict[str, str]]:
    """The rows of a UTF-8 CSV file with a header; a bare name is a file of schemas/."""
    source = CATALOGUE_DIR / path if isinstance(path, str) else path
    with source.open(encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def split_terms(text: str | None, separator: str = "|") -> tuple[str, ...]:
    """The parts of a catalogue cell such as ``graduates|staff`` or ``a+b``, stripped."""
    if not text:
        return ()
    return tuple(part.strip() for part in text.split(separator) if part.strip())


def _optional_float(text: str) -> float | None:
    return float(text) if text.strip() else None


_TRAILING_BRACKETS = re.compile(r"[(\[【<][^()\[\]【】<>]*[)\]】>]$")


@lru_cache(maxsize=65_536)  # header cells repeat across files: fold each text once
def normalise_header(text: str) -> str:
    """Fold a header for matching.

    NFKC (full-width to half-width), lower case, no spaces or line breaks, no required-field
    marks (* ※) or trailing colon, and no trailing units in brackets: "初次就业月收入（元/月）*"
    split over two lines and "Starting monthly income (yuan/month)" fold like the catalogue.
    """
    folded = unicodedata.normalize("NFKC", str(text)).strip().lower()
    folded = re.sub(r"\s+", "", folded)
    folded = folded.replace("*", "").replace("※", "").rstrip(":")
    while (stripped := _TRAILING_BRACKETS.sub("", folded)) != folded and stripped:
        folded = stripped
    return folded


@cache
def load_datasets() -> dict[str, DatasetSpec]:
    """Load and check datasets.csv and columns.csv."""
    column_rows = read_csv_rows("columns.csv")
    columns_by_dataset: dict[str, list[ColumnSpec]] = {}
    for row in column_rows:
        if row["data_type"] not in DATA_TYPES:
            raise CatalogueError(f"columns.csv: unknown data_type {row['data_type']!r}")
        if row["pattern"]:
            re.compile(row["pattern"])
        spec = ColumnSpec(
            dataset_id=row["dataset_id"],
            column_name=row["column_name"],
            data_type=row["data_type"],
            unit=row["unit"],
            header_zh=row["header_zh"],
            header_en=row["header_en"],
            aliases=split_terms(row["aliases"]),
            is_required=row["is_required"].strip().lower() == "true",
            min_value=_optional_float(row["min_value"]),
            max_value=_optional_float(row["max_value"]),
            allowed_values=split_terms(row["allowed_values"]),
            pattern=row["pattern"] or None,
            description_en=row["description_en"],
        )
        columns_by_dataset.setdefault(spec.dataset_id, []).append(spec)

    datasets: dict[str, DatasetSpec] = {}
    for row in read_csv_rows("datasets.csv"):
        dataset_id = row["dataset_id"]
        columns = tuple(columns_by_dataset.pop(dataset_id, []))
        if not columns:
            raise CatalogueError(f"dataset {dataset_id} has no columns in columns.csv")
        names = [column.column_name for column in columns]
        if len(set(names)) != len(names):
            raise CatalogueError(f"dataset {dataset_id} repeats a column name")
        key_columns = split_terms(row["key_columns"])
        missing = [key for key in key_columns if key not in names]
        if missing:
            raise CatalogueError(f"dataset {dataset_id}: key columns {missing} are not columns")
        if row["submitted_by"] not in ("school", "bureau"):
            raise CatalogueError(f"dataset {dataset_id}: submitted_by must be school or bureau")
        if row["purpose"] not in PURPOSES:
            raise CatalogueError(f"dataset {dataset_id}: purpose must be one of {PURPOSES}")
        datasets[dataset_id] = DatasetSpec(
            dataset_id=dataset_id,
            name_zh=row["name_zh"],
            name_en=row["name_en"],
            grain=row["grain"],
            submitted_by=row["submitted_by"],
            key_columns=key_columns,
            description_en=row["description_en"],
            columns=columns,
            purpose=row["purpose"],
        )
    if columns_by_dataset:
        raise CatalogueError(f"columns.csv names unknown datasets: {sorted(columns_by_dataset)}")
    _check_unambiguous_headers(datasets)
    return datasets


def _check_unambiguous_headers(datasets: dict[str, DatasetSpec]) -> None:
    for dataset in datasets.values():
        seen: dict[str, str] = {}
        for column in dataset.columns:
            for header in header_variants(column):
                owner = seen.setdefault(header, column.column_name)
                if owner != column.column_name:
                    raise CatalogueError(
                        f"{dataset.dataset_id}: header {header!r} names both {owner} "
                        f"and {column.column_name}"
                    )


def header_variants(column: ColumnSpec) -> set[str]:
    """Every folded header a file may use for this column."""
    names = {column.column_name, column.header_zh, column.header_en, *column.aliases}
    return {normalise_header(name) for name in names if name}


def header_lookup(dataset_id: str, year: int | None = None) -> dict[str, str]:
    """Map each folded header variant of a dataset to its canonical column name.

    Headers of past years' templates (header_aliases.csv) are recognised in every year, since
    schools reuse old templates; where years disagree about a header, ``year``'s row wins.
    """
    return dict(_header_lookup(dataset_id, year))  # a copy: the caller may change it


@lru_cache(maxsize=1024)  # asked for every file, from a catalogue loaded once
def _header_lookup(dataset_id: str, year: int | None) -> dict[str, str]:
    lookup: dict[str, str] = {}
    for column in load_datasets()[dataset_id].columns:
        for header in header_variants(column):
            lookup[header] = column.column_name
    lookup.update(_year_header_aliases(dataset_id, year))
    return lookup


def _year_header_aliases(dataset_id: str, year: int | None = None) -> dict[str, str]:
    """Headers used in particular years' templates (header_aliases.csv), as data."""
    rows = [row for row in load_header_aliases() if row["dataset_id"] == dataset_id]
    # Rows of other years first, so the requested year's rows overwrite them.
    rows.sort(key=lambda row: year is not None and row["year"] == str(year))
    return {normalise_header(row["header"]): row["column_name"] for row in rows}


@cache
def load_header_aliases() -> tuple[dict[str, str], ...]:
    """Rows of header_aliases.csv (dataset_id, year, header, column_name), checked on load."""
    if not (CATALOGUE_DIR / "header_aliases.csv").exists():
        return ()
    datasets = load_datasets()
    rows = tuple(read_csv_rows("header_aliases.csv"))
    for row in rows:
        dataset = datasets.get(row["dataset_id"])
        if dataset is None or row["column_name"] not in dataset.column_names:
            raise CatalogueError(
                f"header_aliases.csv: {row['dataset_id']}.{row['column_name']} is not a column"
            )
        if row["year"] and not row["year"].isdigit():
            raise CatalogueError(f"header_aliases.csv: bad year {row['year']!r}")
    return rows


@cache
def load_rules() -> dict[str, RuleSpec]:
    """Load and check rules.csv: every rule id once, known layers and severities."""
    rules: dict[str, RuleSpec] = {}
    for row in read_csv_rows("rules.csv"):
        rule = RuleSpec(
            rule_id=row["rule_id"],
            layer=row["layer"],
            severity=row["severity"],
            dataset_id=row["dataset_id"],
            columns=split_terms(row["columns"]),
            predicate_sql=row["predicate_sql"],
            message_zh=row["message_zh"],
            message_en=row["message_en"],
            fix_zh=row["fix_zh"],
            needs_explanation=row["needs_explanation"].strip().lower() == "true",
        )
        if rule.rule_id in rules:
            raise CatalogueError(f"rules.csv: rule {rule.rule_id} appears twice")
        if rule.layer not in LAYERS or rule.severity not in SEVERITIES:
            raise CatalogueError(f"rules.csv: rule {rule.rule_id} has a bad layer or severity")
        if rule.needs_explanation and rule.severity != "warning":
            raise CatalogueError(
                f"rules.csv: {rule.rule_id} is an error; errors are never explained"
            )
        rules[rule.rule_id] = rule
    return rules


def row_rules(dataset_id: str) -> list[RuleSpec]:
    """The cross-field rules (SQL predicates over one row) that apply to a dataset."""
    return [
        rule
        for rule in load_rules().values()
        if rule.dataset_id == dataset_id and rule.predicate_sql
    ]


@cache
def pandera_schema(dataset_id: str, unique_within: str | None = None) -> pa.DataFrameSchema:
    """The Pandera model (polars backend) of one dataset, built once from the catalogue.

    ``unique_within`` names a column that the key is unique within: validating many files'
    rows together, a key may repeat across files but not inside one.
    """
    dataset = load_datasets()[dataset_id]
    columns: dict[str, pa.Column] = {}
    for column in dataset.columns:
        checks: list[pa.Check] = []
        if column.min_value is not None:
            checks.append(pa.Check.ge(column.min_value))
        if column.max_value is not None:
            checks.append(pa.Check.le(column.max_value))
        if column.allowed_values:
            checks.append(pa.Check.isin(list(column.allowed_values)))
        if column.pattern:
            checks.append(pa.Check.str_matches(column.pattern))
        columns[column.column_name] = pa.Column(
            column.polars_type,
            checks=checks,
            nullable=not column.is_required,
            required=column.is_required,
        )
    return pa.DataFrameSchema(
        columns,
        unique=[*dataset.key_columns, *([unique_within] if unique_within else [])],
        name=dataset_id,
        strict=False,
    )
