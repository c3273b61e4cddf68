"""Published values as a report prints them: the binding behind every placeholder.

What belongs here: finding one indicator's value in a published version's
``indicator_values`` (city, county or school grain, one year), rounding it half-up to the
precision a placeholder asks for, and recording what was bound (``BoundValue``) so the
manifest can list every figure a document used. Errors name the placeholder that asked.

A known indicator, grain and year without a value (no school has reported its data yet)
prints ``—``, as the published tables do; an unknown one is an error.

Rounding starts from ``value_unrounded`` (the value before the catalogue's rounding), so a
figure printed with fewer decimals than the catalogue keeps is rounded once, never twice.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import polars as pl

from schemas.indicators import indicator_definitions, years_shown
from vetreport.report.derived import derive, load_derived_figures

SCALES = {"": 1, "万": 10_000, "亿": 100_000_000}


class PlaceholderError(ValueError):
    """A placeholder asks for something the published version does not have."""


def round_half_up(value: float, decimals: int) -> Decimal:
    """Round as reports round (half away from zero), exactly on the decimal text."""
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def printed_text(value: float, decimals: int, scale: str = "", thousands: bool = False) -> str:
    """A value as printed: scaled (万, 亿), rounded half-up to ``decimals``."""
    rounded = round_half_up(value / SCALES[scale], decimals)
    return f"{rounded:,.{decimals}f}" if thousands else f"{rounded:.{decimals}f}"


@dataclass(frozen=True)
class BoundValue:
    """One figure a document printed: what it was bound to and what it showed."""

    placeholder: str
    indicator_id: str
    grain: str
    region: str
    year: int
    decimals: int
    scale: str
    value_unrounded: float | None
    indicator_value: float | None
    text: str

    def key(self) -> tuple[str, str, str, int, int, str]:
        """What identifies the binding across versions (not its value)."""
        return (self.indicator_id, self.grain, self.region, self.year, self.decimals, self.scale)

    def as_record(self) -> dict[str, Any]:
        """The manifest's record of the figure."""
        return asdict(self)


def placeholder_text(indicator_id: str, year: int, decimals: int | None, **options: Any) -> str:
    """The call as a writer types it, for messages: v("id", 2023, 1, region="柯桥区")."""
    arguments = [f'"{indicator_id}"', str(year)] + ([] if decimals is None else [str(decimals)])
    arguments += [f'{name}="{value}"' for name, value in options.items() if value]
    return f"v({', '.join(arguments)})"


