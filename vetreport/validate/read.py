"""Readers for the files schools really send: bytes in, text grids out.

What belongs here: sniffing a file's type from its bytes, detecting a CSV's encoding,
reading CSV, XLSX and Parquet into all-text Polars frames, and finding the header row
under any title rows. Grids keep the file's geometry: column ``column_{i}`` is the i-th
column of the sheet (0-based, so column A is ``column_0`` even when calamine trims empty
leading columns) and grid row r is Excel row r + 1, so findings can point at real cells.
Hidden sheets are read but flagged, so the validator can ignore them. Nothing here knows
the meaning of a column; mapping headers to the catalogue and casting values is
``vetreport.validate.normalise``.

Every function raises ``ReadError`` with a rule id from schemas/rules.csv, so the caller
can turn any failure into a report line instead of a crash.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace

import polars as pl
from charset_normalizer import from_bytes

from schemas.catalogue import normalise_header
from vetreport.validate.untrusted import (
    DEFAULT_LIMITS,
    UntrustedFileError,
    check_csv_bytes,
    check_ole_bytes,
    check_xlsx_bytes,
)

MAX_UPLOAD_BYTES = DEFAULT_LIMITS.max_upload_bytes
# A CSV grid costs Polars far less per cell than calamine's dense sheet: allow more cells.
CSV_LIMITS = replace(DEFAULT_LIMITS, max_sheet_cells=30_000_000)
HEADER_SEARCH_ROWS = 15
SOURCE_ROW = "_source_row"


class ReadError(Exception):
    """A file could not be read; carries the rule id that explains why."""

    def __init__(self, rule_id: str, detail: str) -> None:
        super().__init__(detail)
        self.rule_id = rule_id
        self.detail = detail


@dataclass(frozen=True)
class RawSheet:
    """An all-text grid read from one CSV or one worksheet, before headers are found."""

    sheet_name: str | None
    grid: pl.DataFrame
    is_hidden: bool = False


@dataclass(frozen=True)
class HeadedTable:
    """A grid with its header row found: original headers, data rows and their row numbers.

    ``headers[i]`` is the header text of sheet column i ("" where the column is blank), and
    the frame's value columns keep the grid's names ``column_{i}``.
    """

    sheet_name: str | None
    headers: list[str]
    frame: pl.DataFrame
    header_row_number: int


def sniff_type(data: bytes) -> str:
    """Say what the bytes are: xlsx, xls, parquet, pdf, binary or text."""
    if data.startswith(b"PK\x03\x04"):
        return "xlsx"
    if data.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "xls"
    if data.startswith(b"PAR1"):
        return "parquet"
    if data.startswith(b"%PDF"):
        return "pdf"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "text"  # UTF-16 with a BOM: Excel's "Unicode text" export
    if b"\x00" in data[:65536]:
        return "binary"
    return "text"


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode CSV bytes, detecting UTF-8 (with or without BOM), GBK/GB18030 and UTF-16."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as error:
            raise ReadError("file.encoding", "the UTF-16 text is damaged") from error
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        # GB18030 is a superset of GBK and GB2312: the usual Excel "CSV" on Chinese Windows.
        return data.decode("gb18030"), "gb18030"
    except UnicodeDecodeError:
        pass
    best = from_bytes(data).best()
    if best is None or best.encoding is None:
        raise ReadError("file.encoding", "the text is neither UTF-8 nor GBK/GB18030")
    return str(best), best.encoding


def read_grids(data: bytes, extension: str) -> list[RawSheet]:
    """Read an upload's bytes into all-text grids: one for a CSV, one per worksheet.

    Untrusted bytes are checked first (vetreport.validate.untrusted: sizes counted while
    really decompressing, sheet extents, control bytes, encryption) so that no file can
    make a reader allocate without bound or abort the process.
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise ReadError("file.too_large", f"{len(data)} bytes; the limit is {MAX_UPLOAD_BYTES}")
    if not data or data.isspace():
        raise ReadError("file.empty", "the file has no content")
    kind = sniff_type(data)
    # .xlsm is read as a workbook so that its macros are named as the reason for refusal;
    # .xls (and a password-protected workbook, which is an OLE file too) is named as such.
    expected = {
        "csv": "text",
        "xlsx": "xlsx",
        "xlsm": "xlsx",
        "parquet": "parquet",
        "xls": "xlsx",
    }.get(extension.lower())
    try:
        if kind == "xls":
            check_ole_bytes(data)  # always raises: encrypted, or an old .xls
        if expected is None:
            raise ReadError("file.extension", f".{extension} files are not accepted")
        if kind != expected:
            raise ReadError(
                "file.type_mismatch", f"the name says .{extension} but the bytes are {kind}"
            )
        if kind == "text":
            check_csv_bytes(data, CSV_LIMITS)
            return [RawSheet(None, _read_csv_grid(data))]
        if kind == "xlsx":
            check_xlsx_bytes(data)
            return _read_xlsx_grids(data)
    except UntrustedFileError as error:
        raise ReadError(error.rule_id, error.detail) from error
    return [RawSheet(None, _read_parquet_grid(data))]


