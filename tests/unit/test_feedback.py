"""The school-facing reports: the HTML page (rendered in headless Chromium) and the workbook
with bad cells marked, and that ingest writes both for every upload."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter

from tests.chromium import CHROMIUM_FLAGS, require_chromium
from tests.corpus.make_corpus import GRADUATE_HEADER
from vetreport.bucket.store import open_store
from vetreport.curate.ingest import ingest_keys
from vetreport.school.feedback import (
    ERROR_FILL_RGB,
    FINDINGS_HEADER_ROW,
    FINDINGS_SHEET,
    SUMMARY_SHEET,
    WARNING_FILL_RGB,
    annotate_workbook,
    render_html,
)
from vetreport.validate.checks import UploadContext, build_report, validate_upload

SCHOOL = "3306020001"
HEADER = GRADUATE_HEADER
ROWS = [
    [SCHOOL, "G0001", "护理", "直接就业", "是", "abc", "否"],  # income not a number: error
    [SCHOOL, "G0002", "护理", "去火星", "", "", "否"],  # destination not allowed: error
    [SCHOOL, "G0003", "护理", "单考单招", "是", "", "否"],  # matched although not employed: warning
    [SCHOOL, "G0004", "护理", "待就业", "", "", "<script>alert(1)</script>"],
]


def report_of(data: bytes, extension: str) -> dict:
    context = UploadContext(
        f"uploads/2024/{SCHOOL}/graduates.{extension}", 2024, SCHOOL, "graduates", extension
    )
    return build_report(validate_upload(data, context), context, "sub123")


def school_workbook() -> bytes:
    """A school's own workbook: a notes sheet, then a title row above the header at B3."""
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    workbook.add_worksheet("填表说明").write(0, 0, "说明")
    sheet = workbook.add_worksheet("毕业生")
    sheet.merge_range(0, 1, 0, 7, "2024年 毕业生去向")
    sheet.write_row(2, 1, [*HEADER, "备注"])
    for index, row in enumerate(ROWS, start=3):
        sheet.write_row(index, 1, row)
    workbook.close()
    return buffer.getvalue()


