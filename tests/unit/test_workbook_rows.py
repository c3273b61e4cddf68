"""The version's workbook with its rows built column-wise is the workbook the per-cell
writer wrote: every part of the package byte for byte (but the creation time), and every
cell as openpyxl reads it (value, type, number format, font, border, fill, alignment),
with the same column widths, merged cells, frozen panes and links.

The reference is ``tests/workbook_reference.py`` (one xlsxwriter call per cell). The
tables are the ones ``test_publish_outputs.py`` publishes (every table of the catalogue,
shaped by the real aggregation code, and indicator_values) and hostile frames: nulls, NaN,
±inf, -0.0, huge and tiny floats, integers beyond 2^53, booleans, decimals, dates, empty
frames, whitespace at either end (Unicode's too), control characters, ``<&>"'``,
formula-like text, emoji and CJK, strings past Excel's 32,767 characters, xlsxwriter's
rich-text markers, a row limit that cuts tables, and chunks of a few rows.
"""

from __future__ import annotations

import datetime
import io
import re
import zipfile
from decimal import Decimal

import openpyxl
import polars as pl
import pytest
import xlsxwriter
from openpyxl.xml.functions import tostring

from tests import workbook_reference
from tests.unit.test_publish_outputs import YEAR, make_result
from vetreport.publish.outputs import xlsx_rows
from vetreport.publish.outputs.metadata import VersionInfo
from vetreport.publish.outputs.workbook import workbook_bytes

VERSION = VersionInfo(YEAR, 3, "revision", "2026-11-30T12:00:00+00:00", 2, 2, "7", "abc123")
_CREATED = re.compile(rb"<dcterms:(created|modified)[^>]*>[^<]*</dcterms:(created|modified)>")

TEXTS = [
    None,
    "",
    " leading",
    "trailing ",
    "\u3000全角空格",
    "no-break\xa0",
    "\ttab",
    "line\nbreak",
    "next line\x85",
    "separator\u2028",
    "nul\x00 unit\x1f vt\x0b fs\x1c",
    "_x0041_ a literal escape, _x00e9_ and _x12G4_",
    "non-characters \ufffe\uffff",
    "<&>\"'",
    "=1+1",
    "+1",
    "-x",
    "@SUM(A1)",
    "emoji 😀 and CJK 汉字",
    "<r>rich</r>",
    "x" * 40_000,
    "😀" * 20_000,
    "a" * 32_766 + "😀",
    "b" * 16_384,
    "\x1d",
]
FLOATS = [
    None,
    float("nan"),
    float("inf"),
    float("-inf"),
    0.0,
    -0.0,
    9.3,
    0.1 + 0.2,
    34.3,
    -2.5,
    1e16,
    1e16 + 2,
    9999999999999998.0,
    1e15 + 0.5,
    float(2**53),
    float(2**63),
    1e22,
    1e-300,
    5e-324,
    1.7976931348623157e308,
    123456789012345.67,
    1.5e-5,
    0.0001,
    3406.0,
]
INTEGERS = [None, 0, -1, 7, 2**53, 2**53 + 1, -(2**53) - 1, 10**16 + 1, 2**63 - 1, -(2**63)]


# xlsxwriter writes a string that begins with <r> and ends with </r> as rich text, without
# escaping it: this one makes the sheet's XML malformed (openpyxl cannot read it, Excel
# would repair the file), in both writers alike.
MALFORMED_RICH_TEXT = "<r>rich & <b></r>"


def _padded(values: list, height: int) -> list:
    return [values[index % len(values)] for index in range(height)]


