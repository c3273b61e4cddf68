"""Terminal rendering of published tables, in Chinese, laid out as the report lays them out.

What belongs here: turning a table's frame and the indicator catalogue into a Rich table
(which measures the width of Chinese characters correctly) and formatting numbers by
unit and decimals: 34.30%, 1:14.63, 16398.
"""

from __future__ import annotations

import polars as pl
from rich.console import Console
from rich.table import Table

from schemas.indicators import TableSpec, format_value, load_indicator_catalogue


def render_indicator_rows_table(spec: TableSpec, frame: pl.DataFrame, console: Console) -> None:
    """Print one appendix-style table: indicators as rows, years as columns."""
    catalogue = load_indicator_catalogue().filter(pl.col("table_id") == spec.table_id)
    decimals = dict(catalogue.select("indicator_id", "decimals").iter_rows())
    year_columns = [name for name in frame.columns if name.startswith("value_")]
    for city_name, city_frame in frame.group_by("city_name", maintain_order=True):
        table = Table(title=f"{spec.report_label} {spec.title_zh}（{city_name[0]}）")
        table.add_column("指标", justify="left")
        table.add_column("单位", justify="left")
        for name in year_columns:
            table.add_column(name.removeprefix("value_"), justify="right")
        for record in city_frame.to_dicts():
            cells = [record["name_zh"], record["unit"]]
            cells += [
                format_value(record[name], record["unit"], decimals[record["indicator_id"]])
                for name in year_columns
            ]
            table.add_row(*cells)
        console.print(table)


def render_city_table(spec: TableSpec, frame: pl.DataFrame, console: Console) -> None:
    """Print one city-level table: years as rows, indicators as columns."""
    if spec.layout == "indicators_as_rows":
        render_indicator_rows_table(spec, frame, console)
        return
    catalogue = load_indicator_catalogue().filter(pl.col("table_id") == spec.table_id)
    rows = catalogue.sort("row_order").to_dicts()
    for city_name, city_frame in frame.group_by("city_name", maintain_order=True):
        table = Table(title=f"{spec.report_label} {spec.title_zh}（{city_name[0]}）")
        table.add_column("年份", justify="left")
        for row in rows:
            unit = "" if row["unit"] in ("%", "1:x") else f"\n（{row['unit']}）"
            table.add_column(f"{row['name_zh']}{unit}", justify="right", overflow="fold")
        for record in city_frame.sort("year").to_dicts():
            cells = [str(record["year"])]
            for row in rows:
                cells.append(
                    format_value(record.get(row["indicator_id"]), row["unit"], row["decimals"])
                )
            table.add_row(*cells)
        console.print(table)


OUTCOME_ZH = {
    "accepted": "通过",
    "accepted_with_warnings": "通过（有警告）",
    "rejected": "退回",
}


def render_validation_report(report: dict, console: Console) -> None:
    """Print one upload's validation report: outcome, counts per rule, the listed findings."""
    outcome = report["outcome"]
    colour = {"accepted": "green", "accepted_with_warnings": "yellow"}.get(outcome, "red")
    console.print(
        f"[bold]{report['key']}[/bold]: [{colour}]{OUTCOME_ZH.get(outcome, outcome)}[/{colour}] "
        f"({outcome}); {report['error_count']} 个错误 errors, "
        f"{report['warning_count']} 个警告 warnings"
    )
    if not report["findings"]:
        return
    table = Table(show_lines=False)
    for header in ("行 row", "列 column", "值 value", "规则 rule", "问题与修改建议"):
        table.add_column(header)
    for finding in report["findings"]:
        table.add_row(
            "" if finding["row_number"] is None else str(finding["row_number"]),
            finding["header"] or finding["column"] or "",
            "" if finding["value"] is None else str(finding["value"])[:40],
            finding["rule_id"],
            f"{finding['message_zh']}。{finding['fix_zh']}",
        )
    console.print(table)
    if report["is_truncated"]:
        console.print(
            f"仅列出前 {report['finding_limit']} 条 (listing capped); counts above are complete"
        )


RECONCILE_STATUS_ZH = {
    "match": "一致",
    "differs": "不一致",
    "no_data": "无数据",
    "not_checked": "未核对",
}


def render_reconciliation(
    figures: pl.DataFrame, counts: dict[str, int], source: str, console: Console
) -> None:
    """Print reconciliation results: each figure with the reference and the computed value."""
    table = Table(title=f"核对结果 / reconciliation ({source})")
    for header in ("图表", "指标", "年份", "参考值", "计算值", "状态"):
        table.add_column(header, overflow="fold")
    for row in figures.to_dicts():
        table.add_row(
            str(row.get("section") or ""),
            str(row.get("indicator_zh") or row["figure_id"]),
            str(row["year"]),
            str(row["reference_value"]),
            str(row["computed_value"] or "—"),
            RECONCILE_STATUS_ZH.get(row["status"], row["status"]),
        )
    console.print(table)
    console.print(
        " ".join(f"{RECONCILE_STATUS_ZH[name]} {count}" for name, count in counts.items())
    )