class PublishedValues:
    """The indicator values of one published version, looked up for one city."""

    def __init__(self, indicator_values: pl.DataFrame, city_name: str, report_year: int) -> None:
        self.city_name = city_name
        self.frame = indicator_values.filter(pl.col("city_name") == city_name)
        self.definitions = {
            row["indicator_id"]: row for row in indicator_definitions().iter_rows(named=True)
        }
        self.years = years_shown(report_year)
        self.derived = load_derived_figures()
        schools = self.frame.filter(pl.col("region_level") == "school")
        self.counties = set(self.frame.get_column("county_name").drop_nulls().to_list())
        self.schools = {
            **dict(zip(schools["school_code"], schools["school_code"], strict=True)),
            **dict(zip(schools["school_name"], schools["school_code"], strict=True)),
        }

    def bind_derived(
        self, figure_id: str, year: int, decimals: int | None = None, region: str = ""
    ) -> BoundValue:
        """A derived figure (derived_figures.csv) of a region and year, printed at ``decimals``."""
        call = placeholder_text(figure_id, year, decimals, region=region).replace("v(", "d(", 1)
        _check_known(call, figure_id, self.derived, "derived figure")
        figure = self.derived[figure_id]
        self._check_year(call, year)
        decimals = figure.decimals if decimals is None else decimals
        if not isinstance(decimals, int) or not 0 <= decimals <= 6:
            raise PlaceholderError(
                f"placeholder {call}: the precision must be a whole number of decimals 0–6"
            )
        grain, condition = self._grain(region, call)
        if figure.kind == "rank" and grain != "school":
            raise PlaceholderError(f"placeholder {call}: a rank is a school's: name the school")
        rows = self.frame.filter(condition)
        peers = self.frame.filter(pl.col("region_level") == "school")
        if grain != "city":
            county = rows.get_column("county_name").drop_nulls().head(1).to_list()
            in_county = grain == "county" or figure.kind != "rank"
            if county and in_county:
                peers = peers.filter(pl.col("county_name") == county[0])
        code = self.schools.get(region) if grain == "school" else None
        value = derive(figure, rows, peers, year, code)
        if value is None:
            text = "—"
        elif isinstance(value, str):
            text = value or "—"
        else:
            text = printed_text(value, decimals)
        return BoundValue(
            placeholder=call,
            indicator_id=figure_id,
            grain=grain,
            region=region or self.city_name,
            year=year,
            decimals=decimals,
            scale="",
            value_unrounded=None if isinstance(value, str) else value,
            indicator_value=None,
            text=text,
        )

    def _grain(self, region: str, call: str) -> tuple[str, pl.Expr]:
        if not region or region == self.city_name:
            return "city", pl.col("region_level") == "city"
        if region in self.counties:
            return "county", (pl.col("region_level") == "county") & (
                pl.col("county_name") == region
            )
        if region in self.schools:
            return "school", (pl.col("region_level") == "school") & (
                pl.col("school_code") == self.schools[region]
            )
        close = difflib.get_close_matches(region, [*self.counties, *self.schools], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise PlaceholderError(
            f"placeholder {call}: {self.city_name} has no county or school {region!r}{hint}"
        )

    def _check_year(self, call: str, year: object) -> None:
        """Refuse a placeholder for a year the published version does not show."""
        if not isinstance(year, int) or year not in self.years:
            raise PlaceholderError(
                f"placeholder {call}: the report shows the years "
                f"{', '.join(map(str, self.years))}, not {year!r}"
            )

    def bind(
        self,
        indicator_id: str,
        year: int,
        decimals: int | None = None,
        region: str = "",
        scale: str = "",
    ) -> BoundValue:
        """The value of an indicator at a grain and year, printed at ``decimals``."""
        call = placeholder_text(indicator_id, year, decimals, region=region, scale=scale)
        _check_known(call, indicator_id, self.definitions, "indicator")
        self._check_year(call, year)
        if scale not in SCALES:
            raise PlaceholderError(f"placeholder {call}: scale must be 万 or 亿, not {scale!r}")
        if decimals is None:
            decimals = int(self.definitions[indicator_id]["decimals"])
        if not isinstance(decimals, int) or not 0 <= decimals <= 6:
            raise PlaceholderError(
                f"placeholder {call}: the precision must be a whole number of decimals 0–6"
            )
        grain, condition = self._grain(region, call)
        rows = self.frame.filter(
            condition & (pl.col("indicator_id") == indicator_id) & (pl.col("year") == year)
        )
        if rows.height > 1:
            raise PlaceholderError(f"placeholder {call}: {rows.height} values where one was due")
        # No row: no school reported the data yet; printed as the tables print it (—).
        unrounded = rows.item(0, "value_unrounded") if rows.height else None
        published = rows.item(0, "indicator_value") if rows.height else None
        text = "—" if unrounded is None else printed_text(unrounded, decimals, scale)
        return BoundValue(
            placeholder=call,
            indicator_id=indicator_id,
            grain=grain,
            region=region or self.city_name,
            year=year,
            decimals=decimals,
            scale=scale,
            value_unrounded=unrounded,
            indicator_value=published,
            text=text,
        )


def _check_known(call: str, name: str, known: Iterable[str], what: str) -> None:
    """Refuse a placeholder naming no catalogue row, with the closest names as a hint."""
    names = list(known)
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise PlaceholderError(f"placeholder {call}: no {what} {name!r}{hint}")