def hostile_tables() -> dict[str, pl.DataFrame]:
    """Tables of every awkward value, and empty ones, under ids the catalogue does not know."""
    height = max(len(TEXTS), len(FLOATS), len(INTEGERS))
    every_kind = pl.DataFrame(
        {
            "text": _padded(TEXTS, height),
            "float": _padded(FLOATS, height),
            "integer": pl.Series(_padded(INTEGERS, height), dtype=pl.Int64),
            "unsigned": pl.Series(
                _padded([None, 0, 2**64 - 1, 2**53 + 3], height), dtype=pl.UInt64
            ),
            "small": pl.Series(_padded([1, None, -128], height), dtype=pl.Int8),
            "single": pl.Series(_padded([0.1, None, 3.4e38, -0.0], height), dtype=pl.Float32),
            "flag": _padded([True, False, None], height),
            "decimal": pl.Series(
                _padded([Decimal("1.50"), None, Decimal("-0.001"), Decimal("0")], height),
                dtype=pl.Decimal(12, 3),
            ),
            "day": _padded([datetime.date(2023, 9, 1), None], height),
            "nothing": pl.Series([None] * height, dtype=pl.Null),
            "all_null_numbers": pl.Series([None] * height, dtype=pl.Float64),
        }
    )
    many_rows = pl.DataFrame(
        {
            "name": [f"学校{index}" if index % 5 else f" 学校{index} " for index in range(50)],
            "value": [index / 7 if index % 6 else None for index in range(50)],
            "count": list(range(50)),
        }
    )
    return {
        "hostile": every_kind,
        "many_rows": many_rows,
        "texts_only": pl.DataFrame({"text": TEXTS}),
        "floats_only": pl.DataFrame({"float": FLOATS}),
        "empty": every_kind.clear(),
        "no_columns": pl.DataFrame(),
    }


def published_tables() -> dict[str, pl.DataFrame]:
    """What ``publish`` writes for test_publish_outputs' result, with NaN, inf and nulls
    in a per-row formatted (indicators-as-rows) table."""
    result = make_result()
    tables = {**result.tables, "indicator_values": result.indicator_values}
    scorecard = tables["scorecard"]
    value_column = next(name for name in scorecard.columns if name.startswith("value_"))
    specials = pl.Series(_padded([None, float("nan"), float("inf"), -0.0, 9.3], scorecard.height))
    tables["scorecard"] = scorecard.with_columns(
        pl.when(pl.int_range(pl.len()) % 3 == 0)
        .then(specials)
        .otherwise(pl.col(value_column))
        .alias(value_column)
    )
    return tables


def package_parts(xlsx: bytes) -> dict[str, bytes]:
    """Every part of the package, the creation and modification times left out."""
    with zipfile.ZipFile(io.BytesIO(xlsx)) as package:
        return {name: _CREATED.sub(b"", package.read(name)) for name in package.namelist()}


def assert_same_package(expected: bytes, actual: bytes) -> None:
    expected_parts, actual_parts = package_parts(expected), package_parts(actual)
    assert list(actual_parts) == list(expected_parts)
    for name, part in expected_parts.items():
        if actual_parts[name] != part:
            other = actual_parts[name]
            common = min(len(part), len(other))
            first = next((index for index in range(common) if part[index] != other[index]), common)
            raise AssertionError(
                f"{name} differs at byte {first}:\n"
                f"reference: {part[first - 120 : first + 120]!r}\n"
                f"new:       {other[first - 120 : first + 120]!r}"
            )


def assert_same_cells(expected: bytes, actual: bytes) -> None:
    """What a user sees, through openpyxl: every cell, width, merge, pane and link."""
    before = openpyxl.load_workbook(io.BytesIO(expected))
    after = openpyxl.load_workbook(io.BytesIO(actual))
    assert after.sheetnames == before.sheetnames
    for name in before.sheetnames:
        old, new = before[name], after[name]
        assert (new.max_row, new.max_column) == (old.max_row, old.max_column), name
        assert new.freeze_panes == old.freeze_panes, name
        assert sorted(map(str, new.merged_cells.ranges)) == sorted(
            map(str, old.merged_cells.ranges)
        )
        widths = {key: dimension.width for key, dimension in old.column_dimensions.items()}
        assert {key: value.width for key, value in new.column_dimensions.items()} == widths
        assert new.row_dimensions[3].height == old.row_dimensions[3].height
        links = {cell: link.location for cell, link in _links(old).items()}
        assert {cell: link.location for cell, link in _links(new).items()} == links
        for old_row, new_row in zip(old.iter_rows(), new.iter_rows(), strict=True):
            for old_cell, new_cell in zip(old_row, new_row, strict=True):
                where = f"{name}!{old_cell.coordinate}"
                assert new_cell.data_type == old_cell.data_type, where
                assert _same_value(new_cell.value, old_cell.value), where
                assert new_cell.number_format == old_cell.number_format, where
                assert _style(new_cell) == _style(old_cell), where


def _style(cell) -> tuple[bytes, ...]:
    """The cell's font, border, fill and alignment as the XML openpyxl would write."""
    parts = (cell.font, cell.border, cell.fill, cell.alignment)
    return tuple(tostring(part.to_tree()) for part in parts)


