"""What a school reads after an upload: the report as a web page and as its own workbook.

What belongs here: rendering one upload's report (the dict ``validation.build_report``
returns, or its JSON) for a data officer who is not a programmer, in Chinese first:

- ``render_html``: a self-contained page (no scripts, no network) with the outcome, what to
  do next, the count of every rule with its message and fix, and the capped finding list
  with sheet, row, column and value, grouped into problems: a finding that only follows
  from another (``caused_by``) is shown under it. Every value from the file is escaped.
- ``annotate_workbook``: the school's own workbook with each cell that has a finding filled
  (red for errors, yellow for warnings) and commented (message, what is allowed, fix, rule
  id). An XLSX upload is annotated as a copy that keeps all its sheets; a CSV upload comes
  back as a new XLSX with the CSV's grid as text. A summary sheet 问题汇总 comes first (the
  counts, and the findings that point at no cell), then 问题清单: one row per finding, by
  problem, with a link that jumps to the marked cell, a frozen header and a filter.

How the workbooks are written (ingest renders one for every upload with findings, so their
cost counts at national scale; ``benchmarks/bench_feedback.py`` times each path): an XLSX
upload is loaded, marked and saved with openpyxl, the one library here that can keep a
school's workbook as it is (its package is written without a temporary file per sheet);
a CSV upload and a refused file's summary-only workbook are new workbooks written with
XlsxWriter (``NewWorkbook``), about three times faster. What 问题汇总 and 问题清单 show is
built once (``_summary_rows``, ``findings_table``) whichever library writes it, and a test
compares every path with the openpyxl-only implementation (``tests/feedback_reference.py``).

What a school reads is the report's Chinese text (``message_zh``, ``detail_zh``, ``fix_zh``);
the English ``detail`` is for the bureau and is not shown here.

Cells are located from the report alone: ``row_number`` is the Excel row, and each dataset
entry of the report carries the header's row, the header text of each sheet column and the
sheet column of each canonical column. Nothing here validates or reads the bucket.
"""

from __future__ import annotations

import datetime
import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape as xml_escape

import openpyxl
import xlsxwriter
from openpyxl.comments import Comment
from openpyxl.drawing.spreadsheet_drawing import SpreadsheetDrawing
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._writer import WorksheetWriter
from openpyxl.worksheet.hyperlink import Hyperlink
from openpyxl.worksheet.worksheet import Worksheet
from openpyxl.writer.excel import ExcelWriter

from schemas.catalogue import load_datasets, load_rules
from vetreport.school.pages import render_validation_report_page
from vetreport.validate.read import ReadError, read_grids, sniff_type
from vetreport.validate.untrusted import check_xlsx_bytes

SUMMARY_SHEET = "问题汇总"
FINDINGS_SHEET = "问题清单"
FINDINGS_SHEET_LIMIT = 5000  # rows of 问题清单; the counts are never capped
LINK_FONT = Font(color="FF0563C1", underline="single")
ERROR_FILL_RGB = "FFFF9C9C"  # red: the cell must be fixed before the upload is accepted
WARNING_FILL_RGB = "FFFFEB84"  # yellow: please check; the upload is accepted
COMMENT_AUTHOR = "vetreport"
COMMENT_WIDTH_PT = 320
COMMENT_HEIGHT_PT = 140

