"""The header search in Python (small grids) finds what the Polars search finds.

``find_header`` searches a small grid's cells in Python and a large one with Polars
queries; a school must not be told anything different because its file was small. Every
sheet of the messy-file corpus and of the demo, and grids made to hit the edges (blank
columns and rows, whitespace Python and Polars disagree about, title rows, nothing under
the header), go through both and must give the same table or the same refusal. The
columns of one value that batching appends to each file's rows without a Polars query
(``with_constants``) must be those ``with_columns`` gives.
"""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl
import pytest

import vetreport.validate.read as read
from schemas.catalogue import header_lookup, load_datasets
from vetreport.bucket.keys import parse_upload_key
from vetreport.demo.generator import build_demo_uploads
from vetreport.demo.national import write_national_bucket
from vetreport.validate.normalise import with_constants
from vetreport.validate.read import (
    WHITE_SPACE,
    HeadedTable,
    RawSheet,
    ReadError,
    find_header,
    has_visible_text,
    read_grids,
)

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def _outcome(search, raw: RawSheet, known: set[str]) -> tuple[object, ...]:
    """What a search gives, in a form that compares: the table, or the refusal's rule."""
    try:
        table: HeadedTable = search(raw, known)
    except ReadError as error:
        return ("refused", error.rule_id, error.detail)
    return (
        table.sheet_name,
        table.headers,
        table.header_row_number,
        table.frame.schema,
        table.frame.rows(),
    )


def _in_python(raw: RawSheet, known: set[str]) -> HeadedTable:
    """``find_header`` forced onto the Python search, whatever the grid's size."""
    before = read.PYTHON_SEARCH_CELLS
    read.PYTHON_SEARCH_CELLS = 10**12
    try:
        return find_header(raw, known)
    finally:
        read.PYTHON_SEARCH_CELLS = before


def _corpus_sheets() -> list[tuple[str, RawSheet, set[str]]]:
    with (CORPUS / "expected.csv").open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    sheets = []
    for row in rows:
        path = CORPUS / row["file"]
        try:
            grids = read_grids(path.read_bytes(), path.suffix.lstrip("."))
        except ReadError:
            continue
        dataset_ids = [row["dataset"]] if row["dataset"] in load_datasets() else []
        dataset_ids = dataset_ids or list(load_datasets())  # a workbook: try every dataset
        for grid in grids:
            for dataset_id in dataset_ids:
                known = set(header_lookup(dataset_id, int(row["year"])))
                sheets.append((f"{row['file']}:{grid.sheet_name}:{dataset_id}", grid, known))
    return sheets


def _demo_sheets(national: Path) -> list[tuple[str, RawSheet, set[str]]]:
    """The demo's sheets, and a small national bucket's (GBK, title rows, bad files)."""
    write_national_bucket(national, schools=20, seed=7, years=(2023,))
    uploads = build_demo_uploads(years=(2023,))
    for path in sorted((national / "uploads").rglob("*.*")):
        uploads[path.relative_to(national).as_posix()] = path.read_bytes()
    sheets = []
    for key, data in uploads.items():
        upload = parse_upload_key(key)
        try:
            grids = read_grids(data, upload.extension)
        except ReadError:
            continue
        dataset_ids = [upload.stem] if upload.stem in load_datasets() else list(load_datasets())
        for grid in grids:
            for dataset_id in dataset_ids:
                sheets.append((key, grid, set(header_lookup(dataset_id, upload.year))))
    return sheets


def test_every_corpus_and_demo_sheet_gets_the_same_table_from_both_searches(
    tmp_path: Path,
) -> None:
    sheets = _corpus_sheets() + _demo_sheets(tmp_path)
    assert len(sheets) > 400
    differing = [
        name
        for name, raw, known in sheets
        if _outcome(_in_python, raw, known) != _outcome(read._find_header_in_polars, raw, known)
    ]
    assert differing == []
    outcomes = [_outcome(_in_python, raw, known) for _, raw, known in sheets]
    refusals = {outcome[1] for outcome in outcomes if outcome[0] == "refused"}
    assert {"structure.header_not_found"} <= refusals  # the edges were reached
    assert any(outcome[2] > 1 for outcome in outcomes if outcome[0] != "refused")  # title rows


KNOWN = {"学校代码", "专业代码", "毕业生数"}


def _grid(rows: list[list[str | None]]) -> RawSheet:
    width = max(len(row) for row in rows)
    columns = {
        f"column_{index}": [row[index] if index < len(row) else None for row in rows]
        for index in range(width)
    }
    return RawSheet(None, pl.DataFrame(columns, schema={name: pl.String for name in columns}))


