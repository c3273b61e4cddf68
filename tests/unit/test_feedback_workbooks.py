"""The annotated workbooks show a school what the openpyxl-only implementation showed.

``vetreport.school.feedback`` writes a CSV upload's workbook and the summary-only workbook
with XlsxWriter, and annotates an XLSX upload with openpyxl. Each workbook is read back with
openpyxl and compared with what the frozen openpyxl-only implementation
(``tests/feedback_reference.py``) renders from the same report: the sheets and their order,
the active sheet, every cell's value and type (a school's "=..." stays text), fills,
comments (text and author), hyperlinks, fonts, merged cells, the frozen header, the filter
and the column widths. The uploads are real: a small national year's and the messy-file
corpus's uploads with findings, validated as ingest does (the cases
``benchmarks/bench_feedback.py`` times; the Shaoxing demo's uploads are all clean), and
the hand-made uploads of ``test_feedback.py``.
"""

from __future__ import annotations

import io
from typing import Any

import openpyxl
import pytest

from benchmarks.bench_feedback import (
    FeedbackCase,
    corpus_cases,
    national_cases,
    report_of,
)
from tests import feedback_reference
from tests.unit.test_feedback import SCHOOL, csv_upload, school_workbook
from vetreport.school.feedback import annotate_workbook

NATIONAL_SCHOOLS = 60  # enough for XLSX uploads with each kind of defect


def _font(cell: Any) -> tuple[Any, ...]:
    font = cell.font
    colour = font.color.rgb if font.color is not None and font.color.type == "rgb" else None
    # A font without a size (openpyxl's Font(bold=True)) is shown at the default 11.
    return (bool(font.b), font.u, colour, font.sz or 11.0)


DEFAULT_FONT = (False, None, None, 11.0)


def _cell_view(cell: Any) -> tuple[Any, ...] | None:
    fill = (cell.fill.fill_type, cell.fill.start_color.rgb) if cell.fill.fill_type else None
    comment = (cell.comment.text, cell.comment.author) if cell.comment is not None else None
    link = None
    if cell.hyperlink is not None:
        link = (cell.hyperlink.location, cell.hyperlink.target)
    font = _font(cell)
    if (cell.value, fill, comment, link, font) == (None, None, None, None, DEFAULT_FONT):
        return None
    return (cell.value, cell.data_type, fill, comment, link, font)


def workbook_view(data: bytes) -> dict[str, Any]:
    """What a school sees in a workbook, as comparable data."""
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    sheets = {}
    for sheet in workbook.worksheets:
        cells = {}
        for row in sheet.iter_rows():
            for cell in row:
                view = _cell_view(cell)
                if view is not None:
                    cells[cell.coordinate] = view
        widths = {  # openpyxl writes neighbours of one width as one range
            index: round(dimension.width, 2)
            for dimension in sheet.column_dimensions.values()
            if dimension.customWidth
            for index in range(dimension.min, dimension.max + 1)
        }
        sheets[sheet.title] = {
            "cells": cells,
            "merged": sorted(str(merged) for merged in sheet.merged_cells.ranges),
            "freeze_panes": sheet.freeze_panes,
            "auto_filter": sheet.auto_filter.ref,
            "widths": widths,
        }
    return {
        "sheetnames": workbook.sheetnames,
        "active": workbook.active.title,
        "sheets": sheets,
    }


def assert_same_as_reference(case: FeedbackCase) -> None:
    new = workbook_view(annotate_workbook(case.data, case.extension, case.report))
    old = workbook_view(
        feedback_reference.annotate_workbook(case.data, case.extension, case.report)
    )
    label = f"{case.source} {case.key} ({case.path})"
    assert new["sheetnames"] == old["sheetnames"], label
    assert new["active"] == old["active"], label
    for name, sheet in old["sheets"].items():
        for aspect in ("merged", "freeze_panes", "auto_filter", "widths"):
            assert new["sheets"][name][aspect] == sheet[aspect], (label, name, aspect)
        new_cells = new["sheets"][name]["cells"]
        for coordinate in sorted(set(new_cells) | set(sheet["cells"])):
            assert new_cells.get(coordinate) == sheet["cells"].get(coordinate), (
                label,
                name,
                coordinate,
            )