def _read_csv_grid(data: bytes) -> pl.DataFrame:
    text, encoding = decode_text(data)
    # A title row above the header has fewer fields than the header: size the grid by the
    # widest of the first lines, so Polars does not cut every row to the title's width.
    head_lines = text[:65536].splitlines()[: HEADER_SEARCH_ROWS * 4]
    delimiter = _delimiter(head_lines)
    width = max((len(row) for row in csv.reader(head_lines, delimiter=delimiter)), default=1)
    # UTF-8 bytes go to Polars as they are (without a BOM); other encodings are re-encoded.
    utf8 = data[3:] if encoding == "utf-8-sig" else data if encoding == "utf-8" else None
    try:
        grid = pl.read_csv(
            io.BytesIO(utf8 if utf8 is not None else text.encode("utf-8")),
            has_header=False,
            separator=delimiter,
            schema={f"column_{index}": pl.Utf8 for index in range(width)},
            truncate_ragged_lines=True,
        )
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as error:
        raise ReadError("file.unreadable", f"CSV could not be parsed: {error}") from error
    return grid


def _delimiter(head_lines: list[str]) -> str:
    """Comma, unless the first lines hold more tabs (Excel's "Unicode text") or semicolons."""
    head = "\n".join(head_lines)
    counts = {separator: head.count(separator) for separator in (",", "\t", ";")}
    best = max(counts, key=lambda separator: counts[separator])
    return best if counts[best] > counts[","] else ","


def _read_xlsx_grids(data: bytes) -> list[RawSheet]:
    import fastexcel

    try:
        reader = fastexcel.read_excel(data)
        sheets = []
        for name in reader.sheet_names:
            # skip_rows=0 keeps empty rows above the first cell, so grid row r is Excel row
            # r + 1; absolute_index gives the column of the sheet calamine started from.
            sheet = reader.load_sheet(name, header_row=None, skip_rows=0, dtypes="string")
            grid = sheet.to_polars()
            grid.columns = [f"column_{info.absolute_index}" for info in sheet.selected_columns]
            sheets.append(RawSheet(name, grid, is_hidden=sheet.visible != "visible"))
    except Exception as error:  # fastexcel raises its own hierarchy; all mean "unreadable"
        raise ReadError("file.unreadable", f"the workbook could not be read: {error}") from error
    return sheets


