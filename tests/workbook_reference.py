"""The version's workbook as written before its rows were built column-wise: the reference.

What belongs here: a frozen copy of ``vetreport.publish.outputs.workbook``'s sheet writer as
it was when every data cell went through its own xlsxwriter call (``write_number``,
``write_blank``, ``write``), so tests can check that the workbook a user opens did not
change. Only the writing of a sheet is copied; titles, subtitles, formats, widths, sheet
names and the contents sheet are the module's own (unchanged) helpers.
"""

from __future__ import annotations

import io

import polars as pl
import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from vetreport.aggregate.engine import spill_folder
from vetreport.publish.outputs.metadata import (
    YEAR_COLUMN,
    ColumnInfo,
    TableInfo,
    VersionInfo,
    describe_columns,
    describe_table,
)
from vetreport.publish.outputs.workbook import (
    CONTENTS_SHEET,
    HEADER_ROWS,
    _display_width,
    _Formats,
    _prepared,
    _row_number_formats,
    _shown_columns,
    _subtitle,
    _write_contents,
    number_format,
    sheet_names,
)
from vetreport.settings import load_settings


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
    # Written row by row (the workbook streams each finished row to a temporary file):
    # each column's cell format, or None where each row has its own (row_formats).
    column_formats: list[Format | None] = []
    is_number_column: list[bool] = []
    for index, name in enumerate(shown):
        column: ColumnInfo = described[name]
        header = column.header_zh
        sheet.write_string(2, index, header, formats.header)
        values = prepared.get_column(name)
        if YEAR_COLUMN.match(name) and row_formats is not None:
            column_formats.append(None)
            is_number_column.append(True)
            width = 12
        elif values.dtype.is_numeric():
            decimals = 0 if values.dtype.is_integer() else column.decimals
            column_formats.append(formats.number(number_format(column.unit, decimals)))
            is_number_column.append(True)
            width = 12
        else:
            column_formats.append(formats.text)
            is_number_column.append(False)
            longest = values.cast(pl.Utf8).str.len_chars().max() if values.len() else 0
            width = min(max(int(longest or 0) * 2, 8), 40)
        sheet.set_column(index, index, max(width, min(_display_width(header) // 2 + 2, 24)))
    for offset, row in enumerate(prepared.iter_rows()):
        sheet_row = HEADER_ROWS + offset
        for index, value in enumerate(row):
            cell_format = column_formats[index]
            if cell_format is None:
                cell_format = formats.number(row_formats[offset])
            if value is None:
                sheet.write_blank(sheet_row, index, None, cell_format)
            elif is_number_column[index]:
                sheet.write_number(sheet_row, index, value, cell_format)
            else:
                sheet.write(sheet_row, index, value, cell_format)
    sheet.freeze_panes(HEADER_ROWS, 0)
    return written.height


def workbook_bytes(
    tables: dict[str, pl.DataFrame], version: VersionInfo | None = None
) -> tuple[bytes, dict[str, str]]:
    """The workbook of these tables and the sheet name of each table."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(
        buffer,
        {
            "constant_memory": True,
            "tmpdir": str(spill_folder()),
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
            "nan_inf_to_errors": True,
        },
    )
    formats = _Formats(workbook)
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
