"""A worksheet's data rows as the XML xlsxwriter writes for them, built a column at a time.

What belongs here: the ``<row>``/``<c>`` elements of a table's rows, made with Polars
expressions over whole columns and appended to an xlsxwriter worksheet (constant_memory
mode) in its row file, in place of one ``write_*`` call per cell (about 9 µs of CPU each:
three million cells were most of publishing's time). Everything else of the workbook —
its package, styles, title and header rows, widths, merges, panes — stays xlsxwriter's.

The XML is the XML xlsxwriter 3.3.1 writes for the same calls (``write_number`` for a
number column, ``write`` for the others, ``write_blank`` for a null; options
``constant_memory`` and ``nan_inf_to_errors``), case by case from its source
(``Worksheet._write_cell``, ``XMLwriter._xml_inline_string``, ``_escape_control_characters``,
``_escape_data``, ``utility._preserve_whitespace``, ``_write_string``'s 32,767-unit cut):

- a number: ``<c r="B4" s="5"><v>{value:.16G}</v></c>``; NaN and ±inf as the error
  formulas ``#NUM!``, ``1/0`` and ``-1/0``; a boolean ``t="b"`` with 1 or 0;
- a string: an inline string, control characters as ``_xHHHH_`` (and a literal ``_xHHHH_``
  as ``_x005F_xHHHH_``), ``& < >`` escaped, ``xml:space="preserve"`` when it begins or
  ends with whitespace, cut at 32,767 UTF-16 units; one that begins with ``<r>`` and ends
  with ``</r>`` goes in as xlsxwriter's rich text, unescaped, as xlsxwriter does;
- a null or an empty string: a blank cell with its format.

It uses xlsxwriter's private members (``Worksheet._write_single_row``, ``row_data_fh``,
``_check_dimensions``, ``previous_row``, ``Format._get_xf_index`` and the utility
``_utf16_len``/``_utf16_truncate``), pinned by uv.lock:
``tests/unit/test_workbook_rows.py`` compares the result with the per-cell writer's
(``tests/workbook_reference.py``) byte for byte, so an xlsxwriter that changes them fails it.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from itertools import repeat

import polars as pl
from xlsxwriter.format import Format
from xlsxwriter.utility import _utf16_len, _utf16_truncate, xl_col_to_name
from xlsxwriter.worksheet import Worksheet

# Rows turned into XML at once: bounds the memory of a sheet's XML whatever its length.
CHUNK_ROWS = 5_000
_FAST_INTEGERS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)
_FAST_FLOATS = (pl.Float32, pl.Float64)
# Integers a float holds exactly, and the floats whose "%.16G" is their integer's digits.
_EXACT_INTEGER = 2**53
_FIXED_NOTATION_LIMIT = 1e16
_ESCAPED_ESCAPE = r"(_x[0-9a-fA-F]{4}_)"
_CONTROL_CHARACTERS = [chr(code) for code in (*range(0x00, 0x09), *range(0x0B, 0x20))]
_NON_CHARACTERS = ["\ufffe", "\uffff"]
_XML_DATA_ESCAPES = (["&", "<", ">"], ["&amp;", "&lt;", "&gt;"])
_END_STRING = pl.lit("</t></is></c>")


@dataclass(frozen=True)
class ColumnCells:
    """How one column's cells are written.

    ``formats``: the cells' format, or one per row; ``numbers``: the column was written
    with ``write_number`` (else with ``write``, which writes by each value's type).
    """

    formats: Format | list[Format]
    numbers: bool


def append_rows(
    sheet: Worksheet, frame: pl.DataFrame, first_row: int, columns: list[ColumnCells]
) -> None:
    """Append the frame's rows at ``first_row`` (0-based), after the rows written so far.

    The same XML, styles and dimensions as writing each cell with xlsxwriter, and the same
    order of style indices: a format's index is given when a row using it is written to
    the row file, which xlsxwriter does for a sheet's last row only when the workbook is
    closed (after the sheets before it). So all rows but the last are built here, and the
    last is written cell by cell, as before.
    """
    if not sheet.constant_memory:
        raise ValueError("rows are appended to a constant_memory worksheet's row file")
    if len(columns) != frame.width:
        raise ValueError(f"{frame.width} columns but {len(columns)} column formats")
    if frame.height == 0 or frame.width == 0:
        return
    body = frame.head(frame.height - 1)
    if body.height:
        # What the first write to first_row would do: the row before it goes to the row
        # file (and its cells' formats get their style indices first).
        sheet._write_single_row(first_row)
        _assign_style_indices(columns, body.height)
        letters = [xl_col_to_name(index) for index in range(frame.width)]
        for offset in range(0, body.height, CHUNK_ROWS):
            chunk = body.slice(offset, CHUNK_ROWS)
            xml = _rows_xml(chunk, first_row + offset, offset, columns, letters)
            sheet.row_data_fh.flush()  # the text file's buffer, before its bytes
            sheet.row_data_fh.buffer.write(xml)
        sheet._check_dimensions(first_row, 0)
        sheet._check_dimensions(first_row + body.height - 1, frame.width - 1)
        sheet.previous_row = first_row + body.height - 1
    _write_row_by_cells(sheet, first_row + body.height, frame.row(-1), columns)


def _write_row_by_cells(
    sheet: Worksheet, row: int, values: tuple, columns: list[ColumnCells]
) -> None:
    """One row through xlsxwriter's own calls (as every row was before)."""
    for index, (value, column) in enumerate(zip(values, columns, strict=True)):
        formats = column.formats
        cell_format = formats[-1] if isinstance(formats, list) else formats
        if value is None:
            sheet.write_blank(row, index, None, cell_format)
        elif column.numbers:
            sheet.write_number(row, index, value, cell_format)
        else:
            sheet.write(row, index, value, cell_format)


def _assign_style_indices(columns: list[ColumnCells], height: int) -> None:
    """Give each format its style index in the order of the cells that first use it."""
    for column in columns:
        first = column.formats[0] if isinstance(column.formats, list) else column.formats
        first._get_xf_index()
    per_row = [column.formats for column in columns if isinstance(column.formats, list)]
    if per_row:
        for row in range(1, height):
            for formats in per_row:
                formats[row]._get_xf_index()


def _rows_xml(
    chunk: pl.DataFrame,
    first_row: int,
    offset: int,
    columns: list[ColumnCells],
    letters: list[str],
) -> bytes:
    """The ``<row>`` elements of a chunk of rows, as UTF-8."""
    row_number = pl.int_range(first_row + 1, first_row + 1 + chunk.height, eager=True)
    helpers: dict[str, pl.Series] = {"_row": row_number.cast(pl.Utf8)}
    pieces: list[pl.Expr] = [pl.lit('<row r="'), pl.col("_row"), pl.lit('">')]
    for index, (name, column) in enumerate(zip(chunk.columns, columns, strict=True)):
        if isinstance(column.formats, list):
            formats = column.formats[offset : offset + chunk.height]
            styles = [cell_format._get_xf_index() for cell_format in formats]
            helpers[f"_s{index}"] = pl.Series(styles, dtype=pl.Int64).cast(pl.Utf8)
            pieces += [pl.lit(f'<c r="{letters[index]}'), pl.col("_row"), pl.lit('" s="')]
            pieces += [pl.col(f"_s{index}"), pl.lit('"')]
        else:
            style = column.formats._get_xf_index()
            pieces += [pl.lit(f'<c r="{letters[index]}'), pl.col("_row"), pl.lit(f'" s="{style}"')]
        pieces.append(_cell_rest(chunk.get_column(name), column.numbers, index, helpers))
    pieces.append(pl.lit("</row>"))
    rows = pl.concat_str(pieces).str.join("").cast(pl.Binary)
    return pl.DataFrame(helpers).select(rows).item()


# What follows ``<c r=".." s=".."`` in each kind of cell.
_BLANK = "/>"
_NUMBER = ("><v>", "</v></c>")
_BOOLEAN = (' t="b"><v>', "</v></c>")
_ERRORS = {
    "nan": ' t="e"><f>#NUM!</f><v>#NUM!</v></c>',
    "inf": ' t="e"><f>1/0</f><v>#DIV/0!</v></c>',
    "-inf": ' t="e"><f>-1/0</f><v>#DIV/0!</v></c>',
}
_INLINE = ' t="inlineStr"><is>'
_PRESERVE = ' xml:space="preserve"'


def _cell_rest(
    values: pl.Series, numbers: bool, index: int, helpers: dict[str, pl.Series]
) -> pl.Expr:
    """The rest of each value's ``<c>`` element, after its ``<c r=".." s=".."``."""
    dtype = values.dtype
    if dtype == pl.Null or values.null_count() == values.len():
        return pl.lit(_BLANK)
    if dtype == pl.Utf8 and numbers:
        raise TypeError("write_number() takes numbers, not text")
    if dtype == pl.Utf8:
        return _string_rest(values, index, helpers)
    if dtype == pl.Boolean and not numbers:
        helpers[f"_v{index}"] = values
        value = pl.col(f"_v{index}")
        flag = pl.when(value).then(pl.lit(f"{_BOOLEAN[0]}1{_BOOLEAN[1]}"))
        return (
            flag.when(value.is_null())
            .then(pl.lit(_BLANK))
            .otherwise(pl.lit(f"{_BOOLEAN[0]}0{_BOOLEAN[1]}"))
        )
    if dtype.is_numeric() or dtype == pl.Boolean:
        return _number_rest(values, index, helpers)
    raise TypeError(f"no cells for a column of {dtype}")


def _number_rest(values: pl.Series, index: int, helpers: dict[str, pl.Series]) -> pl.Expr:
    helpers[f"_n{index}"] = _number_texts(values)
    number = pl.concat_str(pl.lit(_NUMBER[0]), pl.col(f"_n{index}"), pl.lit(_NUMBER[1]))
    if values.dtype in _FAST_FLOATS and not values.is_finite().fill_null(True).all():
        helpers[f"_v{index}"] = values
        value = pl.col(f"_v{index}")
        return (
            pl.when(value.is_nan())
            .then(pl.lit(_ERRORS["nan"]))
            .when(value == float("inf"))
            .then(pl.lit(_ERRORS["inf"]))
            .when(value == float("-inf"))
            .then(pl.lit(_ERRORS["-inf"]))
            .when(value.is_null())
            .then(pl.lit(_BLANK))
            .otherwise(number)
        )
    if values.null_count():
        return pl.when(pl.col(f"_n{index}").is_null()).then(pl.lit(_BLANK)).otherwise(number)
    return number


def _number_texts(values: pl.Series) -> pl.Series:
    """Each value as xlsxwriter writes a number (``f"{value:.16G}"``), null for none.

    Null, NaN and infinite values have no text (their cells are blanks and error formulas).
    Integers a float holds exactly and whole floats below 10^16 are their integer's digits,
    made by Polars; every other value (fractions, zeros for the sign of -0.0, huge numbers,
    decimals) is formatted by Python itself, once per distinct value.
    """
    dtype = values.dtype
    frame = pl.DataFrame({"value": values})
    value = pl.col("value")
    if dtype in _FAST_INTEGERS:
        fast = value.is_between(-_EXACT_INTEGER, _EXACT_INTEGER)
        digits = value.cast(pl.Utf8)
    elif dtype in _FAST_FLOATS:
        whole = value.is_finite() & (value.floor() == value) & (value != 0)
        fast = whole & (value.abs() < _FIXED_NOTATION_LIMIT)
        digits = pl.when(fast).then(value).cast(pl.Int64).cast(pl.Utf8)
    else:
        fast = pl.lit(False)
        digits = pl.lit(None, pl.Utf8)
    formatted = value.is_not_null() & ~fast.fill_null(False)
    if dtype in _FAST_FLOATS:
        formatted = formatted & value.is_finite()
    frame = frame.with_columns(fast.fill_null(False).alias("fast"), formatted.alias("formatted"))
    others = frame.filter(pl.col("formatted")).get_column("value")
    # Zeros are kept apart: hashing does not tell -0.0 from 0.0.
    zeros = pl.lit(False) if dtype not in _FAST_FLOATS else (value == 0)
    distinct = others.filter(others != 0) if dtype in _FAST_FLOATS else others
    distinct = distinct.unique()
    # format(number, ".16G") is what xlsxwriter's f"{number:.16G}" calls, and faster mapped.
    texts = pl.Series(list(map(format, distinct.to_list(), repeat(".16G"))), dtype=pl.Utf8)
    by_python = value.replace_strict(distinct, texts, default=None, return_dtype=pl.Utf8)
    signed_zero = pl.when((1.0 / value) < 0).then(pl.lit("-0")).otherwise(pl.lit("0"))
    return frame.select(
        pl.when(pl.col("fast"))
        .then(digits)
        .when(pl.col("formatted") & zeros)
        .then(signed_zero)
        .when(pl.col("formatted"))
        .then(by_python)
        .otherwise(pl.lit(None, pl.Utf8))
        .alias(values.name)
    ).to_series()


def _string_rest(values: pl.Series, index: int, helpers: dict[str, pl.Series]) -> pl.Expr:
    strings = _escape_control_characters(_cut_to_excel_limit(values))
    helpers[f"_t{index}"] = strings
    text = pl.col(f"_t{index}")
    whitespace = _whitespace()
    preserve = text.str.head(1).is_in(whitespace) | text.str.tail(1).is_in(whitespace)
    if strings.str.contains_any(_XML_DATA_ESCAPES[0]).any():
        escaped = text.str.replace_many(*_XML_DATA_ESCAPES)
    else:
        escaped = text
    attribute = pl.when(preserve).then(pl.lit(_PRESERVE)).otherwise(pl.lit(""))
    plain = pl.concat_str(pl.lit(_INLINE + "<t"), attribute, pl.lit(">"), escaped, _END_STRING)
    blank = (strings.is_null() | (strings == "")).any()
    rich = (strings.str.starts_with("<r>") & strings.str.ends_with("</r>")).fill_null(False)
    if not blank and not rich.any():
        return plain
    cell = pl.when(text.is_null() | (text == "")).then(pl.lit(_BLANK))
    if rich.any():
        is_rich = text.str.starts_with("<r>") & text.str.ends_with("</r>")
        cell = cell.when(is_rich).then(pl.concat_str(pl.lit(_INLINE), text, pl.lit("</is></c>")))
    return cell.otherwise(plain)


def _cut_to_excel_limit(values: pl.Series, limit: int = 32_767) -> pl.Series:
    """Strings over Excel's 32,767 UTF-16 units cut as ``Worksheet._write_string`` cuts."""
    long = (values.str.len_chars() > limit // 2).fill_null(False)
    if not long.any():
        return values
    positions = long.arg_true()
    cut = [
        _utf16_truncate(text, limit) if _utf16_len(text) > limit else text
        for text in values.gather(positions).to_list()
    ]
    return values.scatter(positions, pl.Series(cut, dtype=pl.Utf8))


def _escape_control_characters(values: pl.Series) -> pl.Series:
    """The strings as ``XMLwriter._escape_control_characters`` escapes them.

    A literal ``_xHHHH_`` gets ``_x005F`` in front, then control characters (but tab and
    newline) and U+FFFE/U+FFFF become ``_xHHHH_``.
    """
    if values.str.contains(_ESCAPED_ESCAPE).any():
        values = values.str.replace_all(_ESCAPED_ESCAPE, "_x005F${1}")
    specials = _CONTROL_CHARACTERS + _NON_CHARACTERS
    if values.str.contains_any(specials).any():
        values = values.str.replace_many(
            specials, [f"_x{ord(character):04X}_" for character in specials]
        )
    return values


@functools.cache
def _whitespace() -> list[str]:
    r"""The characters ``str.isspace`` calls whitespace.

    They are what ``\s`` matches in a Python str pattern, which ``_preserve_whitespace``
    tests a string's two ends with (Rust's ``\s`` is not quite the same).
    """
    return [chr(code) for code in range(sys.maxunicode + 1) if chr(code).isspace()]
