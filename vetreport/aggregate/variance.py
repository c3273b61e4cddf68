"""Variance: year-on-year changes beyond each indicator's tolerance, for operators and schools.

What belongs here: comparing every indicator value (city and school grain) with the same
indicator of the previous year, keeping the changes beyond the indicator's
``variance_tolerance_pct`` (schemas/indicators.csv) as a ``variance`` table, and turning the
report year's school rows into history-layer warnings (rule
``history.change_beyond_tolerance``), which vetreport.school.history_report writes back.

change_pct = (current - previous) / |previous| x 100, on the unrounded values. A change from
zero to something is flagged with a null change_pct (an infinite change); a value missing
in either year is not compared (completeness covers missing data).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from schemas.catalogue import load_rules
from schemas.indicators import indicator_definitions

HISTORY_RULE = "history.change_beyond_tolerance"
COMPARED_LEVELS = ("city", "school")

VARIANCE_SCHEMA: dict[str, type[pl.DataType]] = {
    "year": pl.Int64,
    "region_level": pl.Utf8,
    "city_name": pl.Utf8,
    "county_name": pl.Utf8,
    "school_code": pl.Utf8,
    "school_name": pl.Utf8,
    "indicator_id": pl.Utf8,
    "name_zh": pl.Utf8,
    "unit": pl.Utf8,
    "previous_value": pl.Float64,
    "current_value": pl.Float64,
    "change_pct": pl.Float64,
    "tolerance_pct": pl.Float64,
}


def variance_table(values: pl.DataFrame) -> pl.DataFrame:
    """Every (year, region, indicator) whose change on the previous year is beyond tolerance."""
    definitions = indicator_definitions().select(
        "indicator_id", "name_zh", "unit", pl.col("variance_tolerance_pct").alias("tolerance_pct")
    )
    keys = ["region_level", "city_name", "county_name", "school_code", "indicator_id"]
    # one query: the nation's values of three years are joined to themselves a year on,
    # and only the flagged rows are kept; eager steps held a copy of each stage at once
    compared = (
        values.lazy()
        .filter(
            pl.col("region_level").is_in(COMPARED_LEVELS) & pl.col("value_unrounded").is_not_null()
        )
        .select(*keys, "year", "school_name", "value_unrounded", "indicator_value")
    )
    previous = compared.select(
        *keys,
        (pl.col("year") + 1).alias("year"),
        pl.col("value_unrounded").alias("previous_unrounded"),
        pl.col("indicator_value").alias("previous_value"),
    )
    joined = compared.join(previous, on=[*keys, "year"], how="inner", nulls_equal=True).join(
        definitions.lazy(), on="indicator_id", how="inner"
    )
    change = (
        (pl.col("value_unrounded") - pl.col("previous_unrounded"))
        / pl.col("previous_unrounded").abs()
        * 100
    )
    flagged = joined.with_columns(
        pl.when(pl.col("previous_unrounded") != 0).then(change.round(2)).alias("change_pct"),
        pl.col("indicator_value").alias("current_value"),
    ).filter(
        pl.when(pl.col("previous_unrounded") == 0)
        .then(pl.col("value_unrounded") != 0)
        .otherwise(change.abs() > pl.col("tolerance_pct"))
    )
    return (
        flagged.select(list(VARIANCE_SCHEMA))
        .cast(VARIANCE_SCHEMA)
        .sort("year", "region_level", "school_code", "indicator_id", nulls_last=False)
        .collect()
    )


def history_findings(variance: pl.DataFrame, year: int) -> dict[str, list[dict[str, Any]]]:
    """The history-layer warnings of each school for one year, keyed by school code."""
    rule = load_rules()[HISTORY_RULE]
    rows = variance.filter((pl.col("region_level") == "school") & (pl.col("year") == year))
    findings = rows.select(
        "school_code",
        pl.lit(rule.rule_id).alias("rule_id"),
        pl.lit(rule.layer).alias("layer"),
        pl.lit(rule.severity).alias("severity"),
        "indicator_id",
        pl.col("name_zh").alias("indicator_zh"),
        "unit",
        pl.col("previous_value").alias("previous"),
        pl.col("current_value").alias("current"),
        "change_pct",
        pl.col("tolerance_pct").alias("tolerance"),
        pl.lit(rule.message_zh).alias("message_zh"),
        pl.lit(rule.message_en).alias("message_en"),
        pl.lit(rule.fix_zh).alias("fix_zh"),
    )
    return {
        str(code[0]): group.drop("school_code").to_dicts()
        for code, group in findings.group_by("school_code", maintain_order=True)
    }
