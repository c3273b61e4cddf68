"""The annotated workbooks as openpyxl wrote them before XlsxWriter: the reference to compare.

What belongs here: a frozen copy of ``vetreport.school.feedback``'s workbook writers as they
were when every path used openpyxl (the XLSX upload annotated as a copy, the CSV upload and
the summary-only workbook written write-only), so tests can check that what a school sees
did not change. Only the writing is copied; locating findings, the summary's rows and the
findings list's texts are the module's own (unchanged) helpers.
"""

from __future__ import annotations

import io
from typing import Any

import openpyxl
from openpyxl.cell import WriteOnlyCell
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.worksheet.worksheet import Worksheet

from schemas.catalogue import load_datasets
from vetreport.school.feedback import (
    COMMENT_AUTHOR,
    COMMENT_HEIGHT_PT,
    COMMENT_WIDTH_PT,
    ERROR_FILL_RGB,
    FINDINGS_COLUMNS,
    FINDINGS_HEADER_ROW,
    FINDINGS_SHEET,
    FINDINGS_SHEET_LIMIT,
    LINK_COLUMN,
    LINK_FONT,
    SEVERITY_ZH,
    SUMMARY_SHEET,
    WARNING_FILL_RGB,
    CellNote,
    PlacedFinding,
    _findings_sheet_status,
    _merged_notes,
    _notes_and_unplaced,
    _summary_rows,
    _text,
    internal_link,
    place_findings,
    said_more,
    workbook_kind,
)
from vetreport.validate.read import ReadError, read_grids
from vetreport.validate.untrusted import check_xlsx_bytes


def _fill(severity: str) -> PatternFill:
    colour = ERROR_FILL_RGB if severity == "error" else WARNING_FILL_RGB
    return PatternFill(fill_type="solid", start_color=colour, end_color=colour)


