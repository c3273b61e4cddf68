"""The data dictionary (docs/data-dictionary.md), generated from the catalogue.

What belongs here: rendering every dataset and column of schemas/ (names, headers, type,
unit, required, allowed values, range, pattern, aliases including past years' headers, and
description) and the rule catalogue as Markdown. The output is deterministic (no dates), so
a test can compare the committed file with a fresh rendering; regenerate it with
``vetreport docs`` after changing schemas/.
"""

from __future__ import annotations

from schemas.catalogue import (
    SCHEMA_VERSION,
    ColumnSpec,
    DatasetSpec,
    load_datasets,
    load_header_aliases,
    load_rules,
)

DICTIONARY_PATH = "docs/data-dictionary.md"
_SUBMITTER_ZH = {"school": "学校 school", "bureau": "教育局 bureau"}


def _cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _allowed(column: ColumnSpec) -> str:
    parts = []
    if column.allowed_values:
        parts.append(" / ".join(column.allowed_values))
    if column.data_type == "boolean":
        parts.append("是 / 否 (also yes/no, Y/N, 1/0, √/×)")
    if column.min_value is not None or column.max_value is not None:
        low = "" if column.min_value is None else _number(column.min_value)
        high = "" if column.max_value is None else _number(column.max_value)
        parts.append(f"[{low}, {high}]" if low and high else f"≥ {low}" if low else f"≤ {high}")
    if column.pattern:
        parts.append(f"`{column.pattern}`")
    return "; ".join(parts)


def _aliases(column: ColumnSpec) -> str:
    names = list(column.aliases)
    names += [
        f"{row['header']} ({row['year']})"
        for row in load_header_aliases()
        if row["dataset_id"] == column.dataset_id and row["column_name"] == column.column_name
    ]
    return ", ".join(names)


def _dataset_section(dataset: DatasetSpec) -> list[str]:
    lines = [
        f"## {dataset.dataset_id} — {dataset.name_zh} ({dataset.name_en})",
        "",
        dataset.description_en,
        "",
        f"- One row per: {dataset.grain}",
        f"- Submitted by: {_SUBMITTER_ZH.get(dataset.submitted_by, dataset.submitted_by)}",
        f"- Key (unique per file): {', '.join(f'`{key}`' for key in dataset.key_columns)}",
        "",
        "| column | 中文表头 (template) | English header | type | unit | required "
        "| allowed values / range / pattern | aliases | description |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for column in dataset.columns:
        cells = [
            f"`{column.column_name}`",
            column.header_with_unit,
            column.header_en,
            column.data_type,
            column.unit,
            "yes" if column.is_required else "no",
            _allowed(column),
            _aliases(column),
            column.description_en,
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return [*lines, ""]


def render_dictionary() -> str:
    """The whole data dictionary as Markdown."""
    datasets = load_datasets()
    lines = [
        "# Data dictionary",
        "",
        "<!-- Generated from schemas/ by `vetreport docs`;",
        "     do not edit by hand: a test fails when this file and the catalogue disagree. -->",
        "",
        f"Schema version {SCHEMA_VERSION}. Every dataset a school or the bureau uploads, every",
        "column with its canonical name (as stored in curated Parquet and published tables),",
        "the Chinese header the templates print, the English header also accepted, type, unit,",
        "whether it is required, the allowed values, range or pattern, and the other headers",
        "recognised for it (a year in brackets: a past template's header,",
        "from schemas/header_aliases.csv). Headers match after folding full-width characters,",
        "case, spaces, line breaks, `*` marks and a trailing unit in brackets.",
        "",
        "| dataset | 名称 | one row per | submitted by |",
        "| --- | --- | --- | --- |",
    ]
    for dataset in datasets.values():
        lines.append(
            f"| `{dataset.dataset_id}` "
            f"| {_cell(dataset.name_zh)} | {_cell(dataset.grain)} "
            f"| {_SUBMITTER_ZH.get(dataset.submitted_by, dataset.submitted_by)} |"
        )
    lines.append("")
    for dataset in datasets.values():
        lines += _dataset_section(dataset)
    lines += [
        "## Validation rules",
        "",
        "Every finding in a validation report carries one of these rule ids (schemas/rules.csv).",
        "",
        "A warning marked *explain* needs the school's explanation (explanations.csv) before",
        "the school may sign off its year.",
        "",
        "| rule id | layer | severity | 问题 | message | 修改建议 | explain |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for rule in load_rules().values():
        cells = [
            f"`{rule.rule_id}`",
            rule.layer,
            rule.severity,
            rule.message_zh,
            rule.message_en,
            rule.fix_zh,
            "explain" if rule.needs_explanation else "",
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"
