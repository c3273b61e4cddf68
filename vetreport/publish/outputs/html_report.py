"""The HTML report of a version: one static page, in Chinese, that needs no network.

What belongs here: laying out the city tables (in display order, formatted as the report
prints them: 34.30%, 1:14.63, 16398), a three-year trend chart per indicator of every
``years_as_rows`` table (表1–表6), per-school bar charts of key indicators for the report
year with the city value as a reference line, and a summary of the changelog. Styles are
inline, charts are inline SVG (vetreport.publish.outputs.charts), there is no script, and a
Content-Security-Policy forbids loading anything from elsewhere.
"""

from __future__ import annotations

from html import escape
from typing import Any

import polars as pl

from schemas.indicators import format_value
from vetreport.publish.outputs.charts import bar_chart, line_chart
from vetreport.publish.outputs.metadata import (
    YEAR_COLUMN,
    VersionInfo,
    describe_columns,
    describe_table,
    ordered_table_ids,
    table_indicators,
)

KEY_SCHOOL_INDICATORS = (
    "staff_count",
    "full_time_teacher_count",
    "students_per_full_time_teacher_ratio",
    "bachelor_plus_teacher_share_pct",
    "initial_employment_rate_pct",
    "matched_employment_rate_pct",
    "further_study_rate_pct",
)
MAX_BARS = 40
MAX_CHANGED_CELLS_SHOWN = 30

STYLE = """
body { font-family: 'Noto Sans CJK SC', 'Microsoft YaHei', 'PingFang SC', sans-serif;
       margin: 24px auto; max-width: 1180px; color: #222; line-height: 1.5; padding: 0 16px; }
h1 { font-size: 24px; margin-bottom: 4px; }
h2 { font-size: 19px; border-bottom: 2px solid #2f6db5; padding-bottom: 4px; margin-top: 36px; }
h3 { font-size: 16px; margin-top: 22px; }
.meta { color: #555; font-size: 13px; }
.banner { padding: 8px 12px; border-radius: 4px; margin: 12px 0; font-size: 14px; }
.banner.provisional { background: #fff4dc; border: 1px solid #e8c36a; }
.banner.final { background: #e3f4e6; border: 1px solid #7cc48b; }
.banner.revision { background: #e8eefb; border: 1px solid #8aa6e0; }
table.data { border-collapse: collapse; margin: 8px 0 12px; font-size: 13px; }
table.data th, table.data td { border: 1px solid #c9d1da; padding: 4px 8px; }
table.data th { background: #e8f0fa; font-weight: 600; }
table.data td.num { text-align: right; font-variant-numeric: tabular-nums; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.note { color: #666; font-size: 12px; }
nav ol { columns: 2; font-size: 14px; }
"""


def _formatter(unit: str | None, decimals: int | None):
    return lambda value: format_value(value, unit or "", decimals if decimals is not None else 2)


def _anchor(table_id: str) -> str:
    return f"t-{table_id}"


def _cell(value: Any, unit: str | None, decimals: int | None, numeric: bool) -> str:
    if numeric:
        text = format_value(value, unit or "", decimals if decimals is not None else 2)
        return f'<td class="num">{escape(text)}</td>'
    return f"<td>{escape('' if value is None else str(value))}</td>"


def _years_as_rows_table(table_id: str, frame: pl.DataFrame) -> str:
    columns = describe_columns(table_id, frame.schema)
    single_city = frame.get_column("city_name").n_unique() <= 1
    shown = [c for c in columns if not (c.name == "city_name" and single_city)]
    head = "".join(f"<th>{escape(column.header_zh)}</th>" for column in shown)
    body = []
    order = [name for name in ("city_name", "year") if name in frame.columns]
    for record in frame.sort(order).to_dicts():
        cells = "".join(
            _cell(record[c.name], c.unit, c.decimals, c.indicator_id is not None) for c in shown
        )
        body.append(f"<tr>{cells}</tr>")
    return f'<table class="data"><tr>{head}</tr>{"".join(body)}</table>'


