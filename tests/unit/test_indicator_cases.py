"""Every indicator of the catalogue on a tiny hand-computed city (tests/unit/indicator_cases/).

The expected values were worked out by hand from the case CSVs (see the ``working`` column),
not by running the pipeline; the test fails if an indicator of the catalogue has no case.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from schemas.catalogue import load_datasets
from schemas.indicators import indicator_definitions
from vetreport.aggregate.compute import _empty_curated, compute_indicator_values, shape_tables

CASES = Path(__file__).parent / "indicator_cases"
YEAR = 2023


def load_case_frames(folder: Path = CASES) -> dict[str, pl.DataFrame]:
    """The case CSVs of a folder as curated frames: catalogue types, a year column."""
    frames = {name: _empty_curated(name) for name in load_datasets()}
    for path in sorted(folder.glob("*.csv")):
        if path.stem == "expected":
            continue
        dataset = load_datasets()[path.stem]
        raw = pl.read_csv(path, infer_schema=False)
        casts = []
        for column in dataset.columns:
            if column.column_name not in raw.columns:
                continue
            if column.data_type == "boolean":
                casts.append(pl.col(column.column_name).str.to_lowercase() == "true")
            else:
                casts.append(pl.col(column.column_name).cast(column.polars_type))
        typed = raw.with_columns(*casts, pl.lit(YEAR, dtype=pl.Int64).alias("year"))
        frames[path.stem] = pl.concat([frames[path.stem], typed], how="diagonal_relaxed")
    return frames


EXPECTED = pl.read_csv(CASES / "expected.csv", infer_schema=False).with_columns(
    pl.col("expected").cast(pl.Float64)
)


@pytest.fixture(scope="module")
def values() -> pl.DataFrame:
    return compute_indicator_values(load_case_frames())


def test_every_indicator_has_a_city_case() -> None:
    catalogue_ids = set(indicator_definitions().get_column("indicator_id").to_list())
    city_cases = set(EXPECTED.filter(pl.col("region_level") == "city")["indicator_id"])
    assert catalogue_ids - city_cases == set(), "indicators without a hand-computed case"
    assert city_cases - catalogue_ids == set(), "cases for indicators not in the catalogue"


@pytest.mark.parametrize(
    "case",
    EXPECTED.to_dicts(),
    ids=[
        f"{row['indicator_id']}-{row['region_level']}-{row['region'] or ''}"
        for row in EXPECTED.to_dicts()
    ],
)
def test_indicator_value(values: pl.DataFrame, case: dict) -> None:
    selected = values.filter(
        (pl.col("indicator_id") == case["indicator_id"])
        & (pl.col("region_level") == case["region_level"])
        & (pl.col("year") == YEAR)
    )
    if case["region_level"] == "school":
        selected = selected.filter(pl.col("school_code") == case["region"])
    elif case["region_level"] == "county":
        selected = selected.filter(pl.col("county_name") == case["region"])
    assert selected.height == 1, selected
    assert selected.item(0, "indicator_value") == pytest.approx(case["expected"], abs=1e-9), case


def test_city_only_indicators_have_no_school_values(values: pl.DataFrame) -> None:
    city_only = indicator_definitions().filter(~pl.col("is_school_level"))["indicator_id"]
    school = values.filter(
        pl.col("indicator_id").is_in(city_only.to_list()) & (pl.col("region_level") == "school")
    )
    assert school.get_column("indicator_value").is_null().all()


def test_every_table_has_both_shapes(values: pl.DataFrame) -> None:
    tables = shape_tables(values, YEAR)
    scorecard = tables["scorecard"]
    assert scorecard.columns == [
        "city_name",
        "indicator_id",
        "name_zh",
        "unit",
        "value_2021",
        "value_2022",
        "value_2023",
    ]
    assert scorecard["indicator_id"][0] == "graduates_count"
    assert scorecard.filter(pl.col("indicator_id") == "national_skills_gold_count")[
        "value_2023"
    ].to_list() == [2.0]
    assert scorecard["value_2021"].is_null().all()
    by_school = tables["scorecard_by_school"]
    assert sorted(by_school["school_code"].to_list()) == ["S00001", "S00002"]
    assert "national_skills_gold_count" in by_school.columns
    policy_by_school = tables["policy_by_school"]
    assert "public_funds_standard_met_share_pct" not in policy_by_school.columns
