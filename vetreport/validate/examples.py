"""The blank template's example values, and how to recognise an example row left in an upload.

What belongs here: the value the template writes into each column's example row (derived
from the column's spec: its first allowed value, 是 for yes-no, 100 clamped to the range, a
string matching the pattern, or 示例 + the header), and a Polars expression that is true on
the rows of a typed frame that are that example row, untouched.

The template (``vetreport.school.blank_template``) writes these values; the validator uses
the expression to report such a row once, as the template's example, instead of as a list of
field errors. Both read the same function, so they cannot drift apart.
"""

from __future__ import annotations

import re

import polars as pl

from schemas.catalogue import ColumnSpec, DatasetSpec

EXAMPLE_NUMBER = 100
BOOLEAN_CHOICES = ("是", "否")
# A school types its own code into the example row first; the row is still the example.
COLUMNS_A_SCHOOL_FILLS_FIRST = ("school_code",)

_PATTERN_TOKEN = re.compile(
    r"\[(?P<members>(?:\\.|[^\]\\])+)\]|\\(?P<escape>[dw\W\S])|(?P<literal>[A-Za-z0-9_\-])"
    r"|(?P<anchor>[\^$])"
)
_PATTERN_COUNT = re.compile(r"\{(?P<low>\d+)(?:,(?P<high>\d*))?\}|(?P<symbol>[+*?])")


def sample_from_pattern(pattern: str) -> str | None:
    """A short string matching a simple regular expression, or None if it is not simple.

    Simple: anchors, character classes, digit and word escapes, literals, and counts
    {m}, {m,n}, +, * and ?.
    Classes that allow digits give 1, 2, 3 …, so a school code comes out as 123456.
    """
    out: list[str] = []
    position = 0
    while position < len(pattern):
        token = _PATTERN_TOKEN.match(pattern, position)
        if token is None:
            return None
        position = token.end()
        if token["anchor"]:
            continue
        count = _PATTERN_COUNT.match(pattern, position)
        repeat = 1
        if count is not None:
            position = count.end()
            symbol = count["symbol"]
            repeat = (0 if symbol in "*?" else 1) if symbol else int(count["low"])
        for index in range(repeat):
            out.append(_sample_token(token, index))
    return "".join(out)


def _sample_token(token: re.Match[str], index: int) -> str:
    if token["literal"]:
        return token["literal"]
    members = token["members"] or ("0-9" if token["escape"] == "d" else "A-Za-z0-9")
    if "0-9" in members or "\\d" in members:
        return str((index + 1) % 10)
    first = re.match(r"(\\?.)(?:-(.))?", members)
    if first is None:
        return "A"
    low = first.group(1)[-1]
    high = first.group(2) or low
    return chr(ord(low) + index % (ord(high) - ord(low) + 1))


def is_id_column(name: str) -> bool:
    """Columns that hold pseudonymous ids: staff_id, graduate_id and any other ``*_id``."""
    return name.endswith("_id")


def number_text(value: float) -> str:
    """A number as a person writes it: 100, not 100.0."""
    return str(int(value)) if float(value).is_integer() else str(value)


def example_value(column: ColumnSpec) -> str:
    """A value a school could type into the column, as text."""
    if column.allowed_values:
        return column.allowed_values[0]
    if column.data_type == "boolean":
        return BOOLEAN_CHOICES[0]
    if column.data_type in ("integer", "number"):
        value = float(EXAMPLE_NUMBER)
        if column.min_value is not None:
            value = max(value, column.min_value)
        if column.max_value is not None:
            value = min(value, column.max_value)
        return number_text(value)
    if column.pattern:
        sample = sample_from_pattern(column.pattern)
        if sample is not None and re.search(column.pattern, sample):
            return sample
    if is_id_column(column.column_name) or column.pattern:
        return "EX0001"
    return f"示例{column.header_zh}"


def _typed(column: ColumnSpec, text: str) -> object:
    if column.data_type == "integer":
        return int(float(text))
    if column.data_type == "number":
        return float(text)
    if column.data_type == "boolean":
        return text == BOOLEAN_CHOICES[0]
    return text


def is_example_row(dataset: DatasetSpec) -> pl.Expr:
    """True on the rows of a typed frame that are the template's example row, untouched.

    Every column holds its example value, except the school code (which a school often
    types into every row first) and optional columns, which may be empty (the template
    leaves an optional column's example blank when it would break a cross-field rule).
    At least one column must hold its example value, so a blank row is never an example.
    """
    matches: list[pl.Expr] = []
    equal: list[pl.Expr] = []
    for column in dataset.columns:
        if column.column_name in COLUMNS_A_SCHOOL_FILLS_FIRST:
            continue
        value = pl.lit(_typed(column, example_value(column)), dtype=column.polars_type)
        same = (pl.col(column.column_name) == value).fill_null(False)
        equal.append(same)
        matches.append(same if column.is_required else same | pl.col(column.column_name).is_null())
    if not equal:
        return pl.lit(False)
    return pl.all_horizontal(matches) & pl.any_horizontal(equal)