def _check_parquet(data: bytes) -> None:
    """Refuse a Parquet file whose footer promises more than the limits, before decoding it.

    Parquet pages are compressed like zip members: a small file can decode to gigabytes.
    The footer states every column chunk's uncompressed size and the row count; a file that
    lies about them fails when decoded, and no page decodes beyond what it states.
    """
    import pyarrow.parquet as parquet

    try:
        metadata = parquet.ParquetFile(io.BytesIO(data)).metadata
    except Exception as error:
        raise ReadError("file.unreadable", f"the Parquet file is damaged: {error}") from error
    limits = DEFAULT_LIMITS
    cells = metadata.num_rows * max(metadata.num_columns, 1)
    if metadata.num_columns > limits.max_sheet_columns or cells > CSV_LIMITS.max_sheet_cells:
        raise ReadError(
            "file.sheet_too_large",
            f"{metadata.num_rows:,} rows x {metadata.num_columns:,} columns; the limit is "
            f"{CSV_LIMITS.max_sheet_cells:,} cells and {limits.max_sheet_columns:,} columns",
        )
    unpacked = sum(
        metadata.row_group(group).total_byte_size for group in range(metadata.num_row_groups)
    )
    if unpacked > limits.max_uncompressed_bytes:
        raise ReadError(
            "file.too_large",
            f"the Parquet file unpacks to {unpacked:,} bytes; the limit is "
            f"{limits.max_uncompressed_bytes:,}",
        )


def _read_parquet_grid(data: bytes) -> pl.DataFrame:
    _check_parquet(data)
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except Exception as error:
        raise ReadError(
            "file.unreadable", f"the Parquet file could not be read: {error}"
        ) from error
    header = pl.DataFrame([pl.Series(name, [name], dtype=pl.Utf8) for name in frame.columns])
    body = frame.select(pl.all().cast(pl.Utf8))
    return pl.concat([header, body], how="vertical").rename(
        {name: f"column_{index}" for index, name in enumerate(frame.columns)}
    )


def _best_header_row(grid: pl.DataFrame, known_headers: set[str]) -> tuple[int, int]:
    """(index, hits) of the row among the first rows where the most cells name a column."""
    best_index, best_hits = -1, 0
    for index, row in enumerate(grid.head(HEADER_SEARCH_ROWS).rows()):
        hits = sum(
            1 for cell in row if cell is not None and normalise_header(cell) in known_headers
        )
        if hits > best_hits:
            best_index, best_hits = index, hits
    return best_index, best_hits


def header_score(raw: RawSheet, known_headers: set[str]) -> int:
    """How many cells of a sheet's best header row name a known column (0: none)."""
    return _best_header_row(raw.grid, known_headers)[1]


def column_position(name: str) -> int:
    """The 0-based sheet column of a grid column named ``column_{i}``."""
    return int(name.rsplit("_", 1)[1])


def find_header(raw: RawSheet, known_headers: set[str]) -> HeadedTable:
    """Find the row that best matches the known headers among the first rows of a grid.

    Title rows above the header and merged header cells are common in school files; the
    header is the row where the most cells name a known column. Header cells may hold line
    breaks, units in brackets and required-field stars (see ``normalise_header``).

    Blank columns (no visible character) are dropped first, and blank rows under the
    header last. A small grid (most school files) is searched in Python over its cells:
    a Polars query costs a fixed fraction of a millisecond however few cells it reads, and
    the search in Polars makes several a file. ``_find_header_in_polars`` searches a large
    grid; both give the same table (tests/unit/test_header_search.py). A grid with a column
    that is not text goes to Polars too, which refuses it as before.
    """
    grid = raw.grid
    if grid.width * grid.height > PYTHON_SEARCH_CELLS or any(
        dtype != pl.String for dtype in grid.dtypes
    ):
        return _find_header_in_polars(raw, known_headers)
    rows = grid.rows()
    kept = [
        index for index in range(grid.width) if any(has_visible_text(row[index]) for row in rows)
    ]
    if not kept:  # no column, or no visible character in any: as Polars, no rows either
        raise ReadError("file.empty", "the sheet has no rows")
    names = grid.columns
    if len(kept) < grid.width:
        grid = grid[:, [names[index] for index in kept]]
        rows = [tuple(row[index] for index in kept) for row in rows]
    best_index, best_hits = _best_header_row_of(rows, known_headers)
    if best_hits == 0:
        raise ReadError("structure.header_not_found", "no row names any column of the template")
    headers = _headers_of(grid.columns, rows[best_index])
    body = grid.slice(best_index + 1)
    # Row numbers as the school sees them in Excel: 1-based, counting the rows above.
    first_row_number = best_index + 2
    body = body.hstack(
        [
            pl.Series(
                SOURCE_ROW,
                range(first_row_number, first_row_number + body.height),
                dtype=pl.Int64,
            )
        ]
    )
    keep_rows = [
        place
        for place, row in enumerate(rows[best_index + 1 :])
        if any(has_visible_text(cell) for cell in row)
    ]
    if len(keep_rows) < body.height:
        body = body[keep_rows] if keep_rows else body.clear()
    return HeadedTable(raw.sheet_name, headers, body, best_index + 1)