EDGE_GRIDS = {
    "plain": [["学校代码", "专业代码", "毕业生数"], ["1", "A", "3"], ["2", "B", "4"]],
    "title row and a blank spacer column": [
        ["2023年毕业生", None, None, None],
        ["学校代码", " ", "专业代码", "毕业生数"],
        ["1", None, "A", "3"],
    ],
    "blank rows between and after": [
        ["学校代码", "专业代码", "毕业生数"],
        ["1", "A", "3"],
        [None, "\u3000", "\xa0"],
        ["2", "B", "4"],
        ["", " \t", None],
    ],
    # Python's str.isspace says these are blank, Polars' \S says they are not: Polars wins.
    "information separators are visible": [
        ["学校代码", "专业代码", "毕业生数", "\x1c"],
        ["1", "A", "3", None],
        ["\x1d", None, "\x1f", None],
    ],
    "every Unicode white space is blank": [
        ["学校代码", "专业代码", "毕业生数", WHITE_SPACE],
        ["1", "A", "3", WHITE_SPACE[::-1]],
        [WHITE_SPACE, None, "", None],
    ],
    "header only": [["学校代码", "专业代码", "毕业生数"], [None, " ", None]],
    "no header": [["a", "b"], ["1", "2"]],
    "blank everywhere": [[None, " "], ["\u3000", None]],
    "header in the last searched row": [*([["说明"]] * 14), ["学校代码", "毕业生数"], ["1", "2"]],
    "header below the searched rows": [*([["说明"]] * 15), ["学校代码", "毕业生数"], ["1", "2"]],
}


@pytest.mark.parametrize("name", list(EDGE_GRIDS))
def test_edge_grids_get_the_same_table_from_both_searches(name: str) -> None:
    raw = _grid(EDGE_GRIDS[name])
    assert _outcome(_in_python, raw, KNOWN) == _outcome(read._find_header_in_polars, raw, KNOWN)


def test_no_rows_and_no_columns_are_refused_alike() -> None:
    for grid in (pl.DataFrame(), pl.DataFrame(schema={"column_0": pl.String})):
        raw = RawSheet(None, grid)
        python, polars = _outcome(_in_python, raw, KNOWN), _outcome(find_header, raw, KNOWN)
        assert python == polars == ("refused", "file.empty", "the sheet has no rows")


def test_visible_text_is_what_polars_calls_non_blank() -> None:
    characters = [chr(point) for point in range(0x3100)] + ["\U0002a6a5", "a b"]
    by_polars = pl.Series(characters).str.contains(r"\S").to_list()
    assert [has_visible_text(text) for text in characters] == by_polars
    assert not has_visible_text(None) and not has_visible_text("")


def test_small_grids_are_searched_in_python_and_large_ones_in_polars(monkeypatch) -> None:
    def refuse(raw: RawSheet, known: set[str]) -> HeadedTable:
        raise AssertionError("searched in Polars")

    small = _grid(EDGE_GRIDS["plain"])
    monkeypatch.setattr(read, "_find_header_in_polars", refuse)
    assert find_header(small, KNOWN).frame.height == 2
    monkeypatch.setattr(read, "PYTHON_SEARCH_CELLS", 8)
    with pytest.raises(AssertionError, match="searched in Polars"):
        find_header(small, KNOWN)
    not_text = RawSheet(None, small.grid.with_columns(pl.lit(None).alias("column_3")))
    monkeypatch.setattr(read, "PYTHON_SEARCH_CELLS", 10**6)
    with pytest.raises(AssertionError, match="searched in Polars"):
        find_header(not_text, KNOWN)


@pytest.mark.parametrize(
    "frame",
    [
        pl.DataFrame({"a": ["x", None, "z"], "b": [1, 2, 3]}),
        pl.DataFrame(schema={"a": pl.String, "b": pl.Int64}),
        pl.DataFrame({"a": ["x"], "_upload": [9]}),  # a name it has: replaced in place
        pl.DataFrame(),
    ],
)
def test_constant_columns_are_what_with_columns_gives(frame: pl.DataFrame) -> None:
    columns = {"_upload": (3, pl.Int32), "dataset": (None, pl.Utf8), "year": (2023, pl.Int64)}
    expected = frame.with_columns(
        pl.lit(value, dtype=dtype).alias(name) for name, (value, dtype) in columns.items()
    )
    got = with_constants(frame, columns)
    assert got.schema == expected.schema
    assert got.rows() == expected.rows()
