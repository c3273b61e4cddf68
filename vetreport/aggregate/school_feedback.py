"""Each school's own numbers before publication: its indicators beside its city and its peers.

What belongs here: turning the indicator values of an aggregation (every grain, every
year shown) and the report year's registry into ``out_school__yearly_feedback``, one row per
school and school-level indicator of the report year, with

- ``school_value`` and ``school_value_last_year``: the school's own indicator, this year
  and the year before (the same rounding as the published tables);
- ``city_value``: the indicator of the school's city (a ratio of sums, as published);
- ``peer_school_count`` and ``peer_median_value``: the other schools of the same city,
  type (registry ``school_type``, 办学类型) and ownership (公办/民办) that have a value,
  and the median of their values.

What a school sees must not disclose another single school's figure: the median is shown
only when at least ``PEER_GROUP_MINIMUM`` other schools have a value (null otherwise), and
the school itself never counts among its peers. A school without a type in the registry is
compared with the schools of its ownership that have none either.

Nothing here reads or writes the bucket: vetreport.school.numbers_page writes the pages.
"""

from __future__ import annotations

import polars as pl

from schemas.indicators import indicator_definitions

# Fewer other schools than this and a median would come too close to one school's figure.
PEER_GROUP_MINIMUM = 3

FEEDBACK_SCHEMA: dict[str, type[pl.DataType]] = {
    "year": pl.Int64,
    "school_code": pl.Utf8,
    "school_name": pl.Utf8,
    "city_name": pl.Utf8,
    "school_type": pl.Utf8,
    "ownership": pl.Utf8,
    "indicator_id": pl.Utf8,
    "name_zh": pl.Utf8,
    "unit": pl.Utf8,
    "decimals": pl.Int64,
    "row_order": pl.Int64,
    "school_value": pl.Float64,
    "school_value_last_year": pl.Float64,
    "city_value": pl.Float64,
    "peer_school_count": pl.Int64,
    "peer_median_value": pl.Float64,
}

PEER_KEYS = ("year", "city_name", "school_type", "ownership", "indicator_id")


def school_feedback(values: pl.DataFrame, registry: pl.DataFrame, report_year: int) -> pl.DataFrame:
    """out_school__yearly_feedback for ``report_year`` (see the module docstring).

    ``values`` is out_region__yearly_indicator_values; ``registry`` the curated registry
    rows (any years; the report year's are used, ``school_type`` may be missing).
    """
    definitions = indicator_definitions().filter(pl.col("is_school_level"))

    def rows_of(level: str, year: int, *columns: str | pl.Expr) -> pl.DataFrame:
        # filtered and projected in one query: the nation's school rows of three years,
        # every column, copied first were a gigabyte held for the length of this function
        is_wanted = (pl.col("region_level") == level) & (pl.col("year") == year)
        return values.lazy().filter(is_wanted).select(*columns).collect()

    this_year = rows_of(
        "school",
        report_year,
        "year",
        "school_code",
        "school_name",
        "city_name",
        "indicator_id",
        pl.col("indicator_value").alias("school_value"),
    )
    if this_year.is_empty():
        return pl.DataFrame(schema=FEEDBACK_SCHEMA)
    groups = _peer_attributes(registry, report_year)
    own = (
        this_year.join(definitions.select("indicator_id"), on="indicator_id", how="semi")
        .join(groups, on="school_code", how="left")
        .with_columns(
            # the same words for a school the registry does not type and one it types ""
            pl.col("school_type").fill_null(""),
            pl.col("ownership").fill_null(""),
        )
    )
    last_year = rows_of(
        "school",
        report_year - 1,
        "school_code",
        "indicator_id",
        pl.col("indicator_value").alias("school_value_last_year"),
    )
    city = rows_of(
        "city",
        report_year,
        "city_name",
        "indicator_id",
        pl.col("indicator_value").alias("city_value"),
    )
    peer_stats = _peer_medians(own)
    feedback = (
        own.join(last_year, on=["school_code", "indicator_id"], how="left")
        .join(city, on=["city_name", "indicator_id"], how="left")
        .join(peer_stats, on=["school_code", "indicator_id"], how="left")
        .join(
            definitions.select("indicator_id", "name_zh", "unit", "decimals", "row_order"),
            on="indicator_id",
            how="left",
        )
        .with_columns(
            pl.col("peer_school_count").fill_null(0),
            pl.when(pl.col("peer_school_count") >= PEER_GROUP_MINIMUM)
            .then(pl.col("peer_median_value"))
            .otherwise(None)
            .alias("peer_median_value"),
        )
    )
    order = definitions.select("indicator_id").with_row_index("catalogue_order")
    return (
        feedback.join(order, on="indicator_id", how="left")
        .sort("school_code", "catalogue_order")
        .select([pl.col(name).cast(kind) for name, kind in FEEDBACK_SCHEMA.items()])
    )


