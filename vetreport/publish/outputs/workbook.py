"""The Excel workbook of a version, laid out like the report's tables and appendix.

What belongs here: one sheet per table (after a contents sheet 目录), each with a title row
(e.g. "表1 招生普职比情况"), a line giving the cities, years, units and version, Chinese
headers with units from indicators.csv, and number formats from each indicator's unit and
decimals (34.30% is stored as 34.3 with the format ``0.00"%"``; 1:14.63 as 14.63 with
``"1:"0.00``). Text that a spreadsheet would run as a formula is neutralised as in CSV
(and so is text xlsxwriter would take for rich-text markup), and xlsxwriter is told never
to turn strings into formulas, numbers or links.
"""

from __future__ import annotations

import io
import re

import polars as pl
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from vetreport.aggregate.engine import spill_folder
from vetreport.publish.outputs.metadata import (
    REGION_KINDS,
    YEAR_COLUMN,
    ColumnInfo,
    TableInfo,
    VersionInfo,
    describe_columns,
    describe_table,
    ordered_table_ids,
    table_indicators,
)
from vetreport.publish.outputs.tabular import neutralise_formulas
from vetreport.publish.outputs.xlsx_rows import ColumnCells, append_rows
from vetreport.settings import load_settings

HEADER_ROWS = 3  # title, subtitle, header
CONTENTS_SHEET = "目录"
_BAD_SHEET_CHARACTERS = re.compile(r"[\[\]:*?/\\]")
_PLAIN_TYPES = (pl.Utf8, pl.Boolean)


def number_format(unit: str | None, decimals: int | None) -> str:
    """The Excel number format of a value with this unit and these decimals."""
    if decimals is None:
        return "General"
    base = "0" if decimals == 0 else "0." + "0" * decimals
    if unit == "%":
        return base + '"%"'
    if unit == "1:x":
        return '"1:"' + base
    return base


def sheet_names(table_ids: list[str]) -> dict[str, str]:
    """A unique, valid sheet name (≤ 31 characters) for each table, in workbook order."""
    names: dict[str, str] = {}
    used = {CONTENTS_SHEET}
    for table_id in ordered_table_ids(table_ids):
        info = describe_table(table_id)
        base = _BAD_SHEET_CHARACTERS.sub("_", info.full_title_zh or table_id)[:31]
        name, counter = base, 2
        while name.lower() in {item.lower() for item in used}:
            suffix = f"~{counter}"
            name, counter = base[: 31 - len(suffix)] + suffix, counter + 1
        used.add(name)
        names[table_id] = name
    return names


def _display_width(text: str) -> int:
    return sum(2 if ord(character) > 0x2E7F else 1 for character in text)


class _Formats:
    """xlsxwriter formats, made once per workbook and per number format."""

    def __init__(self, workbook: xlsxwriter.Workbook) -> None:
        self.workbook = workbook
        self.title = workbook.add_format({"bold": True, "font_size": 14})
        self.subtitle = workbook.add_format({"italic": True, "font_color": "#555555"})
        self.header = workbook.add_format(
            {
                "bold": True,
                "text_wrap": True,
                "valign": "vcenter",
                "align": "center",
                "border": 1,
                "bg_color": "#DDEBF7",
            }
        )
        self.text = workbook.add_format({"border": 1})
        self._numbers: dict[str, Format] = {}

    def number(self, code: str) -> Format:
        if code not in self._numbers:
            self._numbers[code] = self.workbook.add_format({"num_format": code, "border": 1})
        return self._numbers[code]


def _prepared(frame: pl.DataFrame) -> pl.DataFrame:
    """Neutralised text (formulas and rich-text markup); other non-numbers as text."""
    casts = [
        pl.col(name).cast(pl.Utf8)
        for name, dtype in frame.schema.items()
        if not (dtype.is_numeric() or dtype in _PLAIN_TYPES)
    ]
    return neutralise_formulas(frame.with_columns(casts) if casts else frame, rich_text=True)


def _shown_columns(info: TableInfo, frame: pl.DataFrame) -> list[str]:
    """The columns a sheet shows: report tables drop ids and a single region's name."""
    columns = frame.columns
    if info.kind not in REGION_KINDS:
        return columns
    hidden = {"indicator_id"}
    for name in ("city_name", "province_name"):
        if name in columns and frame.get_column(name).n_unique() <= 1:
            hidden.add(name)
    return [name for name in columns if name not in hidden]


def _subtitle(info: TableInfo, frame: pl.DataFrame, version: VersionInfo | None) -> str:
    parts = []
    if info.kind == "national":
        parts.append("全国")
    for name in ("province_name", "city_name"):
        if name in frame.columns and frame.height:
            parts.append("、".join(sorted(frame.get_column(name).drop_nulls().unique())))
            break
    years = [int(match[1]) for name in frame.columns if (match := YEAR_COLUMN.match(name))]
    if "year" in frame.columns and frame.height:
        years = frame.get_column("year").drop_nulls().unique().sort().to_list()
    if years:
        parts.append(f"{min(years)}–{max(years)}年" if len(years) > 1 else f"{years[0]}年")
    units = table_indicators(info.table_id).get_column("unit").unique(maintain_order=True)
    if len(units):
        parts.append("单位：" + "、".join(units))
    if version is not None:
        parts.append(f"v{version.version} {version.status_zh}")
    return "；".join(parts)


