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


# Where a definition comes from: the national 中职 quality-report indicators (计分卡, 教学资源表,
# 服务贡献表) or the 2023 Shaoxing report (the seed), where the two differ or the national set
# has no such indicator. Text for people, kept here beside the page it belongs to.
DEFINITION_SOURCES = [
    "## National definitions and the seed's",
    "",
    "Where the 2023 Shaoxing report (the seed) uses an indicator of the national 中职 quality "
    "report (中等职业教育质量年度报告: 计分卡, 教学资源表, 服务贡献表), the catalogue uses the "
    "national name and definition. Where a definition follows the seed instead, or the "
    "national set has no such indicator, it says so here.",
    "",
    "Follow the national indicators:",
    "",
    "- `dual_certificate_rate_pct` 双证书获取率 and `one_x_certificate_rate_pct` "
    "1+X证书获取率 (计分卡): graduates with a vocational qualification or skill-level "
    "certificate (with a 1+X certificate) besides the diploma, over the year's graduates. "
    "The denominator is the graduates whose 是否获得双证书 (是否获得1+X证书) is filled in, so "
    "that a school whose file leaves the optional column out does not lower the city's rate.",
    "- `retention_rate_pct` 巩固率 (计分卡): the year's graduates over the entrants of their "
    "cohort (本届毕业生入学人数, a column of the enrolment file), for the schools that report "
    "the entrants.",
    "- `practice_area_per_student_m2` 生均实践场所面积 (教学资源表): the school's own "
    "practical-training floor area over its enrolled students.",
    "- `vertical_research_income_yuan` 纵向科研到款额 and `technology_transaction_income_yuan` "
    "技术交易到款额 (服务贡献表), beside the existing 横向技术服务到款额 and 非学历培训到款额.",
    "",
    "Follow the seed:",
    "",
    "- Per-student figures (生均实践场所面积, like 生均校舍建筑面积, 生均纸质图书 and the 师生比) "
    "count **all** enrolled students, 中职 and 技工 (46,760 in 2023), as the seed does; the "
    "national tables count the 中职 students of the school's own statistics.",
    "- `famous_teacher_share_pct` 名优教师占专任教师比例 is the seed's 市级以上名优教师占比 "
    "(案例9): full-time teachers holding a 国家级, 省级 or 市级 teacher honour. The national "
    "set has no such indicator; `new_national_famous_teacher_count` and "
    "`new_provincial_city_famous_teacher_count` count honours granted in the year (人次).",
    "- `local_employment_rate_pct` 本地就业率 is the seed's 区域内就业率: 本地 means the "
    "school's city; `east_west_local_employment_rate_pct` is its 留绍就业 of east-west class "
    "graduates.",
    "- `undergraduate_entrants_count` 升入本科人数 counts 中本一体化 transfers as the seed's "
    "升入本科院校 does (案例3: 349 of whom 80 from 中本一体化 classes).",
    "- `hosted_event_*_count` (本市承办赛项) and `national_moral_education_*_count` (德育与思政 "
    "赛项) are the seed's own groupings of 全国职业院校技能大赛 medals, students and teachers "
    "together as the seed counts medals.",
    "",
]


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
    lines += DEFINITION_SOURCES
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