def _links(sheet) -> dict:
    return {link.ref: link for link in sheet._hyperlinks} | {
        cell.coordinate: cell.hyperlink
        for row in sheet.iter_rows()
        for cell in row
        if cell.hyperlink is not None
    }


def _same_value(left, right) -> bool:
    if isinstance(left, float) and isinstance(right, float) and left != left:
        return right != right
    return type(left) is type(right) and left == right


def assert_same_workbook(tables: dict[str, pl.DataFrame], version: VersionInfo | None) -> None:
    expected, expected_names = workbook_reference.workbook_bytes(tables, version)
    actual, actual_names = workbook_bytes(tables, version)
    assert actual_names == expected_names
    assert_same_package(expected, actual)
    assert_same_cells(expected, actual)


def test_published_tables_give_the_same_workbook() -> None:
    assert_same_workbook(published_tables(), VERSION)


@pytest.mark.parametrize("sheet_rows", [None, 1, 7])
def test_hostile_frames_give_the_same_workbook(monkeypatch, sheet_rows) -> None:
    if sheet_rows is not None:
        monkeypatch.setenv("VETREPORT_WORKBOOK_SHEET_ROWS", str(sheet_rows))
    assert_same_workbook(hostile_tables(), None)


def test_text_taken_for_rich_text_is_written_as_xlsxwriter_writes_it() -> None:
    """The rows module writes what xlsxwriter writes, even this (the workbook never asks)."""
    tables = {"texts_only": pl.DataFrame({"text": [MALFORMED_RICH_TEXT, *TEXTS]})}
    workbook = xlsxwriter.Workbook(io.BytesIO(), {"constant_memory": True})
    sheet = workbook.add_worksheet()
    cell = workbook.add_format({"border": 1})
    xlsx_rows.append_rows(sheet, tables["texts_only"], 0, [xlsx_rows.ColumnCells(cell, False)])
    sheet.row_data_fh.flush()
    with open(sheet.row_data_filename, "rb") as rows:
        assert MALFORMED_RICH_TEXT.encode() in rows.read()
    workbook.close()


@pytest.mark.parametrize("where", ["first", "last"])
def test_school_text_taken_for_rich_text_cannot_break_the_workbook(where: str) -> None:
    """Such text is neutralised like a formula: the workbook opens, the text is readable."""
    texts = ["plain", MALFORMED_RICH_TEXT] if where == "last" else [MALFORMED_RICH_TEXT, "x"]
    tables = {"texts_only": pl.DataFrame({"text": texts})}
    expected, _ = workbook_reference.workbook_bytes(tables)
    actual, _ = workbook_bytes(tables)
    assert_same_package(expected, actual)
    sheet = openpyxl.load_workbook(io.BytesIO(actual))["texts_only"]
    values = [sheet.cell(row, 1).value for row in range(4, 6)]
    assert "'" + MALFORMED_RICH_TEXT in values


def test_rows_built_in_chunks_of_a_few_rows_are_the_same(monkeypatch) -> None:
    monkeypatch.setattr(xlsx_rows, "CHUNK_ROWS", 4)
    monkeypatch.setenv("VETREPORT_WORKBOOK_SHEET_ROWS", "40")
    tables = published_tables() | hostile_tables()
    assert_same_workbook(tables, VERSION)


def test_the_hostile_values_are_what_a_user_sees() -> None:
    """The comparison means something: the reference's cells are the awkward values."""
    workbook = openpyxl.load_workbook(io.BytesIO(workbook_bytes(hostile_tables())[0]))
    sheet = workbook["texts_only"]
    values = [sheet.cell(row, 1).value for row in range(4, 4 + len(TEXTS))]
    assert values[values.index("'=1+1")] == "'=1+1"
    assert "<&>\"'" in values and " leading" in values and "\u3000全角空格" in values
    assert "nul\x00 unit\x1f vt\x0b fs\x1c" not in values  # escaped as _x0000_ etc.
    longest = max((value for value in values if value), key=len)
    assert len(longest) == 32_767
    floats = workbook["floats_only"]
    errors = [floats.cell(row, 1).value for row in range(4, 8)]
    assert errors == [None, "=#NUM!", "=1/0", "=-1/0"]  # error formulas
    assert floats.cell(10, 1).value == 9.3
