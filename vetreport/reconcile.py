"""Reconciliation: compare computed figures with a published reference, figure by figure.

What belongs here: reading a reference in the format of seed_figures.csv (figure_id, year,
value, ...), mapping its figures to indicators through schemas/reference_figures.csv, and
listing every figure whose value, at the precision the reference prints, differs from what
the data gives. Figures the catalogue cannot compute are listed as not checked, never
silently dropped.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import polars as pl

from schemas.catalogue import CATALOGUE_DIR


def decimals_of(text: str) -> int:
    """How many decimals a figure is printed with: '34.30' has 2, '465' has 0."""
    return len(text.split(".", 1)[1]) if "." in text else 0


def round_half_up(value: float, decimals: int) -> Decimal:
    """Round as reports round (half away from zero), exactly."""
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def load_reference(path: str | Path) -> pl.DataFrame:
    """A reference file: figure_id, year and the value as printed (kept as text)."""
    frame = pl.read_csv(path, infer_schema=False)
    missing = {"figure_id", "year", "value"} - set(frame.columns)
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    return frame.with_columns(pl.col("year").cast(pl.Int64))


def load_figure_map() -> pl.DataFrame:
    """Which indicator (at city level) each reference figure id stands for."""
    return pl.read_csv(CATALOGUE_DIR / "reference_figures.csv")


def reconcile(
    indicator_values: pl.DataFrame, reference: pl.DataFrame, year: int | None = None
) -> pl.DataFrame:
    """Every reference figure with the computed value and whether the two agree."""
    city = indicator_values.filter(pl.col("region_level") == "city").select(
        "indicator_id", "year", "value_unrounded"
    )
    figures = reference.join(load_figure_map(), on="figure_id", how="left")
    if year is not None:
        figures = figures.filter(pl.col("year") == year)
    joined = figures.join(city, on=["indicator_id", "year"], how="left")
    statuses = []
    computed_at_precision = []
    for row in joined.iter_rows(named=True):  # one row per reference figure: ~100 rows
        if row["indicator_id"] is None:
            statuses.append("not_checked")
            computed_at_precision.append(None)
            continue
        if row["value_unrounded"] is None:
            statuses.append("no_data")
            computed_at_precision.append(None)
            continue
        decimals = decimals_of(row["value"])
        computed = round_half_up(row["value_unrounded"], decimals)
        computed_at_precision.append(str(computed))
        statuses.append("match" if computed == Decimal(row["value"]) else "differs")
    return joined.with_columns(
        pl.Series("computed_value", computed_at_precision, dtype=pl.Utf8),
        pl.Series("status", statuses, dtype=pl.Utf8),
    ).select(
        "figure_id",
        "year",
        *[name for name in ("section", "indicator_zh") if name in joined.columns],
        pl.col("value").alias("reference_value"),
        "computed_value",
        pl.col("value_unrounded").alias("computed_unrounded"),
        "indicator_id",
        "status",
    )