def synthetic_cases() -> list[FeedbackCase]:
    """test_feedback.py's uploads: a titled workbook, a CSV with "=...", a refused file."""
    uploads = {
        f"uploads/2024/{SCHOOL}/graduates.xlsx": school_workbook(),
        f"uploads/2024/{SCHOOL}/graduates.csv": csv_upload(),
        f"uploads/2024/{SCHOOL}/staff.csv": b"%PDF-1.7 not a csv" + bytes(range(16)),
    }
    return [
        FeedbackCase("synthetic", key, data, key.rsplit(".", 1)[1], report_of(key, data))
        for key, data in uploads.items()
    ]


SOURCES = {
    "national": lambda: national_cases(NATIONAL_SCHOOLS),
    "corpus": corpus_cases,
    "synthetic": synthetic_cases,
}


@pytest.mark.parametrize("source", list(SOURCES))
def test_workbooks_show_what_the_openpyxl_implementation_showed(source: str) -> None:
    cases = SOURCES[source]()
    assert cases, f"no {source} uploads with findings"
    for case in cases:
        assert_same_as_reference(case)


def test_every_path_is_compared() -> None:
    """The cases above reach the three paths, so none of them goes unchecked."""
    paths = {case.path for case in corpus_cases() + synthetic_cases()}
    assert paths == {"csv", "xlsx", "summary"}


def test_a_big_grid_streamed_row_by_row_shows_the_same(monkeypatch) -> None:
    """A CSV grid over STREAMED_CELLS is written in constant_memory mode: same workbook."""
    import vetreport.school.feedback as feedback

    monkeypatch.setattr(feedback, "STREAMED_CELLS", 0)
    cases = [case for case in corpus_cases() + synthetic_cases() if case.path == "csv"]
    assert cases
    for case in cases:
        assert_same_as_reference(case)


def test_the_in_memory_package_writer_writes_what_openpyxl_saves() -> None:
    """The XLSX path's writer (no temporary file per sheet) writes the same parts."""
    import zipfile

    from vetreport.school.feedback import _saved_in_memory

    data = school_workbook()
    workbook = openpyxl.load_workbook(io.BytesIO(data))
    workbook["毕业生"]["C4"].comment = openpyxl.comments.Comment("说明", "vetreport")
    workbook["毕业生"]["C4"].hyperlink = "#'填表说明'!A1"
    saved = io.BytesIO()
    workbook.save(saved)
    parts = {}
    for name, package in (
        ("openpyxl", saved.getvalue()),
        ("in memory", _saved_in_memory(workbook)),
    ):
        with zipfile.ZipFile(io.BytesIO(package)) as archive:
            parts[name] = {
                info.filename: archive.read(info.filename)
                for info in archive.infolist()
                if info.filename != "docProps/core.xml"  # the time it was saved
            }
    assert list(parts["in memory"]) == list(parts["openpyxl"])
    for part, content in parts["openpyxl"].items():
        assert parts["in memory"][part] == content, part


@pytest.mark.parametrize("streamed", [False, True])
def test_school_text_shaped_like_rich_text_is_shown_as_sent(monkeypatch, streamed: bool) -> None:
    """XlsxWriter takes "<r>...</r>" for markup; the school's workbook must still open."""
    import vetreport.school.feedback as feedback
    from tests.unit.test_feedback import HEADER, ROWS

    if streamed:
        monkeypatch.setattr(feedback, "STREAMED_CELLS", 0)
    hostile = ["<r>a & b <c></r>", "<r>" + "<" * 20_000 + "</r>"]
    rows = [*ROWS, [SCHOOL, "G0009", hostile[0], "去火星", "", "", hostile[1]]]
    data = "\n".join(",".join(row) for row in [HEADER, *rows]).encode("utf-8") + b"\n"
    key = f"uploads/2024/{SCHOOL}/graduates.csv"
    workbook = openpyxl.load_workbook(
        io.BytesIO(annotate_workbook(data, "csv", report_of(key, data)))
    )
    shown = {cell.value for sheet in workbook for row in sheet.iter_rows() for cell in row}
    assert hostile[0] in shown
    assert any(isinstance(value, str) and value.startswith("<r><<<") for value in shown)


def test_literal_text_stays_within_excels_limit_inside_its_run() -> None:
    from vetreport.school.feedback import literal_text

    assert literal_text("plain <r>") == "plain <r>"
    run = literal_text("<r>" + "&" * 40_000 + "</r>")
    assert len(run) <= 32_767
    assert run.startswith("<r><t") and run.endswith("&amp;</t></r>")