def _comment(text: str) -> Comment:
    comment = Comment(text, COMMENT_AUTHOR)
    comment.width = COMMENT_WIDTH_PT
    # about 22 Chinese characters a line at this width; long lists of allowed values wrap
    lines = sum(1 + len(line) // 22 for line in text.split("\n"))
    comment.height = max(COMMENT_HEIGHT_PT, 16 * lines)
    return comment


def _text_cell(sheet: Any, value: Any) -> Any:
    """A cell whose string stays a string: "=..." from a school's file is never a formula."""
    cell = WriteOnlyCell(sheet, value=value)
    if isinstance(value, str):
        cell.data_type = "s"
    return cell


def _append_text_row(sheet: Any, values: list[Any]) -> None:
    """Append a row whose strings stay strings: "=..." from a school's file is never a formula."""
    if not any(isinstance(value, str) and value.startswith("=") for value in values):
        sheet.append(values)
        return
    sheet.append([_text_cell(sheet, value) for value in values])


def _set_summary_widths(sheet: Worksheet) -> None:
    for letter, width in zip("ABCDEFGH", (10, 40, 10, 24, 20, 36, 36, 30), strict=True):
        sheet.column_dimensions[letter].width = width


# 问题清单: its columns and their widths; the header is on FINDINGS_HEADER_ROW.
def _write_findings_sheet(
    sheet: Any, report: dict[str, Any], placed: list[PlacedFinding], limit: int | None = None
) -> None:
    """问题清单: one row per listed finding, by problem, each linked to its marked cell.

    Works on a normal or a write-only sheet: widths, frozen header and filter are set
    before the rows are written, and every row is made of cells.
    """
    limit = FINDINGS_SHEET_LIMIT if limit is None else limit
    shown = placed[:limit]
    names = {dataset_id: spec.name_zh for dataset_id, spec in load_datasets().items()}
    last_row = FINDINGS_HEADER_ROW + len(shown)
    last_column = get_column_letter(len(FINDINGS_COLUMNS))
    for index, (_title, width) in enumerate(FINDINGS_COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = f"A{FINDINGS_HEADER_ROW + 1}"
    sheet.auto_filter.ref = f"A{FINDINGS_HEADER_ROW}:{last_column}{last_row}"
    status, truncated = _findings_sheet_status(report, len(shown))
    title = _text_cell(sheet, status)
    title.font = Font(bold=True)
    sheet.append([title])
    sheet.append([_text_cell(sheet, truncated)] if truncated else [])
    header = []
    for column_title, _width in FINDINGS_COLUMNS:
        cell = _text_cell(sheet, column_title)
        cell.font = Font(bold=True)
        header.append(cell)
    sheet.append(header)
    for row_number, item in enumerate(shown, start=FINDINGS_HEADER_ROW + 1):
        finding = item.finding
        if item.is_follow_on:
            link = f"由问题 {item.problem.number} 连带引起"
        elif item.problem.follow_ons:
            link = f"连带引起 {len(item.problem.follow_ons)} 条提示"
        else:
            link = ""
        values = [
            item.problem.number,
            SEVERITY_ZH.get(finding["severity"], finding["severity"]),
            item.sheet or _text(finding.get("sheet") or names.get(finding.get("dataset"), "")),
            item.address,
            _text(finding.get("header") or finding.get("column")),
            _text(finding.get("value"))[:200],
            finding["message_zh"],
            said_more(finding),
            finding["fix_zh"],
            link,
            finding["rule_id"],
        ]
        cells = [_text_cell(sheet, value) for value in values]
        if item.sheet is not None and item.address:
            target = cells[LINK_COLUMN - 1]
            target.hyperlink = Hyperlink(
                ref=f"{get_column_letter(LINK_COLUMN)}{row_number}",
                location=internal_link(item.sheet, item.address),
                display=item.address,
            )
            target.hyperlink.ref = f"{get_column_letter(LINK_COLUMN)}{row_number}"
            target.font = LINK_FONT
        sheet.append(cells)


def annotate_workbook(data: bytes, extension: str, report: dict[str, Any]) -> bytes:
    """The annotated workbook as the openpyxl-only implementation rendered it."""
    kind = workbook_kind(data, extension, report)
    if kind == "xlsx":
        try:
            return _annotate_xlsx(data, report)
        except Exception:
            return _summary_only(report)
    if kind == "csv":
        try:
            grid = read_grids(data, "csv")[0].grid
        except ReadError:
            return _summary_only(report)
        return _annotate_grid(grid, report)
    return _summary_only(report)


def _annotate_xlsx(data: bytes, report: dict[str, Any]) -> bytes:
    check_xlsx_bytes(data)  # the same bounds as the validator's, before openpyxl inflates it
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    placed = place_findings(report, workbook.sheetnames)
    notes, unplaced = _notes_and_unplaced(placed)
    merged = _merged_notes(notes)
    for (sheet_name, row, column), note in merged.items():
        cell = workbook[sheet_name].cell(row=row, column=column)
        cell.fill = _fill(note.severity)
        cell.comment = _comment(note.text)
    summary = workbook.create_sheet(SUMMARY_SHEET, 0)
    _set_summary_widths(summary)
    for row in _summary_rows(report, unplaced, len(merged)):
        _append_text_row(summary, row)
    summary["A1"].font = Font(bold=True, size=14)
    _write_findings_sheet(workbook.create_sheet(FINDINGS_SHEET, 1), report, placed)
    workbook.active = 0
    for sheet in workbook.worksheets[1:]:
        sheet.sheet_view.tabSelected = False
    return _saved(workbook)


def _annotate_grid(grid: Any, report: dict[str, Any]) -> bytes:
    """A CSV upload: its grid as text cells, streamed (write-only), with the notes."""
    sheet_name = next((entry["dataset"] for entry in report.get("datasets", [])), None) or "数据"
    placed = place_findings(report, [sheet_name], default_sheet=sheet_name)
    notes, unplaced = _notes_and_unplaced(placed)
    merged = _merged_notes(notes)
    by_row: dict[int, dict[int, CellNote]] = {}
    for (_sheet, row, column), note in merged.items():
        by_row.setdefault(row, {})[column] = note

    workbook = Workbook(write_only=True)
    summary = workbook.create_sheet(SUMMARY_SHEET)
    _set_summary_widths(summary)
    for row in _summary_rows(report, unplaced, len(merged)):
        _append_text_row(summary, row)
    _write_findings_sheet(workbook.create_sheet(FINDINGS_SHEET), report, placed)
    sheet = workbook.create_sheet(sheet_name)
    for index in range(grid.width):
        sheet.column_dimensions[get_column_letter(index + 1)].width = 16
    for row_index, values in enumerate(grid.iter_rows(), start=1):
        row_notes = by_row.get(row_index)
        if row_notes is None and not any(
            isinstance(value, str) and value.startswith("=") for value in values
        ):
            sheet.append(list(values))
            continue
        cells = []
        for column_index, value in enumerate(values, start=1):
            cell = WriteOnlyCell(sheet, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # "=..." from a CSV is text, not a formula
            note = (row_notes or {}).get(column_index)
            if note is not None:
                cell.fill = _fill(note.severity)
                cell.comment = _comment(note.text)
            cells.append(cell)
        sheet.append(cells)
    return _saved(workbook)


def _summary_only(report: dict[str, Any]) -> bytes:
    workbook = Workbook(write_only=True)
    summary = workbook.create_sheet(SUMMARY_SHEET)
    _set_summary_widths(summary)
    # Nothing of the school's file to mark or link to: the summary lists every finding.
    for row in _summary_rows(report, list(report["findings"]), 0, has_findings_sheet=False):
        _append_text_row(summary, row)
    return _saved(workbook)


def _saved(workbook: Workbook) -> bytes:
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
