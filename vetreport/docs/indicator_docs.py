"""The indicator documentation (docs/indicators.md), generated from the catalogue.

What belongs here: turning schemas/tables.csv, indicators.csv and measures.csv into one
Markdown page that lists every row of every table with its formula (numerator and
denominator in words and ids), unit, decimals, rounding, aggregation, tolerance and source
datasets. The committed page must equal the generated one (a unit test checks it); after
changing the catalogue run ``vetreport docs`` to rewrite it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

from schemas.indicators import (
    Formula,
    load_indicator_catalogue,
    load_measure_catalogue,
    load_table_specs,
)
from vetreport.paths import DOCS_DIR

DOCS_PATH = DOCS_DIR / "indicators.md"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ") if text is not None else ""


def render_indicator_docs() -> str:
    """The Markdown text of docs/indicators.md."""
    catalogue = load_indicator_catalogue()
    measures = load_measure_catalogue()
    names = dict(measures.select("measure_id", "name_zh").iter_rows())
    lines = [
        "# Indicators of the published tables",
        "",
        "Generated from `schemas/tables.csv`, `schemas/indicators.csv` and "
        "`schemas/measures.csv` by `vetreport docs`; do not edit by hand.",
        "",
        "Every value is computed per school from the curated uploads (sql/measures/), then "
        "for a county, a city, a province and the nation from **summed numerators and "
        "denominators** (a region's ratio is never an average of school or region ratios; "
        "regions come from the bureau's registry, and a city reference figure belongs to its "
        "city and that city's province), multiplied and rounded to the decimals "
        "shown (`half_up`: half away from zero, as reports round; `down`: truncated). An "
        "indicator whose aggregation is `max`/`min` takes the largest/smallest school value "
        "of the region. Tolerance is the year-on-year change (%) beyond which the change is "
        "listed in the `variance` table and reported to the school as a history warning. "
        "City-only indicators have no county or per-school value.",
        "",
    ]
    for spec in load_table_specs():
        rows = catalogue.filter(pl.col("table_id") == spec.table_id).sort("row_order")
        lines += [
            f"## {spec.report_label} {spec.title_zh} (`{spec.table_id}`)",
            "",
            f"{spec.title_en}; layout `{spec.layout}`, the last {spec.years_shown} years; "
            f"province shape `{spec.table_id}_by_province`, national shape "
            f"`{spec.table_id}_national`, per-school shape `{spec.table_id}_by_school`.",
            "",
            "| # | indicator_id | 名称 | name | unit | formula | decimals | aggregation "
            "| tolerance % | per school | sources |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in rows.to_dicts():
            decimals = f"{row['decimals']} ({row['rounding']})"
            if row["years_shown"] is not None:
                decimals += f"; last {row['years_shown']} years"
            cells = [
                row["row_order"],
                f"`{row['indicator_id']}`",
                row["name_zh"],
                row["name_en"],
                row["unit"],
                Formula.parse(
                    row["numerator"], row["denominator"], row["multiplier"], row["aggregation"]
                ).in_words(names, show_ids=True),
                decimals,
                row["aggregation"],
                f"{row['variance_tolerance_pct']:g}",
                "yes" if row["is_school_level"] else "no (city only)",
                ", ".join(row["source_datasets"].split("|")),
            ]
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
            if row["note"]:
                lines.append(f"|  |  |  | *{_cell(row['note'])}* |  |  |  |  |  |  |  |")
        lines.append("")
    lines += [
        "## Measures",
        "",
        "The per-school quantities the SQL of `sql/measures/` produces (one file per source "
        "dataset); a region's value is their sum.",
        "",
        "| measure_id | dataset | unit | 名称 | name | definition |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in measures.to_dicts():
        cells = [
            f"`{row['measure_id']}`",
            row["dataset_id"],
            row["unit"],
            row["name_zh"],
            row["name_en"],
            row["definition_en"],
        ]
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def write_indicator_docs(path: Path = DOCS_PATH) -> bool:
    """Rewrite docs/indicators.md if it differs; return whether it changed."""
    text = render_indicator_docs()
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


if __name__ == "__main__":
    changed = write_indicator_docs()
    print(f"{DOCS_PATH} {'rewritten' if changed else 'unchanged'}")
    sys.exit(0)
