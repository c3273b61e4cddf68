"""Derived figures: catalogue rows computed from a published version's indicator values.

What belongs here: reading ``schemas/derived_figures.csv`` and computing its kinds from
``indicator_values`` (the values before the catalogue's rounding): year-on-year change
(``change``, and ``change_pct`` in percent of the previous year), sums over the report's
last N years (``sum_years``), one indicator as a share of another (``share``, percent),
the same over the last N years (``share_years``: the sum of one over the sum of the other,
so a rate over three years is a ratio of three-year sums, never a mean of yearly rates),
a school's rank within its city or county from the largest (``rank``; ties share a rank),
and the names of the top N schools (``top_n``). The template calls them with
``d("figure_id", year, decimals, region=...)``; rounding and recording are
``vetreport.report.values``.

Counts filtered by a level or category (金/银/铜 of a given contest, 国家级/省级) need the
curated rows, which a report never reads: they become figures when the catalogue gives
them an indicator (as the gold, silver and bronze counts have).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from schemas.catalogue import CATALOGUE_DIR
from schemas.indicators import indicator_definitions

DERIVED_CSV = CATALOGUE_DIR / "derived_figures.csv"
KINDS = ("change", "change_pct", "sum_years", "share", "share_years", "rank", "top_n")


@dataclass(frozen=True)
class DerivedFigure:
    """One row of derived_figures.csv."""

    figure_id: str
    name_zh: str
    kind: str
    indicator_id: str
    other_indicator_id: str | None
    years: int | None
    unit: str
    decimals: int


def load_derived_figures(path: str | None = None) -> dict[str, DerivedFigure]:
    """The derived figures by id, checked against the indicator catalogue."""
    source = DERIVED_CSV if path is None else path
    frame = pl.read_csv(source, infer_schema=False)
    known = set(indicator_definitions().get_column("indicator_id").to_list())
    figures: dict[str, DerivedFigure] = {}
    for line, row in enumerate(frame.iter_rows(named=True), start=2):
        where = f"derived_figures.csv line {line} ({row['figure_id']})"
        if row["kind"] not in KINDS:
            raise ValueError(f"{where}: kind must be one of {', '.join(KINDS)}")
        for column in ("indicator_id", "other_indicator_id"):
            if row[column] and row[column] not in known:
                raise ValueError(f"{where}: no indicator {row[column]!r}")
        if row["kind"] in ("share", "share_years") and not row["other_indicator_id"]:
            raise ValueError(f"{where}: a share needs other_indicator_id (the total)")
        if (
            row["kind"] in ("sum_years", "share_years", "top_n")
            and not (row["years"] or "").isdigit()
        ):
            raise ValueError(f"{where}: {row['kind']} needs a whole number in years")
        figures[row["figure_id"]] = DerivedFigure(
            figure_id=row["figure_id"],
            name_zh=row["name_zh"],
            kind=row["kind"],
            indicator_id=row["indicator_id"],
            other_indicator_id=row["other_indicator_id"] or None,
            years=int(row["years"]) if row["years"] else None,
            unit=row["unit"] or "",
            decimals=int(row["decimals"]),
        )
    return figures


def _value(frame: pl.DataFrame, indicator_id: str, year: int) -> float | None:
    rows = frame.filter((pl.col("indicator_id") == indicator_id) & (pl.col("year") == year))
    return rows.item(0, "value_unrounded") if rows.height == 1 else None


def derive(
    figure: DerivedFigure,
    region_rows: pl.DataFrame,
    peer_rows: pl.DataFrame,
    year: int,
    school_code: str | None,
) -> float | str | None:
    """The figure for one region and year; None where an input has no value.

    ``region_rows``: the indicator values of the region (city, county or school);
    ``peer_rows``: the school rows of the city or county a rank or top N is taken in.
    """
    current = _value(region_rows, figure.indicator_id, year)
    if figure.kind in ("change", "change_pct"):
        previous = _value(region_rows, figure.indicator_id, year - 1)
        if current is None or previous is None:
            return None
        if figure.kind == "change":
            return current - previous
        return None if previous == 0 else (current - previous) / previous * 100
    if figure.kind == "sum_years":
        values = [
            _value(region_rows, figure.indicator_id, y)
            for y in range(year - figure.years + 1, year + 1)
        ]  # type: ignore[operator]
        return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]
    if figure.kind == "share_years":
        span = range(year - (figure.years or 1) + 1, year + 1)
        parts = [_value(region_rows, figure.indicator_id, y) for y in span]
        totals = [_value(region_rows, figure.other_indicator_id or "", y) for y in span]
        if any(v is None for v in parts + totals) or not sum(totals):  # type: ignore[arg-type]
            return None
        return sum(parts) / sum(totals) * 100  # type: ignore[arg-type]
    if figure.kind == "share":
        total = _value(region_rows, figure.other_indicator_id or "", year)
        return None if current is None or not total else current / total * 100
    peers = peer_rows.filter(
        (pl.col("indicator_id") == figure.indicator_id)
        & (pl.col("year") == year)
        & pl.col("value_unrounded").is_not_null()
    )
    if figure.kind == "rank":
        if school_code is None or current is None:
            return None
        return float(peers.filter(pl.col("value_unrounded") > current).height + 1)
    ranked = peers.sort(["value_unrounded", "school_code"], descending=[True, False])
    return "、".join(ranked.head(figure.years or 0).get_column("school_name").to_list())
