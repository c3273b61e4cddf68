"""Parquet and CSV bytes of one table, and the neutralising of formula-like text.

What belongs here: the two per-table file formats. CSV is UTF-8 with a BOM so Excel shows
Chinese, and text cells that begin with ``= + - @`` get an apostrophe in front so a
spreadsheet shows them instead of running them (the workbook writer uses the same rule).
"""

from __future__ import annotations

import io

import polars as pl

FORMULA_PREFIXES = ("=", "+", "-", "@")
_FORMULA_PATTERN = "^[" + "".join("\\" + prefix for prefix in FORMULA_PREFIXES) + "]"


def neutralise_formulas(frame: pl.DataFrame, rich_text: bool = False) -> pl.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula with an apostrophe.

    With ``rich_text``, also text that begins with ``<r>`` and ends with ``</r>``: the
    workbook's writer (xlsxwriter) would put it into the sheet's XML as rich-text markup,
    unescaped, so a school's ``<r>a & b</r>`` made a workbook that Excel has to repair and
    openpyxl cannot open.
    """
    text_columns = [name for name, dtype in frame.schema.items() if dtype == pl.Utf8]

    def is_risky(name: str) -> pl.Expr:
        text = pl.col(name)
        formula = text.str.contains(_FORMULA_PATTERN)
        if not rich_text:
            return formula
        return formula | (text.str.starts_with("<r>") & text.str.ends_with("</r>"))

    return frame.with_columns(
        pl.when(is_risky(name)).then(pl.lit("'") + pl.col(name)).otherwise(pl.col(name)).alias(name)
        for name in text_columns
    )


def csv_bytes(frame: pl.DataFrame) -> bytes:
    """CSV as Excel opens Chinese correctly: UTF-8 with BOM, formulas neutralised."""
    buffer = io.BytesIO()
    neutralise_formulas(frame).write_csv(buffer, include_bom=True)
    return buffer.getvalue()


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    """Parquet, zstd-compressed, with statistics."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=True)
    return buffer.getvalue()