def _indicators_as_rows_table(table_id: str, frame: pl.DataFrame) -> str:
    decimals = dict(table_indicators(table_id).select("indicator_id", "decimals").iter_rows())
    year_columns = [name for name in frame.columns if YEAR_COLUMN.match(name)]
    several = frame.get_column("city_name").n_unique() > 1
    head = ("<th>城市</th>" if several else "") + "<th>指标</th><th>单位</th>"
    head += "".join(f"<th>{escape(name.removeprefix('value_'))}年</th>" for name in year_columns)
    body = []
    for record in frame.to_dicts():
        cells = f"<td>{escape(record['city_name'] or '')}</td>" if several else ""
        cells += f"<td>{escape(record['name_zh'] or '')}</td>"
        cells += f"<td>{escape(record['unit'] or '')}</td>"
        cells += "".join(
            _cell(record[name], record["unit"], decimals.get(record["indicator_id"]), True)
            for name in year_columns
        )
        body.append(f"<tr>{cells}</tr>")
    return f'<table class="data"><tr>{head}</tr>{"".join(body)}</table>'


def _trend_charts(table_id: str, frame: pl.DataFrame) -> str:
    """A line chart per indicator: years on the x axis, one line per city."""
    if frame.height == 0:
        return ""
    years = frame.get_column("year").unique().sort().to_list()
    charts = []
    for column in describe_columns(table_id, frame.schema):
        if column.indicator_id is None:
            continue
        series = []
        for (city,), part in frame.group_by("city_name", maintain_order=True):
            by_year = dict(zip(part["year"], part[column.name], strict=True))
            series.append((str(city), [by_year.get(year) for year in years]))
        title = f"{column.name_zh}（{column.unit}）" if column.unit else column.name_zh
        charts.append(line_chart(title, years, series, _formatter(column.unit, column.decimals)))
    return f'<div class="charts">{"".join(charts)}</div>'


def _school_charts(tables: dict[str, pl.DataFrame], report_year: int) -> str:
    """Bar charts of key indicators per school for the report year, city value dashed."""
    city_values = tables.get("indicator_values")
    sections = []
    done: set[str] = set()
    by_school = [
        table_id
        for table_id in ordered_table_ids(list(tables))
        if describe_table(table_id).kind == "by_school"
    ]
    for indicator_id in KEY_SCHOOL_INDICATORS:
        table_id = next((t for t in by_school if indicator_id in tables[t].columns), None)
        if table_id is None or indicator_id in done:
            continue
        done.add(indicator_id)
        column = next(
            c for c in describe_columns(table_id, tables[table_id].schema) if c.name == indicator_id
        )
        rows = (
            tables[table_id]
            .filter(pl.col("year") == report_year)
            .select(
                pl.coalesce("school_name", "school_code").alias("label"),
                pl.col(indicator_id).alias("value"),
            )
            .sort("value", descending=True, nulls_last=True)
        )
        if rows.height == 0:
            continue
        shown = rows.head(MAX_BARS)
        # A ratio is compared with the city's ratio; a count with the mean school (the
        # city's count is a sum over schools and would dwarf every bar).
        reference, reference_label = rows.get_column("value").mean(), "校均"
        has_city = city_values is not None and {"region_level", "indicator_id"} <= set(
            city_values.columns
        )
        if column.denominator is not None and has_city:
            reference_label = "全市"
            city = city_values.filter(
                (pl.col("region_level") == "city")
                & (pl.col("year") == report_year)
                & (pl.col("indicator_id") == indicator_id)
            )
            reference = city.item(0, "indicator_value") if city.height == 1 else None
        title = f"{column.name_zh}（{report_year}年，分学校）"
        chart = bar_chart(
            title,
            shown["label"].to_list(),
            shown["value"].to_list(),
            _formatter(column.unit, column.decimals),
            reference,
            reference_label,
        )
        note = ""
        if shown.height < rows.height:
            note = (
                f'<p class="note">共 {rows.height} 所学校，图中为数值最高的 {shown.height} 所。</p>'
            )
        sections.append(f"<h3>{escape(column.name_zh)}</h3>{chart}{note}")
    if not sections:
        return ""
    return '<h2 id="schools">分学校比较</h2>' + "".join(sections)