# A grid of up to this many cells is searched in Python (see ``find_header``).
PYTHON_SEARCH_CELLS = 20_000
# What Polars' (Rust regex) ``\s`` matches: the Unicode White_Space characters. Python's
# ``str.isspace`` and ``re``'s ``\s`` also take U+001C..U+001F, which Polars does not.
WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def has_visible_text(cell: str | None) -> bool:
    r"""Whether a cell holds a character Polars' ``\S`` matches (see ``WHITE_SPACE``)."""
    return cell is not None and cell.strip(WHITE_SPACE) != ""


def _best_header_row_of(rows: list[tuple[str | None, ...]], known: set[str]) -> tuple[int, int]:
    """``_best_header_row`` over rows already read out of the grid."""
    best_index, best_hits = -1, 0
    for index, row in enumerate(rows[:HEADER_SEARCH_ROWS]):
        hits = sum(1 for cell in row if cell is not None and normalise_header(cell) in known)
        if hits > best_hits:
            best_index, best_hits = index, hits
    return best_index, best_hits


def _headers_of(column_names: list[str], header_row: tuple[object, ...]) -> list[str]:
    """The header text of each sheet column ("" where blank or dropped), by position."""
    positions = [column_position(name) for name in column_names]
    headers = [""] * (max(positions) + 1)
    for position, cell in zip(positions, header_row, strict=True):
        headers[position] = "" if cell is None else str(cell)
    return headers


def _find_header_in_polars(raw: RawSheet, known_headers: set[str]) -> HeadedTable:
    """``find_header`` of a large grid, with Polars queries over its columns and rows."""
    grid = _drop_blank_columns(raw.grid)
    if grid.height == 0:
        raise ReadError("file.empty", "the sheet has no rows")
    best_index, best_hits = _best_header_row(grid, known_headers)
    if best_hits == 0:
        raise ReadError("structure.header_not_found", "no row names any column of the template")
    headers = _headers_of(grid.columns, grid.row(best_index))
    body = grid.slice(best_index + 1)
    # Row numbers as the school sees them in Excel: 1-based, counting the rows above.
    body = body.with_columns(
        (pl.int_range(pl.len(), dtype=pl.Int64) + best_index + 2).alias(SOURCE_ROW)
    )
    body = _drop_blank_rows(body)
    return HeadedTable(raw.sheet_name, headers, body, best_index + 1)


def _drop_blank_columns(grid: pl.DataFrame) -> pl.DataFrame:
    """Drop columns with no visible character (blank trailing columns, spacer columns)."""
    if grid.width == 0:
        return grid
    has_text = grid.select(
        pl.col(name).str.contains(r"\S").fill_null(False).any().alias(name) for name in grid.columns
    ).row(0)
    return grid.select(name for name, keep in zip(grid.columns, has_text, strict=True) if keep)


def _drop_blank_rows(frame: pl.DataFrame) -> pl.DataFrame:
    value_columns = [name for name in frame.columns if name != SOURCE_ROW]
    if not value_columns:
        return frame.clear()
    # one regex over the row's cells joined, not one per cell
    joined = pl.concat_str([pl.col(name).fill_null("") for name in value_columns])
    return frame.filter(joined.str.contains(r"\S"))