OUTCOME_ZH = {
    "accepted": "已通过",
    "accepted_with_warnings": "已通过（有警告，请核对）",
    "rejected": "未通过（已退回）",
    "withdrawn": "已撤回（文件已删除）",
    "held": "已锁定：已转交教育局作为修订",
    "signed_off": "已确认提交",
    "signoff_refused": "确认未被接受",
}
OUTCOME_EN = {
    "accepted": "accepted",
    "accepted_with_warnings": "accepted with warnings",
    "rejected": "rejected",
    "withdrawn": "withdrawn (the file was deleted)",
    "held": "locked: sent to the bureau for a revision",
    "signed_off": "signed off",
    "signoff_refused": "sign-off refused",
}
SEVERITY_ZH = {"error": "错误", "warning": "警告"}
NEXT_STEP_ZH = {
    "accepted": "数据已被接收，无需任何操作。如需更正，修改后重新上传同名文件即可。",
    "accepted_with_warnings": (
        "数据已被接收。请逐条核对下面的警告：如确有错误，修改后重新上传同名文件；"
        "如数据无误，可不处理。"
    ),
    "rejected": (
        "本次上传未被接收，此文件的数据不进入统计（同名文件此前通过的数据也不再计入，"
        "以桶中当前的文件为准）。请按下面的“修改建议”逐项修改"
        "（随附的标注工作簿中，出错单元格标为红色、警告标为黄色，单元格批注写明了原因），"
        "然后重新上传同名文件。重新上传后几秒内会生成新的报告。"
    ),
    "withdrawn": (
        "此文件已从存储桶中删除，其数据已撤回，不再计入统计。如系误删，重新上传该文件即可。"
    ),
    "held": (
        "本年度数据已由教育局审核锁定。此文件已保存并转交教育局作为修订，"
        "在教育局重新开放（修订）之前不改变任何统计数据。如需修改，请联系教育局。"
    ),
    "signed_off": (
        "本校本年度数据已确认提交，等待教育局审核。确认后如再上传文件，确认即失效，需重新确认。"
    ),
    "signoff_refused": (
        "确认提交未被接受：请按下面所列，修改被退回的文件，或在说明表（explanations.csv）中"
        "说明需要说明的警告，然后重新上传 signoff.json。"
    ),
}


@dataclass
class Problem:
    """What a school reads as one problem: a finding and the findings that follow from it."""

    number: int
    finding: dict[str, Any]
    follow_ons: list[dict[str, Any]]

    @property
    def findings(self) -> list[dict[str, Any]]:
        """The finding, then its follow-ons."""
        return [self.finding, *self.follow_ons]


def _cause_key(finding: dict[str, Any]) -> tuple[Any, ...]:
    return (
        finding.get("dataset"),
        finding.get("sheet"),
        finding.get("row_number"),
        finding.get("rule_id"),
        finding.get("column"),
    )


def group_problems(findings: list[dict[str, Any]]) -> list[Problem]:
    """The listed findings as problems, in listing order of each problem's own finding.

    A finding whose ``caused_by`` names a listed finding joins that finding's problem; one
    whose cause is not listed (the listing is capped) is a problem of its own.
    """
    roots: dict[tuple[Any, ...], Problem] = {}
    problems: list[Problem] = []
    for finding in findings:
        if not finding.get("caused_by"):
            problem = Problem(len(problems) + 1, finding, [])
            problems.append(problem)
            roots.setdefault(_cause_key(finding), problem)
    for finding in findings:
        cause = finding.get("caused_by")
        if not cause:
            continue
        key = (
            finding.get("dataset"),
            finding.get("sheet"),
            cause.get("row_number"),
            cause.get("rule_id"),
            cause.get("column"),
        )
        if key in roots:
            roots[key].follow_ons.append(finding)
        else:
            problems.append(Problem(len(problems) + 1, finding, []))
    return problems


def said_more(finding: dict[str, Any]) -> str:
    """What the finding's own sentence (``detail_zh``) adds to its rule's message, or ""."""
    detail = finding.get("detail_zh") or ""
    message = finding["message_zh"].rstrip("。")
    if detail.startswith(message):  # a row rule: its message, then the values it read
        detail = detail[len(message) :].lstrip("。；：，")
    return detail


def problem_text(finding: dict[str, Any]) -> str:
    """The rule's message and what this finding adds (取值不在允许的选项中。取值必须是…)."""
    detail = said_more(finding)
    return f"{finding['message_zh']}。{detail}" if detail else finding["message_zh"]


@dataclass(frozen=True)
class CellNote:
    """One finding placed on one cell of the workbook."""

    sheet: str
    row: int
    column: int  # 1-based, as openpyxl counts
    severity: str
    text: str


