"""The data dictionary of a version: every table and column, as Markdown and as JSON.

What belongs here: for each published table its titles, grain, row count, files and
source datasets; for each column its Chinese and English names, type, unit, decimals and
formula (numerator and denominator as measure ids and in words, multiplier, aggregation);
for tables with indicators as rows, the same for every row. The JSON is the
machine-readable twin of the Markdown, generated from the same dictionary object.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from schemas.catalogue import load_datasets, split_terms
from schemas.indicators import measure_names
from vetreport.publish.outputs.metadata import (
    VersionInfo,
    describe_columns,
    describe_table,
    formula_words,
    ordered_table_ids,
    table_indicators,
    table_sources,
)


def _split(expression: str | None) -> list[dict[str, str]]:
    if not expression:
        return []
    names = measure_names()
    return [
        {"measure_id": term, "name_zh": names.get(term, "")}
        for term in split_terms(expression, "+")
    ]


def _formula(numerator: str | None, denominator: str | None, multiplier: Any, aggregation: Any):
    if not numerator:
        return None
    return {
        "numerator": _split(numerator),
        "denominator": _split(denominator),
        "multiplier": multiplier,
        "aggregation": aggregation,
        "in_words": formula_words(numerator, denominator, multiplier),
    }


def build_dictionary(
    tables: dict[str, pl.DataFrame],
    files: dict[str, dict[str, str]],
    sheets: dict[str, str],
    version: VersionInfo,
) -> dict[str, Any]:
    """The dictionary as a JSON-ready object."""
    datasets = load_datasets()
    entries = []
    for table_id in ordered_table_ids(list(tables)):
        frame = tables[table_id]
        info = describe_table(table_id)
        columns = [
            {
                "name": column.name,
                "data_type": column.dtype,
                "name_zh": column.name_zh,
                "name_en": column.name_en,
                "unit": column.unit,
                "decimals": column.decimals,
                "indicator_id": column.indicator_id,
                "formula": _formula(
                    column.numerator, column.denominator, column.multiplier, column.aggregation
                ),
                "source_datasets": [name for name in column.source_datasets if name],
                "description": column.description,
            }
            for column in describe_columns(table_id, frame.schema)
        ]
        rows = []
        if info.layout == "indicators_as_rows":
            rows = [
                {
                    "indicator_id": row["indicator_id"],
                    "row_order": row["row_order"],
                    "name_zh": row["name_zh"],
                    "name_en": row["name_en"],
                    "unit": row["unit"],
                    "decimals": row["decimals"],
                    "formula": _formula(
                        row["numerator"], row["denominator"], row["multiplier"], row["aggregation"]
                    ),
                    "source_datasets": row["source_datasets"].split("|"),
                    "description": row["note"] or "",
                }
                for row in table_indicators(table_id).to_dicts()
            ]
        entries.append(
            {
                **info.summary(frame.height),
                "files": files.get(table_id, {}),
                "sheet": sheets.get(table_id),
                "source_datasets": [
                    {"dataset_id": name, "name_zh": datasets[name].name_zh}
                    for name in table_sources(table_id)
                    if name in datasets
                ],
                "columns": columns,
                "indicator_rows": rows,
            }
        )
    return {
        "report_year": version.report_year,
        "version": version.version,
        "status": version.status,
        "schema_version": version.schema_version,
        "catalogue_version": version.catalogue_version,
        "tables": entries,
    }


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def _formula_text(formula: dict[str, Any] | None) -> str:
    if not formula:
        return ""
    numerator = " + ".join(f"`{term['measure_id']}`" for term in formula["numerator"])
    text = numerator
    if formula["denominator"]:
        denominator = " + ".join(f"`{term['measure_id']}`" for term in formula["denominator"])
        text = f"{numerator} ÷ {denominator}"
    if formula["multiplier"] not in (None, 1, 1.0):
        text += f" × {formula['multiplier']:g}"
    if formula["aggregation"] not in (None, "sum"):
        text = f"{formula['aggregation']} of {text}"
    return f"{formula['in_words']}<br>{text}"


def render_dictionary_markdown(dictionary: dict[str, Any]) -> str:
    """The dictionary as Markdown."""
    lines = [
        f"# 数据字典 Data dictionary — {dictionary['report_year']} v{dictionary['version']}",
        "",
        f"Status: {dictionary['status']}. Schema version {dictionary['schema_version']}, "
        f"catalogue {dictionary['catalogue_version']}. Ratios of a county, city, province or "
        "the nation are computed from summed numerators and denominators, never by averaging "
        "school or region ratios; `%` values are stored as percentages (34.3 means 34.3%), "
        "`1:x` ratios as x.",
        "",
        "| table | 表 | title | one row per | rows |",
        "| --- | --- | --- | --- | --- |",
    ]
    for table in dictionary["tables"]:
        lines.append(
            f"| [`{table['table_id']}`](#{table['table_id']}) "
            f"| {_cell((table['report_label'] + ' ' + table['title_zh']).strip())} "
            f"| {_cell(table['title_en'])} | {_cell(table['grain'])} | {table['row_count']} |"
        )
    for table in dictionary["tables"]:
        files = ", ".join(f"`{key}`" for key in table["files"].values())
        sources = ", ".join(
            f"{item['dataset_id']} ({item['name_zh']})" for item in table["source_datasets"]
        )
        lines += [
            "",
            f'<a id="{table["table_id"]}"></a>',
            "",
            f"## {table['table_id']} — {(table['report_label'] + ' ' + table['title_zh']).strip()}",
            "",
            f"{table['title_en']}. Layout `{table['layout']}`: {table['grain']}; "
            f"{table['row_count']} rows.",
            "",
            f"- Files: {files}"
            + (f"; workbook sheet 「{table['sheet']}」" if table["sheet"] else ""),
            f"- Source datasets: {sources}",
            "",
            "| column | 中文名 | English | type | unit | decimals | formula (numerator ÷ "
            "denominator) | sources | description |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for column in table["columns"]:
            cells = [
                f"`{column['name']}`",
                column["name_zh"],
                column["name_en"],
                column["data_type"],
                column["unit"],
                column["decimals"],
                _formula_text(column["formula"]),
                ", ".join(column["source_datasets"]),
                column["description"],
            ]
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        if table["indicator_rows"]:
            lines += [
                "",
                "Rows (one per indicator; the `value_{year}` columns hold their values):",
                "",
                "| # | indicator_id | 指标 | English | unit | decimals | formula | sources |",
                "| --- | --- | --- | --- | --- | --- | --- | --- |",
            ]
            for row in table["indicator_rows"]:
                cells = [
                    row["row_order"],
                    f"`{row['indicator_id']}`",
                    row["name_zh"],
                    row["name_en"],
                    row["unit"],
                    row["decimals"],
                    _formula_text(row["formula"]),
                    ", ".join(row["source_datasets"]),
                ]
                lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def dictionary_files(
    tables: dict[str, pl.DataFrame],
    files: dict[str, dict[str, str]],
    sheets: dict[str, str],
    version: VersionInfo,
) -> tuple[bytes, bytes]:
    """The bytes of data_dictionary.md and data_dictionary.json."""
    dictionary = build_dictionary(tables, files, sheets, version)
    markdown = render_dictionary_markdown(dictionary).encode("utf-8")
    document = json.dumps(dictionary, ensure_ascii=False, indent=2, default=str).encode("utf-8")
    return markdown, document
