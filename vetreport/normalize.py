"""From a headed text table to typed, canonical columns, recording what could not be read.

What belongs here: mapping a file's headers to the catalogue's column names, and casting
text to the catalogue's types with the unambiguous clean-ups (NFKC full-width to half-width,
surrounding spaces, thousands separators, "34.30%" to 34.30, 是/否 to booleans). All of it
is vectorised Polars; a value that cannot be cast becomes null and a finding, never a crash.

Findings are rows of a Polars frame (see ``FINDING_SCHEMA``), so a file with a million
bad cells is still cheap to report.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from schemas.catalogue import DatasetSpec, header_lookup, normalise_header
from vetreport.readers import SOURCE_ROW, HeadedTable

FINDING_SCHEMA: dict[str, type[pl.DataType]] = {
    "rule_id": pl.Utf8,
    "sheet": pl.Utf8,
    "row_number": pl.Int64,
    "column": pl.Utf8,
    "header": pl.Utf8,
    "value": pl.Utf8,
    "detail": pl.Utf8,
}

TRUE_WORDS = ("是", "有", "y", "yes", "true", "t", "1", "√", "✓", "✔")
FALSE_WORDS = ("否", "无", "n", "no", "false", "f", "0", "×", "✗", "✘")
NATIONAL_ID_PATTERN = r"^[1-9]\d{5}(18|19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\d{3}[\dXx]$"
PERSON_NAME_HEADERS = ("姓名", "学生姓名", "教师姓名", "name", "fullname", "身份证号", "身份证号码")


@dataclass(frozen=True)
class NormalisedTable:
    """Typed canonical columns, the source row numbers, and what went wrong on the way."""

    frame: pl.DataFrame
    findings: pl.DataFrame
    header_by_column: dict[str, str]


def empty_findings() -> pl.DataFrame:
    """A findings frame with no rows."""
    return pl.DataFrame(schema=FINDING_SCHEMA)


def finding_rows(rows: list[dict[str, object]]) -> pl.DataFrame:
    """Build a findings frame from a few hand-made findings (file and structure layers)."""
    if not rows:
        return empty_findings()
    complete = [{name: row.get(name) for name in FINDING_SCHEMA} for row in rows]
    return pl.DataFrame(complete, schema=FINDING_SCHEMA)


def map_headers(table: HeadedTable, dataset: DatasetSpec) -> tuple[dict[str, str], pl.DataFrame]:
    """Map positional columns to canonical names; report missing, repeated and unknown ones."""
    lookup = header_lookup(dataset.dataset_id)
    mapping: dict[str, str] = {}
    header_by_column: dict[str, str] = {}
    problems: list[dict[str, object]] = []
    sheet = table.sheet_name
    for position, header in enumerate(table.headers):
        if not header.strip():
            continue
        folded = normalise_header(header)
        canonical = lookup.get(folded)
        if folded in {normalise_header(word) for word in PERSON_NAME_HEADERS}:
            problems.append(
                {"rule_id": "structure.privacy_column", "sheet": sheet, "header": header}
            )
        elif canonical is None:
            problems.append(
                {"rule_id": "structure.unknown_column", "sheet": sheet, "header": header}
            )
        elif canonical in header_by_column:
            problems.append(
                {
                    "rule_id": "structure.duplicate_column",
                    "sheet": sheet,
                    "column": canonical,
                    "header": header,
                    "detail": f"also given as {header_by_column[canonical]}",
                }
            )
        else:
            mapping[f"column_{position}"] = canonical
            header_by_column[canonical] = header
    for column in dataset.columns:
        if column.is_required and column.column_name not in header_by_column:
            problems.append(
                {
                    "rule_id": "structure.missing_column",
                    "sheet": sheet,
                    "column": column.column_name,
                    "header": column.header_zh,
                }
            )
    return mapping, finding_rows(problems)


def _clean_text(name: str) -> pl.Expr:
    text = pl.col(name).str.normalize("NFKC").str.strip_chars()
    return pl.when(text.str.len_chars() == 0).then(None).otherwise(text)


def _number_text(name: str) -> pl.Expr:
    return _clean_text(name).str.replace_all(r"[,\s]", "").str.replace(r"^(-?[0-9.]+)%$", "$1")


def _cast_expression(name: str, data_type: str) -> pl.Expr:
    if data_type == "string":
        return _clean_text(name)
    if data_type == "number":
        return _number_text(name).cast(pl.Float64, strict=False)
    if data_type == "integer":
        number = _number_text(name).cast(pl.Float64, strict=False)
        return pl.when(number == number.round(0)).then(number).otherwise(None).cast(pl.Int64)
    if data_type == "boolean":
        words = {word: True for word in TRUE_WORDS} | {word: False for word in FALSE_WORDS}
        return (
            _clean_text(name)
            .str.to_lowercase()
            .replace_strict(words, default=None, return_dtype=pl.Boolean)
        )
    raise ValueError(f"unknown data type {data_type}")


def normalise(table: HeadedTable, dataset: DatasetSpec) -> NormalisedTable:
    """Rename, clean and cast one headed table to the dataset's canonical typed columns."""
    mapping, header_findings = map_headers(table, dataset)
    renamed = table.frame.select([SOURCE_ROW, *mapping]).rename(mapping)
    header_by_column = {
        canonical: table.headers[int(position.split("_")[1])]
        for position, canonical in mapping.items()
    }
    for column in dataset.columns:
        if column.column_name not in renamed.columns:
            renamed = renamed.with_columns(pl.lit(None, dtype=pl.Utf8).alias(column.column_name))

    casts = [
        _cast_expression(column.column_name, column.data_type).alias(column.column_name)
        for column in dataset.columns
    ]
    typed = renamed.select([pl.col(SOURCE_ROW), *casts])

    failures: list[pl.DataFrame] = []
    for column in dataset.columns:
        name = column.column_name
        if column.data_type == "string":
            continue
        present = _clean_text(name).is_not_null()
        with_typed = renamed.with_columns(typed.get_column(name).alias("_typed"))
        failed = with_typed.filter(present & pl.col("_typed").is_null()).select(
            pl.lit("field.type").alias("rule_id"),
            pl.lit(table.sheet_name, dtype=pl.Utf8).alias("sheet"),
            pl.col(SOURCE_ROW).alias("row_number"),
            pl.lit(name).alias("column"),
            pl.lit(header_by_column.get(name, column.header_zh)).alias("header"),
            pl.col(name).alias("value"),
            pl.lit(f"expected {column.data_type}").alias("detail"),
        )
        failures.append(failed)
    failures.append(_national_id_findings(renamed, table.sheet_name, header_by_column))
    findings = pl.concat([header_findings, *failures], how="vertical_relaxed")
    return NormalisedTable(typed, findings, header_by_column)


def _national_id_findings(
    renamed: pl.DataFrame, sheet: str | None, header_by_column: dict[str, str]
) -> pl.DataFrame:
    """Any text cell that looks like a resident id number is a privacy error."""
    parts = []
    for name in renamed.columns:
        if name == SOURCE_ROW:
            continue
        hit = _clean_text(name).str.contains(NATIONAL_ID_PATTERN).fill_null(False)
        parts.append(
            renamed.filter(hit).select(
                pl.lit("field.privacy_id_number").alias("rule_id"),
                pl.lit(sheet, dtype=pl.Utf8).alias("sheet"),
                pl.col(SOURCE_ROW).alias("row_number"),
                pl.lit(name).alias("column"),
                pl.lit(header_by_column.get(name, name)).alias("header"),
                # Never echo a national id back in a report: mask all but the last 4 digits.
                (pl.lit("**************") + pl.col(name).str.slice(-4)).alias("value"),
                pl.lit(None, dtype=pl.Utf8).alias("detail"),
            )
        )
    return pl.concat(parts, how="vertical_relaxed") if parts else empty_findings()