def _write_sheet(
    sheet: Worksheet,
    info: TableInfo,
    frame: pl.DataFrame,
    formats: _Formats,
    version: VersionInfo | None,
    row_limit: int,
) -> int:
    """Write one table, at most ``row_limit`` rows; return the number of rows written."""
    shown = _shown_columns(info, frame)
    described = {column.name: column for column in describe_columns(info.table_id, frame.schema)}
    written = frame.head(row_limit)
    subtitle = _subtitle(info, frame, version)
    if written.height < frame.height:
        subtitle += (
            f"；仅列出前 {written.height} 行（共 {frame.height} 行，完整数据见 Parquet/CSV）"
        )
    last_column = max(len(shown) - 1, 0)
    sheet.merge_range(0, 0, 0, max(last_column, 3), info.full_title_zh, formats.title)
    sheet.write_string(1, 0, subtitle, formats.subtitle)
    sheet.set_row(2, 36)
    prepared = _prepared(written.select(shown))
    row_formats = _row_number_formats(info, written)
    # Each column's cells: its format, or one per row (row_formats), and whether they are
    # numbers. The rows' XML is built column-wise and streamed to the sheet's row file.
    cells: list[ColumnCells] = []
    for index, name in enumerate(shown):
        column: ColumnInfo = described[name]
        header = column.header_zh
        sheet.write_string(2, index, header, formats.header)
        values = prepared.get_column(name)
        if YEAR_COLUMN.match(name) and row_formats is not None:
            cells.append(ColumnCells([formats.number(code) for code in row_formats], True))
            width = 12
        elif values.dtype.is_numeric():
            decimals = 0 if values.dtype.is_integer() else column.decimals
            cells.append(ColumnCells(formats.number(number_format(column.unit, decimals)), True))
            width = 12
        else:
            cells.append(ColumnCells(formats.text, False))
            longest = values.cast(pl.Utf8).str.len_chars().max() if values.len() else 0
            width = min(max(int(longest or 0) * 2, 8), 40)
        sheet.set_column(index, index, max(width, min(_display_width(header) // 2 + 2, 24)))
    append_rows(sheet, prepared, HEADER_ROWS, cells)
    sheet.freeze_panes(HEADER_ROWS, 0)
    return written.height


def _row_number_formats(info: TableInfo, frame: pl.DataFrame) -> list[str] | None:
    """For indicators-as-rows tables, the number format of each row (from its indicator)."""
    if "indicator_id" not in frame.columns or not any(
        YEAR_COLUMN.match(name) for name in frame.columns
    ):
        return None
    rows = table_indicators(info.table_id).select("indicator_id", "unit", "decimals")
    codes = {row[0]: number_format(row[1], row[2]) for row in rows.iter_rows()}
    return [codes.get(indicator_id, "General") for indicator_id in frame["indicator_id"]]


def workbook_bytes(
    tables: dict[str, pl.DataFrame], version: VersionInfo | None = None
) -> tuple[bytes, dict[str, str]]:
    """The workbook of these tables and the sheet name of each table."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(
        buffer,
        {
            # Rows go to temporary files as they are finished, not into Python objects
            # kept until the end: the workbook's memory does not grow with its cells.
            "constant_memory": True,
            "tmpdir": str(spill_folder()),
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
            "nan_inf_to_errors": True,
        },
    )
    formats = _Formats(workbook)
    # Excel allows 1,048,576 rows; the full data is in Parquet, CSV and DuckDB.
    row_limit = load_settings().workbook_sheet_rows
    names = sheet_names(list(tables))
    contents = workbook.add_worksheet(CONTENTS_SHEET)
    rows_written: dict[str, int] = {}
    for table_id, sheet_name in names.items():
        info = describe_table(table_id)
        rows_written[table_id] = _write_sheet(
            workbook.add_worksheet(sheet_name),
            info,
            tables[table_id],
            formats,
            version,
            row_limit,
        )
    _write_contents(contents, names, tables, rows_written, formats, version)
    workbook.close()
    return buffer.getvalue(), names


def _write_contents(
    sheet: Worksheet,
    names: dict[str, str],
    tables: dict[str, pl.DataFrame],
    rows_written: dict[str, int],
    formats: _Formats,
    version: VersionInfo | None,
) -> None:
    title = "中等职业教育质量年度报告 数据表"
    if version is not None:
        title = f"{version.report_year}年{title}"
    sheet.write_string(0, 0, title, formats.title)
    if version is not None:
        sheet.write_string(
            1,
            0,
            f"v{version.version} {version.status_zh}；生成于 {version.created_at}；"
            f"schema {version.schema_version}，catalogue {version.catalogue_version}",
            formats.subtitle,
        )
    headers = ("工作表 sheet", "表 table id", "English title", "行数 rows", "每行 one row per")
    for index, header in enumerate(headers):
        sheet.write_string(2, index, header, formats.header)
    for offset, (table_id, sheet_name) in enumerate(names.items()):
        info = describe_table(table_id)
        rows = f"{tables[table_id].height}"
        if rows_written[table_id] < tables[table_id].height:
            rows += f"（工作表仅含前 {rows_written[table_id]} 行）"
        row = HEADER_ROWS + offset
        sheet.write_url(row, 0, f"internal:'{sheet_name}'!A1", string=sheet_name)
        sheet.write_string(row, 1, table_id, formats.text)
        sheet.write_string(row, 2, info.title_en, formats.text)
        sheet.write_string(row, 3, rows, formats.text)
        sheet.write_string(row, 4, info.grain_en, formats.text)
    for index, width in enumerate((30, 28, 44, 14, 50)):
        sheet.set_column(index, index, width)