# ------------------------------------------------------------------------------------------
# HTML
# ------------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page, Chinese first, every value escaped."""
    rules = load_rules()
    names = {dataset_id: spec.name_zh for dataset_id, spec in load_datasets().items()}
    counts = [
        {
            **item,
            "severity_zh": SEVERITY_ZH.get(item["severity"], item["severity"]),
            "message_zh": rules[item["rule_id"]].message_zh,
            "message_en": rules[item["rule_id"]].message_en,
            "fix_zh": rules[item["rule_id"]].fix_zh,
        }
        for item in sorted(
            report["counts_by_rule"], key=lambda item: (item["severity"] != "error", -item["count"])
        )
    ]
    problems = group_problems(report["findings"])
    findings = [
        {
            "number": problem.number,
            "is_follow_on": position > 0,
            "follow_on_count": 0 if position else len(problem.follow_ons),
            "severity": item["severity"],
            "severity_zh": SEVERITY_ZH.get(item["severity"], item["severity"]),
            "sheet": _text(
                item.get("sheet") or names.get(item.get("dataset"), item.get("dataset"))
            ),
            "row": _text(item.get("row_number")),
            "column": _text(item.get("header") or item.get("column")),
            "value": _text(item.get("value"))[:200],
            "message_zh": item["message_zh"],
            "detail_zh": said_more(item)[:400],
            "fix_zh": item["fix_zh"],
            "rule_id": item["rule_id"],
        }
        for problem in problems
        for position, item in enumerate(problem.findings)
    ]
    datasets = [
        {
            "name": f"{names.get(entry['dataset'], entry['dataset'] or '—')}"
            + (f"（{entry['dataset']}）" if entry["dataset"] else ""),
            "sheet": entry.get("sheet"),
            "row_count": entry.get("row_count", 0),
            "outcome": OUTCOME_ZH.get(entry.get("outcome", ""), entry.get("outcome", "")),
        }
        for entry in report.get("datasets", [])
    ]
    outcome = report["outcome"]
    return render_validation_report_page(
        report=report,
        outcome_zh=OUTCOME_ZH.get(outcome, outcome),
        outcome_en=OUTCOME_EN.get(outcome, outcome),
        next_step=NEXT_STEP_ZH.get(outcome, ""),
        counts=counts,
        findings=findings,
        datasets=datasets,
        total=report["error_count"] + report["warning_count"],
        problem_count=report.get("problem_count", len(problems)),
    )


# ------------------------------------------------------------------------------------------
# Annotated workbook
# ------------------------------------------------------------------------------------------


def _place(finding: dict[str, Any], entry: dict[str, Any] | None) -> tuple[int, int] | None:
    """(Excel row, 1-based column) of the cell a finding is about, or None if it has none."""
    if entry is None or entry.get("header_row_number") is None:
        return None
    headers: list[str] = entry.get("headers") or []
    positions: dict[str, int] = entry.get("column_positions") or {}
    row = finding.get("row_number")
    column = finding.get("column")
    header = finding.get("header")
    if row is None:
        # A header-level finding (unknown, repeated, private column): mark the header cell.
        if header and header in headers:
            return entry["header_row_number"], headers.index(header) + 1
        return None
    if column in positions:
        return int(row), positions[column] + 1
    if header and header in headers:
        return int(row), headers.index(header) + 1
    # A row finding without a column (a dropped total row): mark the row's first column.
    first = next((index for index, text in enumerate(headers) if text), None)
    return (int(row), first + 1) if first is not None else None


@dataclass(frozen=True)
class PlacedFinding:
    """One listed finding, its problem, and the school's cell it is about (if any)."""

    problem: Problem
    finding: dict[str, Any]
    sheet: str | None  # the workbook sheet of the cell; None when not placed
    cell: tuple[int, int] | None  # (Excel row, 1-based column)

    @property
    def is_follow_on(self) -> bool:
        """True for a finding that follows from its problem's own finding."""
        return self.finding is not self.problem.finding

    @property
    def address(self) -> str:
        """The cell's address, e.g. G4, or "" when not placed."""
        return "" if self.cell is None else f"{get_column_letter(self.cell[1])}{self.cell[0]}"


def place_findings(
    report: dict[str, Any], sheet_names: Iterable[str], default_sheet: str | None = None
) -> list[PlacedFinding]:
    """The listed findings, by problem, each with the workbook cell it is about."""
    entries = {entry["dataset"]: entry for entry in report.get("datasets", [])}
    available = set(sheet_names)
    placed = []
    for problem in group_problems(report["findings"]):
        for finding in problem.findings:
            sheet = finding.get("sheet") or default_sheet
            cell = (
                _place(finding, entries.get(finding.get("dataset"))) if sheet in available else None
            )
            placed.append(PlacedFinding(problem, finding, str(sheet) if cell else None, cell))
    return placed


def _quoted_header(finding: dict[str, Any]) -> str:
    return f"“{finding.get('header') or finding.get('column') or '本行'}”"


