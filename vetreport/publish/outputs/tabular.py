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


def neutralise_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula with an apostrophe."""
    text_columns = [name for name, dtype in frame.schema.items() if dtype == pl.Utf8]
    return frame.with_columns(
        pl.when(pl.col(name).str.contains(_FORMULA_PATTERN))
        .then(pl.lit("'") + pl.col(name))
        .otherwise(pl.col(name))
        .alias(name)
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