def _peer_medians(own: pl.DataFrame) -> pl.DataFrame:
    """school_code, indicator_id -> peer_school_count, peer_median_value (before the minimum).

    The peers of a school are the other schools of its group (``PEER_KEYS``) with a value.
    Joining every school to every peer would hold a group's square (24 million rows, 4 GiB,
    at 7,000 schools); instead each group's values are ranked once, and a school's median
    without itself is read off its group's ranked values at the one or two middle positions,
    shifted by one past the school's own position. The two middle values are interpolated
    as Polars' ``median`` does (``lower + (upper - lower) * 0.5``), so the figure is the
    same to the last bit.
    """
    keys = list(PEER_KEYS)
    valued = own.filter(pl.col("school_value").is_not_null()).with_columns(
        (pl.col("school_value").rank("ordinal").over(keys).cast(pl.Int64) - 1).alias("position")
    )
    ranked = valued.select(*keys, "position", "school_value")
    group_sizes = valued.group_by(keys).agg(pl.len().cast(pl.Int64).alias("valued_count"))
    count = pl.col("valued_count").fill_null(0) - pl.col("position").is_not_null().cast(pl.Int64)

    def shifted(middle: pl.Expr) -> pl.Expr:
        own_position = pl.col("position")
        return (
            pl.when(own_position.is_not_null() & (middle >= own_position))
            .then(middle + 1)
            .otherwise(middle)
        )

    own_positions = valued.select("school_code", "indicator_id", "position")
    positions = (
        own.select(*keys, "school_code")
        .join(own_positions, on=["school_code", "indicator_id"], how="left")
        .join(group_sizes, on=keys, how="left")  # a null key matches nothing: no peers
        .with_columns(count.clip(lower_bound=0).alias("peer_school_count"))
        .with_columns(
            shifted((pl.col("peer_school_count") - 1) // 2).alias("lower_position"),
            shifted(pl.col("peer_school_count") // 2).alias("upper_position"),
        )
    )
    lower = ranked.rename({"position": "lower_position", "school_value": "lower_value"})
    upper = ranked.rename({"position": "upper_position", "school_value": "upper_value"})
    return (
        positions.join(lower, on=[*keys, "lower_position"], how="left")
        .join(upper, on=[*keys, "upper_position"], how="left")
        .select(
            "school_code",
            "indicator_id",
            pl.when(pl.col("peer_school_count") > 0).then(pl.col("peer_school_count")),
            pl.when(pl.col("peer_school_count") > 0)
            .then(pl.col("lower_value") + (pl.col("upper_value") - pl.col("lower_value")) * 0.5)
            .alias("peer_median_value"),
        )
    )


def _peer_attributes(registry: pl.DataFrame, report_year: int) -> pl.DataFrame:
    """school_code -> school_type, ownership from the report year's registry rows."""
    rows = (
        registry.filter(pl.col("year") == report_year) if "year" in registry.columns else registry
    )
    columns = [
        pl.col(name).cast(pl.Utf8) if name in rows.columns else pl.lit(None, pl.Utf8).alias(name)
        for name in ("school_type", "ownership")
    ]
    if "school_code" not in rows.columns:
        return pl.DataFrame(
            schema={"school_code": pl.Utf8, "school_type": pl.Utf8, "ownership": pl.Utf8}
        )
    return rows.select(pl.col("school_code").cast(pl.Utf8), *columns).unique(
        "school_code", keep="last", maintain_order=True
    )