def _note_text(item: PlacedFinding) -> str:
    finding = item.finding
    severity = SEVERITY_ZH.get(finding["severity"], finding["severity"])
    lines = [f"[{severity}] {finding['message_zh']}"]
    if detail := said_more(finding):
        lines.append(detail)
    follow_ons = [] if item.is_follow_on else item.problem.follow_ons
    if follow_ons:
        headers = "、".join(dict.fromkeys(_quoted_header(other) for other in follow_ons))
        lines.append(f"本行另有 {len(follow_ons)} 条提示由此连带引起（{headers}）。")
    lines.append(f"修改建议：{finding['fix_zh']}")
    lines.append(f"({finding['rule_id']})")
    return "\n".join(lines)


def _notes_and_unplaced(
    placed: list[PlacedFinding],
) -> tuple[list[CellNote], list[dict[str, Any]]]:
    """Notes on cells, and the findings for the summary sheet.

    The summary gets every finding without a row (file, sheet and header problems, even when
    the header cell is also marked) and any finding whose cell cannot be found.
    """
    notes: list[CellNote] = []
    unplaced: list[dict[str, Any]] = []
    for item in placed:
        if item.sheet is not None and item.cell is not None:
            row, column = item.cell
            notes.append(
                CellNote(item.sheet, row, column, item.finding["severity"], _note_text(item))
            )
        if item.cell is None or item.finding.get("row_number") is None:
            unplaced.append(item.finding)
    return notes, unplaced


def locate_findings(
    report: dict[str, Any], sheet_names: Iterable[str], default_sheet: str | None = None
) -> tuple[list[CellNote], list[dict[str, Any]]]:
    """Split the listed findings into notes on cells and the ones for the summary sheet."""
    return _notes_and_unplaced(place_findings(report, sheet_names, default_sheet))


def _merged_notes(notes: Iterable[CellNote]) -> dict[tuple[str, int, int], CellNote]:
    """One note per cell: texts joined, the worst severity kept."""
    merged: dict[tuple[str, int, int], CellNote] = {}
    for note in notes:
        key = (note.sheet, note.row, note.column)
        previous = merged.get(key)
        if previous is None:
            merged[key] = note
        elif note.text not in previous.text:
            severity = "error" if "error" in (previous.severity, note.severity) else "warning"
            merged[key] = CellNote(
                note.sheet, note.row, note.column, severity, previous.text + "\n\n" + note.text
            )
    return merged