def _changes(changelog: dict[str, Any] | None) -> str:
    if changelog is None:
        return ""
    summary = changelog["summary"]
    parts = ['<h2 id="changes">本版本变更</h2>']
    if changelog["is_first_version"]:
        parts.append("<p>这是本年度第一个发布版本。</p>")
        return "".join(parts)
    parts.append(
        f"<p>与 v{changelog['previous_version']} 相比：{summary['tables_changed']} 张表变化，"
        f"{summary['cells_changed']} 个单元格变化；新增提交 {summary['submissions_added']} 份，"
        f"移除提交 {summary['submissions_removed']} 份。详见 changelog.md。</p>"
    )
    rows = [
        (entry, cell)
        for entry in changelog["tables"]
        if describe_table(entry["table_id"]).kind == "city"
        for cell in entry["cells"]
    ][:MAX_CHANGED_CELLS_SHOWN]
    if rows:
        body = "".join(
            f"<tr><td>{escape(entry['title_zh'])}</td>"
            f"<td>{escape(', '.join(str(v) for v in cell['row'].values()))}</td>"
            f"<td>{escape(cell['column_zh'])}</td><td class='num'>{escape(str(cell['old']))}</td>"
            f"<td class='num'>{escape(str(cell['new']))}</td></tr>"
            for entry, cell in rows
        )
        parts.append(
            '<table class="data"><tr><th>表</th><th>行</th><th>列</th><th>原值</th>'
            f"<th>新值</th></tr>{body}</table>"
        )
    return "".join(parts)


def render_report_html(
    tables: dict[str, pl.DataFrame],
    version: VersionInfo,
    changelog: dict[str, Any] | None = None,
    files: list[str] | None = None,
) -> str:
    """The whole page."""
    city_ids = [t for t in ordered_table_ids(list(tables)) if describe_table(t).kind == "city"]
    cities = sorted(
        {
            city
            for table_id in city_ids
            if "city_name" in tables[table_id].columns
            for city in tables[table_id].get_column("city_name").drop_nulls().unique().to_list()
        }
    )
    place = "、".join(cities)
    title = f"{place}{version.report_year}年中等职业教育质量年度报告 数据表"
    banner = {
        "provisional": "暂定版：数据仍在收集和校验中，数字可能变化。",
        "final": "正式版：截止日期后的最终数据。",
        "revision": f"修订版：对正式版 v{version.revision_of} 的更正，变更见下文。",
    }.get(version.status, version.status)
    nav = "".join(
        f'<li><a href="#{_anchor(t)}">{escape(describe_table(t).full_title_zh)}</a></li>'
        for t in city_ids
    )
    sections = []
    for table_id in city_ids:
        info = describe_table(table_id)
        frame = tables[table_id]
        section = [f'<h2 id="{_anchor(table_id)}">{escape(info.full_title_zh)}</h2>']
        if info.layout == "years_as_rows":
            section.append(_years_as_rows_table(table_id, frame))
            section.append(_trend_charts(table_id, frame))
        else:
            section.append(_indicators_as_rows_table(table_id, frame))
        sections.append("".join(section))
    listing = "".join(
        f"<li><a href='{escape(name)}'>{escape(name)}</a></li>" for name in files or []
    )
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{escape(title)}</h1>
<p class="meta">版本 v{version.version} · {escape(version.status_zh)} · 生成于
{escape(version.created_at)} · schema {escape(version.schema_version)} ·
catalogue {escape(version.catalogue_version)}</p>
<div class="banner {escape(version.status)}">{escape(banner)}</div>
<nav><ol>{nav}<li><a href="#schools">分学校比较</a></li><li><a href="#changes">本版本变更</a>
</li></ol></nav>
{"".join(sections)}
{_school_charts(tables, version.report_year)}
{_changes(changelog)}
<h2 id="files">本版本文件</h2>
<ul>{listing}</ul>
<p class="note">城市比率由各校分子、分母加总后计算，不是学校比率的平均。每个文件的
sha256 校验和见 manifest.json。</p>
</body>
</html>
"""