def csv_upload() -> bytes:
    lines = [
        ",".join(HEADER),
        *(",".join(row) for row in ROWS),
        "=HYPERLINK(1),G0005,护理,待就业,,,否",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


def cell_notes(sheet) -> dict[str, tuple[str, str]]:
    return {
        cell.coordinate: (cell.fill.start_color.rgb, cell.comment.text)
        for row in sheet.iter_rows()
        for cell in row
        if cell.comment is not None
    }


# ------------------------------------------------------------------------------------------
# HTML
# ------------------------------------------------------------------------------------------


@pytest.mark.browser
def test_html_report_of_a_rejected_upload_renders_in_chromium(tmp_path: Path) -> None:
    browser = require_chromium()
    report = report_of(csv_upload(), "csv")
    assert report["outcome"] == "rejected"
    page = tmp_path / "report.html"
    page.write_text(render_html(report), encoding="utf-8")
    completed = subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    dom = completed.stdout
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "未通过（已退回）" in dom  # the outcome banner
    assert "取值不在允许的选项中" in dom  # a finding's message (field.enum on 去火星)
    assert "请从下拉选项中选择" in dom  # ... and its fix
    assert "去火星" in dom
    # the school's text is escaped, never run
    assert "<script>alert(1)</script>" not in dom
    assert "&lt;script&gt;" in dom


def test_html_report_escapes_values_and_says_when_the_listing_is_truncated() -> None:
    report = report_of(csv_upload(), "csv")
    report["is_truncated"] = True
    report["finding_limit"] = len(report["findings"])
    html = render_html(report)
    assert "<script>" not in html
    assert 'id="truncated"' in html
    assert "http://" not in html and "https://" not in html  # self-contained


# ------------------------------------------------------------------------------------------
# Annotated workbooks
# ------------------------------------------------------------------------------------------


def test_xlsx_upload_is_returned_with_bad_cells_filled_and_commented() -> None:
    data = school_workbook()
    report = report_of(data, "xlsx")
    workbook = openpyxl.load_workbook(io.BytesIO(annotate_workbook(data, "xlsx", report)))
    assert workbook.sheetnames == [SUMMARY_SHEET, FINDINGS_SHEET, "填表说明", "毕业生"]
    notes = cell_notes(workbook["毕业生"])
    # header at Excel row 3 starting in column B: row 4 is the first data row
    assert notes["G4"][0] == ERROR_FILL_RGB and "field.type" in notes["G4"][1]
    assert "数据类型不正确" in notes["G4"][1]
    assert notes["E5"][0] == ERROR_FILL_RGB and "field.enum" in notes["E5"][1]
    assert "请从下拉选项中选择" in notes["E5"][1]
    assert notes["F6"][0] == WARNING_FILL_RGB and "row.matched_only_if_employed" in notes["F6"][1]
    assert notes["I3"][0] == WARNING_FILL_RGB and "structure.unknown_column" in notes["I3"][1]
    assert workbook["毕业生"]["G4"].value == "abc"  # the school's data is kept
    summary = [row for row in workbook[SUMMARY_SHEET].iter_rows(values_only=True)]
    assert summary[0][0] == "校验结果：未通过（已退回）"
    assert any(row[-1] == "structure.unknown_column" for row in summary if row)


def test_csv_upload_comes_back_as_a_workbook_with_the_same_marks() -> None:
    data = csv_upload()
    report = report_of(data, "csv")
    workbook = openpyxl.load_workbook(io.BytesIO(annotate_workbook(data, "csv", report)))
    assert workbook.sheetnames == [SUMMARY_SHEET, FINDINGS_SHEET, "graduates"]
    sheet = workbook["graduates"]
    notes = cell_notes(sheet)
    assert notes["F2"][0] == ERROR_FILL_RGB and "field.type" in notes["F2"][1]
    assert notes["D3"][0] == ERROR_FILL_RGB and "field.enum" in notes["D3"][1]
    assert notes["E4"][0] == WARNING_FILL_RGB
    assert sheet["A6"].value == "=HYPERLINK(1)" and sheet["A6"].data_type == "s"


def test_file_level_failure_gives_a_summary_only_workbook() -> None:
    data = b"%PDF-1.7 not a csv" + bytes(range(16))
    report = report_of(data, "csv")
    workbook = openpyxl.load_workbook(io.BytesIO(annotate_workbook(data, "csv", report)))
    assert workbook.sheetnames == [SUMMARY_SHEET]
    rules = [row[-1] for row in workbook[SUMMARY_SHEET].iter_rows(values_only=True) if row]
    assert "file.type_mismatch" in rules


def findings_list(workbook) -> tuple[list[tuple], dict[int, tuple], object]:
    """问题清单's rows under its header, the links of its 单元格 column by row, and the sheet."""
    sheet = workbook[FINDINGS_SHEET]
    header_row = next(row[0].row for row in sheet.iter_rows() if row[0].value == "问题序号")
    rows = [tuple(cell.value for cell in row) for row in sheet.iter_rows(min_row=header_row + 1)]
    links = {
        row[3].row: (row[3].hyperlink.location, row[3].value)
        for row in sheet.iter_rows(min_row=header_row + 1)
        if row[3].hyperlink is not None
    }
    return rows, links, sheet


def assert_links_land_on_marked_cells(workbook, links: dict[int, tuple]) -> None:
    for location, address in links.values():
        sheet_name, cell = location.rsplit("!", 1)
        assert sheet_name.startswith("'") and sheet_name.endswith("'"), location
        target = workbook[sheet_name[1:-1].replace("''", "'")][cell]
        assert cell == address
        assert target.comment is not None, location  # the link lands on a marked cell


def test_xlsx_upload_gets_a_findings_list_linked_to_the_marked_cells() -> None:
    data = school_workbook()
    report = report_of(data, "xlsx")
    workbook = openpyxl.load_workbook(io.BytesIO(annotate_workbook(data, "xlsx", report)))
    rows, links, sheet = findings_list(workbook)
    assert len(rows) == len(report["findings"])
    assert sheet.freeze_panes == f"A{FINDINGS_HEADER_ROW + 1}"
    assert sheet.auto_filter.ref == f"A{FINDINGS_HEADER_ROW}:K{FINDINGS_HEADER_ROW + len(rows)}"
    by_cell = {(row[3], row[-1]): row for row in rows}
    # field.type on the income of the first data row: header at B3, so G4
    income = by_cell[("G4", "field.type")]
    assert income[1:6] == ("错误", "毕业生", "G4", "初次就业月收入（元/月）", "abc")
    assert income[6] == "数据类型不正确" and "0 到 100000" in income[7]
    assert "'毕业生'!G4" in {location for location, _ in links.values()}
    assert "'毕业生'!E5" in {location for location, _ in links.values()}
    assert_links_land_on_marked_cells(workbook, links)
    # the unknown column is marked on its header cell and linked there too
    assert ("I3", "structure.unknown_column") in by_cell
    # the school's sheets keep their marks
    assert cell_notes(workbook["毕业生"])["G4"][0] == ERROR_FILL_RGB


def test_csv_upload_gets_the_same_findings_list() -> None:
    data = csv_upload()
    report = report_of(data, "csv")
    workbook = openpyxl.load_workbook(io.BytesIO(annotate_workbook(data, "csv", report)))
    rows, links, sheet = findings_list(workbook)
    assert len(rows) == len(report["findings"]) == len(links)
    assert sheet.freeze_panes == f"A{FINDINGS_HEADER_ROW + 1}"
    assert sheet.auto_filter.ref == f"A{FINDINGS_HEADER_ROW}:K{FINDINGS_HEADER_ROW + len(rows)}"
    assert {location for location, _ in links.values()} >= {
        "'graduates'!F2",
        "'graduates'!D3",
        "'graduates'!E4",
        "'graduates'!A6",
    }
    assert_links_land_on_marked_cells(workbook, links)
    # a school's "=..." is listed as text, never a formula
    formulas = [row[5] for row in sheet.iter_rows() if row[5].value == "=HYPERLINK(1)"]
    assert formulas and all(cell.data_type == "s" for cell in formulas)


def test_a_sheet_name_with_an_apostrophe_is_quoted_in_the_link() -> None:
    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = workbook.add_worksheet("Tom's 毕业生")
    sheet.write_row(0, 0, HEADER)
    sheet.write_row(1, 0, ROWS[1])
    workbook.close()
    data = buffer.getvalue()
    report = report_of(data, "xlsx")
    annotated = openpyxl.load_workbook(io.BytesIO(annotate_workbook(data, "xlsx", report)))
    _rows, links, _sheet = findings_list(annotated)
    assert ("'Tom''s 毕业生'!D2", "D2") in links.values()
    assert_links_land_on_marked_cells(annotated, links)


def test_a_cascade_is_one_problem_on_the_page_and_in_the_workbook() -> None:
    data = (",".join(HEADER) + f"\n{SCHOOL},G0001,护理,去火星,是,3000,否\n").encode()
    report = report_of(data, "csv")
    assert report["problem_count"] == 1 and len(report["findings"]) == 3
    workbook = openpyxl.load_workbook(io.BytesIO(annotate_workbook(data, "csv", report)))
    rows, _links, _sheet = findings_list(workbook)
    assert [(row[0], row[-1]) for row in rows] == [
        (1, "field.enum"),
        (1, "row.matched_only_if_employed"),
        (1, "row.income_only_if_employed"),
    ]
    assert rows[0][9] == "连带引起 2 条提示"
    assert rows[1][9] == rows[2][9] == "由问题 1 连带引起"
    assert rows[1][7].startswith("因“毕业去向”填写有误，连带提示：")
    notes = cell_notes(workbook["graduates"])
    assert "本行另有 2 条提示由此连带引起" in notes["D2"][1]
    assert "因“毕业去向”填写有误" in notes["E2"][1] and notes["E2"][0] == WARNING_FILL_RGB
    html = render_html(report)
    assert html.count('class="warning follow-on"') == 2
    assert 'id="problem-1"' in html and 'id="problem-2"' not in html
    assert "共 1 个问题" in html


def test_a_huge_report_lists_up_to_the_cap_and_says_so(monkeypatch) -> None:
    import vetreport.school.feedback as feedback

    monkeypatch.setattr(feedback, "FINDINGS_SHEET_LIMIT", 3)
    data = csv_upload()
    report = report_of(data, "csv")
    total = report["error_count"] + report["warning_count"]
    assert total > 3
    workbook = openpyxl.load_workbook(io.BytesIO(annotate_workbook(data, "csv", report)))
    rows, _links, sheet = findings_list(workbook)
    assert len(rows) == 3
    assert f"共 {total} 条" in sheet["A1"].value  # the count is never capped
    assert f"本表只列出前 3 条（共 {total} 条）" in sheet["A2"].value
    assert sheet.auto_filter.ref == f"A{FINDINGS_HEADER_ROW}:K{FINDINGS_HEADER_ROW + 3}"


def test_a_report_capped_by_the_validator_says_so_in_the_list(monkeypatch) -> None:
    import vetreport.validate.checks as checks

    monkeypatch.setattr(checks, "FINDING_LIMIT", 2)
    data = csv_upload()
    report = report_of(data, "csv")
    assert report["is_truncated"]
    total = report["error_count"] + report["warning_count"]
    workbook = openpyxl.load_workbook(io.BytesIO(annotate_workbook(data, "csv", report)))
    rows, _links, sheet = findings_list(workbook)
    assert len(rows) == 2
    assert f"本表只列出前 2 条（共 {total} 条）" in sheet["A2"].value
    assert (
        sum(
            row[2]
            for row in workbook[SUMMARY_SHEET].iter_rows(values_only=True)
            if row and isinstance(row[2], int)
        )
        == total
    )  # counts by rule are complete


# ------------------------------------------------------------------------------------------
# Ingest writes them
# ------------------------------------------------------------------------------------------


def test_ingest_writes_html_and_workbook_reports_for_good_and_bad_uploads(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "bucket"))
    good = "\n".join([",".join(HEADER), f"{SCHOOL},G0001,护理,直接就业,是,3800,否"]) + "\n"
    keys = {
        f"uploads/2024/{SCHOOL}/graduates.csv": good.encode(),
        f"uploads/2024/{SCHOOL}/staff.xlsx": b"%PDF-1.4 renamed" + bytes(range(32)),
        f"uploads/2024/{SCHOOL}/workbook.xlsx": school_workbook(),
    }
    for key, body in keys.items():
        store.put(key, body)
    results = ingest_keys(store, list(keys))
    outcomes = {result.key: result.outcome for result in results}
    assert outcomes[f"uploads/2024/{SCHOOL}/graduates.csv"] == "accepted"
    assert outcomes[f"uploads/2024/{SCHOOL}/staff.xlsx"] == "rejected"
    for result in results:
        base = f"reports/2024/{SCHOOL}/{result.submission_id}"
        html = store.get(base + ".html").decode("utf-8")
        assert "数据校验报告" in html
        ledger = [
            info.key for info in store.list("ledger/2024/") if result.submission_id in info.key
        ]
        record = json.loads(store.get(ledger[0]))
        if result.outcome == "accepted":
            # nothing to mark: no annotated workbook for a clean upload
            assert record["report_keys"] == [base + ".json", base + ".html"]
            assert not store.exists(base + ".xlsx")
            continue
        workbook = openpyxl.load_workbook(io.BytesIO(store.get(base + ".xlsx")))
        assert workbook.sheetnames[0] == SUMMARY_SHEET
        assert record["report_keys"] == [base + ".json", base + ".html", base + ".xlsx"]


def test_a_rendering_failure_never_fails_ingest(tmp_path: Path, monkeypatch) -> None:
    import vetreport.curate.ingest

    def broken(*_arguments, **_keywords):
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(vetreport.curate.ingest, "render_html", broken)
    monkeypatch.setattr(vetreport.curate.ingest, "annotate_workbook", broken)
    store = open_store(str(tmp_path / "bucket"))
    key = f"uploads/2024/{SCHOOL}/graduates.csv"
    store.put(
        key, ("\n".join([",".join(HEADER), f"{SCHOOL},G0001,护理,待就业,,,否"]) + "\n").encode()
    )
    [result] = ingest_keys(store, [key])
    assert result.outcome == "accepted"
    assert store.exists(f"reports/2024/{SCHOOL}/{result.submission_id}.json")
    assert not store.exists(f"reports/2024/{SCHOOL}/{result.submission_id}.html")