def _comment_height_px(text: str) -> int:
    # about 22 Chinese characters a line at this width; long lists of allowed values wrap
    lines = sum(1 + len(line) // 22 for line in text.split("\n"))
    return max(COMMENT_HEIGHT_PT, 16 * lines)


def _summary_rows(
    report: dict[str, Any],
    unplaced: list[dict[str, Any]],
    placed_count: int,
    has_findings_sheet: bool = True,
) -> list[list[Any]]:
    rules = load_rules()
    outcome = report["outcome"]
    problem_count = report.get("problem_count")
    rows: list[list[Any]] = [
        [f"校验结果：{OUTCOME_ZH.get(outcome, outcome)}"],
        [f"上传文件：{report.get('key')}"],
        [
            f"错误 {report['error_count']} 个，警告 {report['warning_count']} 个"
            + (f"，归为 {problem_count} 个问题" if problem_count is not None else "")
        ],
        [NEXT_STEP_ZH.get(outcome, "")],
        [
            f"本工作簿中有问题的单元格已标色（红色=错误，黄色=警告），共标注 {placed_count} 处；"
            "把鼠标移到单元格上可查看批注。"
        ],
    ]
    if has_findings_sheet:
        rows.append(
            [f"每条问题列在“{FINDINGS_SHEET}”工作表中，点击其中的单元格地址可跳到该单元格。"]
        )
    if report.get("is_truncated"):
        rows.append(
            [
                f"问题较多，仅标注和列出前 {report['finding_limit']} 条；"
                "下面的分类统计中的数量是完整的。"
            ]
        )
    rows += [[], ["问题分类统计"], ["级别", "问题", "数量", "修改建议", "规则编号"]]
    for item in report["counts_by_rule"]:
        rule = rules[item["rule_id"]]
        rows.append(
            [
                SEVERITY_ZH.get(item["severity"], item["severity"]),
                rule.message_zh,
                item["count"],
                rule.fix_zh,
                item["rule_id"],
            ]
        )
    rows += [[], ["无法定位到单元格的问题（文件、工作表、表头）"]]
    rows.append(["级别", "工作表", "行", "列", "值", "问题", "修改建议", "规则编号"])
    for finding in unplaced:
        rows.append(
            [
                SEVERITY_ZH.get(finding["severity"], finding["severity"]),
                _text(finding.get("sheet") or finding.get("dataset")),
                _text(finding.get("row_number")),
                _text(finding.get("header") or finding.get("column")),
                _text(finding.get("value"))[:200],
                problem_text(finding),
                finding["fix_zh"],
                finding["rule_id"],
            ]
        )
    if not unplaced:
        rows.append(["（无）"])
    return rows


SUMMARY_WIDTHS = (10, 40, 10, 24, 20, 36, 36, 30)  # columns A to H of 问题汇总

# 问题清单: its columns and their widths; the header is on FINDINGS_HEADER_ROW.
FINDINGS_COLUMNS = (
    ("问题序号", 9),
    ("级别", 7),
    ("工作表", 16),
    ("单元格", 9),
    ("列", 20),
    ("填写的值", 18),
    ("问题", 26),
    ("说明", 50),
    ("修改建议", 32),
    ("连带关系", 22),
    ("规则编号", 30),
)
FINDINGS_HEADER_ROW = 3
LINK_COLUMN = 4  # 单元格


def internal_link(sheet: str, address: str) -> str:
    """An in-workbook link target: 'Sheet'!B7 (apostrophes in the name doubled)."""
    return "'" + sheet.replace("'", "''") + "'!" + address


def _findings_sheet_status(report: dict[str, Any], shown: int) -> tuple[str, str]:
    total = report["error_count"] + report["warning_count"]
    problem_count = report.get("problem_count")
    status = (
        f"问题清单：共 {total} 条（错误 {report['error_count']} 条，"
        f"警告 {report['warning_count']} 条）"
        + (f"，归为 {problem_count} 个问题" if problem_count is not None else "")
        + "。同一问题序号的几行是一个问题：连带引起的提示排在引起它的问题之后。"
        "点击“单元格”列的地址可跳到本工作簿中标注的单元格；表头可筛选。"
    )
    truncated = ""
    if shown < total:
        truncated = (
            f"问题较多，本表只列出前 {shown} 条（共 {total} 条）；"
            f"各类问题的完整数量见“{SUMMARY_SHEET}”工作表的分类统计。"
        )
    return status, truncated


@dataclass(frozen=True)
class FindingsTable:
    """What 问题清单 shows, whichever library writes it: texts, rows and their links."""

    status: str  # row 1, bold
    truncated: str  # row 2: "" unless the list is capped
    rows: list[list[Any]]  # one per finding, from FINDINGS_HEADER_ROW + 1
    links: list[tuple[str, str] | None]  # (sheet, address) of each row's marked cell

    @property
    def filter_range(self) -> str:
        """The auto-filter's range: the header and every row under it."""
        last_column = get_column_letter(len(FINDINGS_COLUMNS))
        return f"A{FINDINGS_HEADER_ROW}:{last_column}{FINDINGS_HEADER_ROW + len(self.rows)}"


def findings_table(
    report: dict[str, Any], placed: list[PlacedFinding], limit: int | None = None
) -> FindingsTable:
    """问题清单's content: one row per listed finding, by problem, up to the sheet's limit."""
    limit = FINDINGS_SHEET_LIMIT if limit is None else limit
    shown = placed[:limit]
    names = {dataset_id: spec.name_zh for dataset_id, spec in load_datasets().items()}
    status, truncated = _findings_sheet_status(report, len(shown))
    rows: list[list[Any]] = []
    links: list[tuple[str, str] | None] = []
    for item in shown:
        finding = item.finding
        if item.is_follow_on:
            link = f"由问题 {item.problem.number} 连带引起"
        elif item.problem.follow_ons:
            link = f"连带引起 {len(item.problem.follow_ons)} 条提示"
        else:
            link = ""
        address = item.address
        rows.append(
            [
                item.problem.number,
                SEVERITY_ZH.get(finding["severity"], finding["severity"]),
                item.sheet or _text(finding.get("sheet") or names.get(finding.get("dataset"), "")),
                address,
                _text(finding.get("header") or finding.get("column")),
                _text(finding.get("value"))[:200],
                finding["message_zh"],
                said_more(finding),
                finding["fix_zh"],
                link,
                finding["rule_id"],
            ]
        )
        links.append((item.sheet, address) if item.sheet is not None and address else None)
    return FindingsTable(status, truncated, rows, links)


def annotate_workbook(data: bytes, extension: str, report: dict[str, Any]) -> bytes:
    """The school's file returned as XLSX with its problem cells marked and commented.

    A file the validator refused as a file (damaged, too large, a zip bomb, macros...) is
    never opened again here: the school gets the summary alone.
    """
    kind = workbook_kind(data, extension, report)
    if kind == "xlsx":
        try:
            return _annotate_xlsx(data, report)
        except Exception:  # openpyxl cannot open it: fall back to the summary alone
            return _summary_only(report)
    if kind == "csv":
        try:
            grid = read_grids(data, "csv")[0].grid
        except ReadError:
            return _summary_only(report)
        return _annotate_grid(grid, report)
    return _summary_only(report)


def workbook_kind(data: bytes, extension: str, report: dict[str, Any]) -> str:
    """How ``annotate_workbook`` renders an upload: "xlsx", "csv" or "summary" (alone)."""
    if _is_refused_as_a_file(report):
        return "summary"
    kind = sniff_type(data) if data else "empty"
    if extension.lower() in ("xlsx", "xlsm") and kind == "xlsx":
        return "xlsx"
    if extension.lower() == "csv" and kind == "text":
        return "csv"
    return "summary"


def _is_refused_as_a_file(report: dict[str, Any]) -> bool:
    return any(
        item["rule_id"].startswith("file.") and item["severity"] == "error"
        for item in report.get("counts_by_rule", [])
    )


# -- an XLSX upload: the school's own workbook, annotated with openpyxl ---------------------

# One fill and one font object per kind, shared by every cell (openpyxl keeps one copy).
_FILLS = {
    severity: PatternFill(fill_type="solid", start_color=colour, end_color=colour)
    for severity, colour in (("error", ERROR_FILL_RGB), ("warning", WARNING_FILL_RGB))
}
BOLD_FONT = Font(bold=True)
SUMMARY_TITLE_FONT = Font(bold=True, size=14)


def _fill(severity: str) -> PatternFill:
    return _FILLS["error" if severity == "error" else "warning"]


def _comment(text: str) -> Comment:
    return Comment(text, COMMENT_AUTHOR, height=_comment_height_px(text), width=COMMENT_WIDTH_PT)


def _append_text_row(sheet: Worksheet, values: list[Any]) -> int:
    """Append a row whose strings stay strings: "=..." from a school's file is never a formula.

    Returns the row's number (an empty list appends an empty row).
    """
    sheet.append(values)
    row = sheet._current_row
    for column, value in enumerate(values, start=1):
        if isinstance(value, str) and value.startswith("="):
            sheet.cell(row=row, column=column).data_type = "s"
    return row


def _write_findings_sheet(sheet: Worksheet, table: FindingsTable) -> None:
    """问题清单 on an openpyxl sheet: each row linked to its marked cell."""
    for index, (_title, width) in enumerate(FINDINGS_COLUMNS, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = f"A{FINDINGS_HEADER_ROW + 1}"
    sheet.auto_filter.ref = table.filter_range
    _append_text_row(sheet, [table.status])
    sheet["A1"].font = BOLD_FONT
    _append_text_row(sheet, [table.truncated] if table.truncated else [])
    header_row = _append_text_row(sheet, [title for title, _width in FINDINGS_COLUMNS])
    for column in range(1, len(FINDINGS_COLUMNS) + 1):
        sheet.cell(row=header_row, column=column).font = BOLD_FONT
    for values, link in zip(table.rows, table.links, strict=True):
        row = _append_text_row(sheet, values)
        if link is not None:
            target = sheet.cell(row=row, column=LINK_COLUMN)
            target.hyperlink = Hyperlink(ref="", location=internal_link(*link), display=link[1])
            target.font = LINK_FONT


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
    for letter, width in zip("ABCDEFGH", SUMMARY_WIDTHS, strict=True):
        summary.column_dimensions[letter].width = width
    for row in _summary_rows(report, unplaced, len(merged)):
        _append_text_row(summary, row)
    summary["A1"].font = SUMMARY_TITLE_FONT
    _write_findings_sheet(workbook.create_sheet(FINDINGS_SHEET, 1), findings_table(report, placed))
    workbook.active = 0
    for sheet in workbook.worksheets[1:]:
        sheet.sheet_view.tabSelected = False
    return _saved_in_memory(workbook)


class _InMemoryExcelWriter(ExcelWriter):
    """openpyxl's package writer, each worksheet's XML built in memory.

    openpyxl 3.1 writes every worksheet to a temporary file, copies it into the zip and
    removes it; for a school's small workbook the files cost more than the XML. This is
    ``ExcelWriter.write_worksheet`` with a ``BytesIO`` as the sheet's output, which
    openpyxl's ``WorksheetWriter`` supports (``read`` returns its bytes): the same parts.
    """

    def write_worksheet(self, ws: Worksheet) -> None:
        """Write one (not write-only) worksheet's XML into the package."""
        ws._drawing = SpreadsheetDrawing()
        ws._drawing.charts = ws._charts
        ws._drawing.images = ws._images
        writer = WorksheetWriter(ws, out=io.BytesIO())
        writer.write()
        ws._rels = writer._rels
        self._archive.writestr(ws.path[1:], writer.read())
        self.manifest.append(ws)


def _saved_in_memory(workbook: openpyxl.Workbook) -> bytes:
    """The workbook's bytes, as ``openpyxl.writer.excel.save_workbook`` writes them."""
    buffer = io.BytesIO()
    archive = zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
    workbook.properties.modified = datetime.datetime.now(tz=datetime.UTC).replace(tzinfo=None)
    _InMemoryExcelWriter(workbook, archive).save()  # closes the archive
    return buffer.getvalue()


# -- a CSV upload or a refused file: a new workbook, written with XlsxWriter ----------------


def _pixels(width: float) -> int:
    """XlsxWriter pixels for a column width as openpyxl stores it (7 pixels a character).

    ``set_column`` would add Excel's 5-pixel padding to the width; given in pixels, the
    width is written as it was with openpyxl, so the columns look the same as before.
    """
    return round(width * 7)


# A CSV grid of more cells than this is written row by row (XlsxWriter's constant_memory).
STREAMED_CELLS = 200_000
# XlsxWriter copies a string that begins with <r> and ends with </r> into the sheet as
# rich-text markup, unescaped. Such a value is handed over as one literal run instead.
_RICH_TEXT_RUN = ('<r><t xml:space="preserve">', "</t></r>")
_EXCEL_TEXT_LIMIT = 32_767


def literal_text(value: str) -> str:
    """What to give XlsxWriter's ``write_string`` so that the cell shows ``value`` itself.

    A school's ``<r>a & b</r>`` would otherwise go into the sheet's XML as markup: a
    workbook that Excel has to repair and openpyxl cannot open. It goes in as the one
    rich-text run that shows exactly those characters (cut, like any text, to Excel's
    32,767, inside the run).
    """
    if not (value.startswith("<r>") and value.endswith("</r>")):
        return value
    start, end = _RICH_TEXT_RUN
    room = _EXCEL_TEXT_LIMIT - len(start) - len(end)
    escaped = xml_escape(value)
    if len(escaped) > room:  # cut between characters, never inside an escape
        pieces, used = [], 0
        for character in value:
            piece = xml_escape(character)
            if used + len(piece) > room:
                break
            pieces.append(piece)
            used += len(piece)
        escaped = "".join(pieces)
    return start + escaped + end


class NewWorkbook:
    """A new XLSX written with XlsxWriter: 问题汇总, 问题清单 and a CSV's grid.

    Every string from a report or a school's file is written with ``write_string``: a value
    starting with "=" stays text, never a formula (and nothing becomes a URL or a number).
    """

    def __init__(self, streamed: bool = False) -> None:
        self.buffer = io.BytesIO()
        self.book = xlsxwriter.Workbook(
            self.buffer,
            {
                # In memory is faster for the usual file; a big grid is streamed a row at a
                # time through temporary files, so its cells are never all held at once.
                "in_memory": not streamed,
                "constant_memory": streamed,
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "strings_to_numbers": False,
            },
        )
        self.bold = self.book.add_format({"bold": True})
        self.link = self.book.add_format(
            {"font_color": "#" + LINK_FONT.color.rgb[2:], "underline": 1}
        )
        self.fills = {
            severity: self.book.add_format({"pattern": 1, "bg_color": "#" + colour[2:]})
            for severity, colour in (("error", ERROR_FILL_RGB), ("warning", WARNING_FILL_RGB))
        }

    def _write_row(self, sheet: Any, row: int, values: list[Any], cell_format: Any = None) -> None:
        for column, value in enumerate(values):
            if isinstance(value, str):
                if value:
                    sheet.write_string(row, column, literal_text(value), cell_format)
            elif isinstance(value, int | float):
                sheet.write_number(row, column, value, cell_format)

    def summary(self, rows: list[list[Any]]) -> None:
        """问题汇总: the rows of ``_summary_rows`` (an empty list is an empty row)."""
        sheet = self.book.add_worksheet(SUMMARY_SHEET)
        for column, width in enumerate(SUMMARY_WIDTHS):
            sheet.set_column_pixels(column, column, _pixels(width))
        for row, values in enumerate(rows):
            self._write_row(sheet, row, values)

    def findings(self, table: FindingsTable) -> None:
        """问题清单: each row's 单元格 linked to its marked cell, a frozen header, a filter."""
        sheet = self.book.add_worksheet(FINDINGS_SHEET)
        for column, (_title, width) in enumerate(FINDINGS_COLUMNS):
            sheet.set_column_pixels(column, column, _pixels(width))
        header_index = FINDINGS_HEADER_ROW - 1  # XlsxWriter counts rows from 0
        sheet.freeze_panes(FINDINGS_HEADER_ROW, 0)
        sheet.autofilter(table.filter_range)
        sheet.write_string(0, 0, table.status, self.bold)
        if table.truncated:
            sheet.write_string(1, 0, table.truncated)
        self._write_row(sheet, header_index, [title for title, _ in FINDINGS_COLUMNS], self.bold)
        link_index = LINK_COLUMN - 1
        for row, (values, link) in enumerate(
            zip(table.rows, table.links, strict=True), start=header_index + 1
        ):
            self._write_row(sheet, row, values)
            if link is not None:
                sheet.write_url(
                    row, link_index, "internal:" + internal_link(*link), self.link, link[1]
                )

    def grid(
        self,
        name: str,
        rows: Iterable[Iterable[Any]],
        width: int,
        notes: dict[int, dict[int, CellNote]],
    ) -> None:
        """A CSV's grid as text, each noted cell filled and commented.

        ``notes[row][column]`` is the note of a cell, both 1-based as ``CellNote`` counts.
        """
        sheet = self.book.add_worksheet(name)
        if width:
            sheet.set_column_pixels(0, width - 1, _pixels(16))
        for row_index, values in enumerate(rows):
            row_notes = notes.get(row_index + 1)
            if row_notes is None:
                for column_index, value in enumerate(values):
                    if value:
                        sheet.write_string(row_index, column_index, literal_text(value))
                continue
            for column_index, value in enumerate(values):
                note = row_notes.get(column_index + 1)
                if note is None:
                    if value:
                        sheet.write_string(row_index, column_index, literal_text(value))
                    continue
                fill = self.fills["error" if note.severity == "error" else "warning"]
                if value:
                    sheet.write_string(row_index, column_index, literal_text(value), fill)
                else:
                    sheet.write_blank(row_index, column_index, None, fill)
                sheet.write_comment(
                    row_index,
                    column_index,
                    note.text,
                    {
                        "author": COMMENT_AUTHOR,
                        "width": COMMENT_WIDTH_PT,
                        "height": _comment_height_px(note.text),
                    },
                )

    def close(self) -> bytes:
        """The workbook's bytes."""
        self.book.close()
        return self.buffer.getvalue()


def _annotate_grid(grid: Any, report: dict[str, Any]) -> bytes:
    """A CSV upload: 问题汇总, 问题清单, then its grid as text cells with the notes."""
    sheet_name = next((entry["dataset"] for entry in report.get("datasets", [])), None) or "数据"
    placed = place_findings(report, [sheet_name], default_sheet=sheet_name)
    notes, unplaced = _notes_and_unplaced(placed)
    merged = _merged_notes(notes)
    by_row: dict[int, dict[int, CellNote]] = {}
    for (_sheet, row, column), note in merged.items():
        by_row.setdefault(row, {})[column] = note
    workbook = NewWorkbook(streamed=grid.height * grid.width > STREAMED_CELLS)
    workbook.summary(_summary_rows(report, unplaced, len(merged)))
    workbook.findings(findings_table(report, placed))
    workbook.grid(sheet_name, grid.iter_rows(), grid.width, by_row)
    return workbook.close()


def _summary_only(report: dict[str, Any]) -> bytes:
    # Nothing of the school's file to mark or link to: the summary lists every finding.
    workbook = NewWorkbook()
    workbook.summary(_summary_rows(report, list(report["findings"]), 0, has_findings_sheet=False))
    return workbook.close()
