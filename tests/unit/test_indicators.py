"""Indicator computation on tiny hand-computed frames."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from schemas.catalogue import load_datasets
from schemas.indicators import (
    IndicatorCatalogueError,
    indicator_terms,
    load_indicator_catalogue,
    load_measure_catalogue,
)
from vetreport.aggregate.compute import _empty_curated, compute_indicator_values, shape_tables


def curated(**frames: pl.DataFrame) -> dict[str, pl.DataFrame]:
    result = {name: _empty_curated(name) for name in load_datasets()}
    for name, frame in frames.items():
        result[name] = pl.concat([result[name], frame], how="diagonal_relaxed")
    return result


def registry(*rows: tuple[str, str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "year": [2023] * len(rows),
            "school_code": [row[0] for row in rows],
            "school_name": [f"学校{row[0]}" for row in rows],
            "province_name": ["浙江省"] * len(rows),
            "city_name": ["绍兴市"] * len(rows),
            "county_name": [row[1] for row in rows],
            "ownership": [row[2] for row in rows],
        }
    )


def graduates(school: str, destinations: list[str], matched: list[bool | None]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "year": 2023,
            "school_code": school,
            "graduate_id": [f"G{school}{index:04d}" for index in range(len(destinations))],
            "major_name": "护理",
            "destination": destinations,
            "is_major_matched": matched,
            "starting_monthly_income_yuan": [
                3000.0 if destination == "直接就业" else None for destination in destinations
            ],
            "is_undergraduate_line_reached": False,
        }
    )


def value(values: pl.DataFrame, indicator: str, level: str = "city", **where: str) -> float:
    selected = values.filter(
        (pl.col("indicator_id") == indicator) & (pl.col("region_level") == level)
    )
    for column, expected in where.items():
        selected = selected.filter(pl.col(column) == expected)
    assert selected.height == 1, selected
    return selected.item(0, "indicator_value")


def test_city_ratio_is_a_ratio_of_sums_not_an_average_of_ratios() -> None:
    frames = curated(
        school_registry=registry(("S00001", "越城区", "公办"), ("S00002", "柯桥区", "公办")),
        # school 1: 1 of 1 directly employed graduates matched (100%)
        # school 2: 1 of 3 matched (33.3%); average of ratios 66.67, ratio of sums 50.00
        graduates=pl.concat(
            [
                graduates("S00001", ["直接就业"], [True]),
                graduates("S00002", ["直接就业"] * 3, [True, False, False]),
            ]
        ),
    )
    values = compute_indicator_values(frames)
    assert value(values, "matched_employment_rate_pct") == 50.0
    assert value(values, "matched_employment_rate_pct", "school", school_code="S00001") == 100.0
    assert value(values, "matched_employment_rate_pct", "county", county_name="柯桥区") == 33.33


def test_rounding_is_half_up_as_reports_round() -> None:
    # 1114 / 3196 = 34.8560...: 2 decimals gives 34.86; and 1 of 8 = 12.5 exactly -> 12.50
    staff = pl.DataFrame(
        {
            "year": 2023,
            "school_code": "S00001",
            "staff_id": [f"T{index:05d}" for index in range(8)],
            "is_established": True,
            "is_full_time_teacher": True,
            "highest_education": ["硕士研究生"] + ["大学本科"] * 7,
            "professional_title": "中级",
        }
    )
    frames = curated(school_registry=registry(("S00001", "越城区", "公办")), staff=staff)
    values = compute_indicator_values(frames)
    assert value(values, "postgraduate_teacher_share_pct") == 12.5
    assert value(values, "bachelor_plus_teacher_share_pct") == 100.0
    assert value(values, "full_time_teacher_count") == 8


def test_half_way_values_round_up() -> None:
    # 2 of 16 = 12.5 with 0 decimals must be 13, not banker's 12: use a count indicator
    enrollment = pl.DataFrame(
        {
            "year": 2023,
            "school_code": "S00001",
            "major_code": ["720201"],
            "major_name": ["护理"],
            "program_type": ["中职"],
            "admissions_count": [1],
            "enrolled_count": [16],
        }
    )
    profile = pl.DataFrame(
        {
            "year": 2023,
            "school_code": "S00001",
            "land_area_m2": [1.0],
            "building_area_m2": [1.0],
            "equipment_value_yuan": [200.0],  # 200 / 16 = 12.5 yuan per student
            "paper_books_count": [1],
        }
    )
    frames = curated(
        school_registry=registry(("S00001", "越城区", "公办")),
        enrollment=enrollment,
        school_profile=profile,
    )
    values = compute_indicator_values(frames)
    assert value(values, "equipment_value_per_student_yuan") == 13.0


def test_schools_missing_from_the_registry_do_not_count() -> None:
    frames = curated(
        school_registry=registry(("S00001", "越城区", "公办")),
        graduates=pl.concat(
            [
                graduates("S00001", ["直接就业", "待就业"], [True, None]),
                graduates("S09999", ["直接就业"] * 5, [True] * 5),
            ]
        ),
    )
    values = compute_indicator_values(frames)
    assert value(values, "initial_employment_rate_pct") == 50.0


def test_city_only_indicators_have_no_school_value() -> None:
    city = pl.DataFrame(
        {
            "year": [2023],
            "school_code": [None],
            "city_name": ["绍兴市"],
            "general_high_school_admissions_count": [600],
        }
    )
    enrollment = pl.DataFrame(
        {
            "year": 2023,
            "school_code": "S00001",
            "major_code": ["720201"],
            "major_name": ["护理"],
            "program_type": ["中职"],
            "admissions_count": [400],
            "enrolled_count": [1200],
        }
    )
    frames = curated(
        school_registry=registry(("S00001", "越城区", "公办")),
        city_reference=city,
        enrollment=enrollment,
    )
    values = compute_indicator_values(frames)
    assert value(values, "vocational_admissions_share_pct") == 40.0
    assert value(values, "general_high_school_admissions_count") == 600
    school_share = values.filter(
        (pl.col("indicator_id") == "vocational_admissions_share_pct")
        & (pl.col("region_level") == "school")
    )
    assert school_share.get_column("indicator_value").is_null().all()
    tables = shape_tables(values, 2023)
    assert tables["admissions"].get_column("vocational_admissions_share_pct").to_list() == [40.0]
    assert "vocational_admissions_share_pct" not in tables["admissions_by_school"].columns


def test_measure_catalogue_lists_exactly_what_the_sql_produces() -> None:
    from tests.unit.test_indicator_cases import load_case_frames
    from vetreport.aggregate.compute import compute_measures

    # The indicator cases fill every dataset, so every measure shows up.
    produced = set(compute_measures(load_case_frames()).get_column("measure_id").to_list())
    listed = set(load_measure_catalogue().get_column("measure_id").to_list())
    assert listed == produced
    terms = indicator_terms(load_indicator_catalogue())
    assert set(terms.get_column("measure_id").to_list()) <= listed


@pytest.mark.parametrize("column", ["numerator", "table_id", "decimals", "aggregation"])
def test_catalogue_rows_are_complete(column: str) -> None:
    assert load_indicator_catalogue().get_column(column).null_count() == 0


def write_catalogue(tmp_path, edit) -> Path:
    import csv
    from pathlib import Path

    from schemas.catalogue import CATALOGUE_DIR

    with (CATALOGUE_DIR / "indicators.csv").open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    rows = edit(rows)
    path = Path(tmp_path) / "indicators.csv"
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_unknown_measure_ids_are_listed(tmp_path) -> None:
    def edit(rows):
        rows[0]["numerator"] = "no_such_measure+admissions_count"
        rows[1]["denominator"] = "other_missing_count"
        return rows

    with pytest.raises(IndicatorCatalogueError, match="no_such_measure.*other_missing_count"):
        load_indicator_catalogue(write_catalogue(tmp_path, edit))


def test_duplicate_rows_are_refused(tmp_path) -> None:
    with pytest.raises(IndicatorCatalogueError, match="twice in a table"):
        load_indicator_catalogue(write_catalogue(tmp_path, lambda rows: rows + [rows[0]]))


@pytest.mark.parametrize("decimals", ["", "-1", "1.5", "x", "7"])
def test_bad_decimals_are_refused(tmp_path, decimals: str) -> None:
    def edit(rows):
        rows[2]["decimals"] = decimals
        return rows

    with pytest.raises(IndicatorCatalogueError, match="decimals"):
        load_indicator_catalogue(write_catalogue(tmp_path, edit))


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("aggregation", "average", "aggregation must be one of"),
        ("rounding", "banker", "rounding must be one of"),
        ("table_id", "no_such_table", "unknown tables"),
        ("multiplier", "abc", "must be numbers"),
    ],
)
def test_bad_rules_are_refused(tmp_path, column: str, value: str, message: str) -> None:
    def edit(rows):
        rows[0][column] = value
        return rows

    with pytest.raises(IndicatorCatalogueError, match=message):
        load_indicator_catalogue(write_catalogue(tmp_path, edit))


def test_max_takes_a_single_measure(tmp_path) -> None:
    def edit(rows):
        rows[0]["aggregation"] = "max"
        rows[0]["numerator"] = "admissions_count+general_high_school_admissions_count"
        return rows

    with pytest.raises(IndicatorCatalogueError, match="max/min"):
        load_indicator_catalogue(write_catalogue(tmp_path, edit))


def test_an_indicator_is_defined_the_same_way_in_every_table(tmp_path) -> None:
    def edit(rows):
        for row in rows:
            if row["indicator_id"] == "graduates_count" and row["table_id"] == "scorecard":
                row["decimals"] = "1"
        return rows

    with pytest.raises(IndicatorCatalogueError, match="graduates_count"):
        load_indicator_catalogue(write_catalogue(tmp_path, edit))


def test_rounding_down_and_max_aggregation(monkeypatch) -> None:
    import vetreport.aggregate.compute as aggregate_module

    catalogue = load_indicator_catalogue()
    changed = catalogue.with_columns(
        pl.when(pl.col("indicator_id") == "senior_title_teacher_share_pct")
        .then(pl.lit("down"))
        .otherwise(pl.col("rounding"))
        .alias("rounding"),
        pl.when(pl.col("indicator_id") == "paper_books_count")
        .then(pl.lit("max"))
        .otherwise(pl.col("aggregation"))
        .alias("aggregation"),
    )
    monkeypatch.setattr(aggregate_module, "load_indicator_catalogue", lambda: changed)
    staff = pl.DataFrame(
        {
            "year": 2023,
            "school_code": "S00001",
            "staff_id": [f"T{index:05d}" for index in range(7)],
            "is_established": True,
            "is_full_time_teacher": True,
            "highest_education": "大学本科",
            "professional_title": ["副高级"] * 2 + ["中级"] * 5,
        }
    )
    profile = pl.DataFrame(
        {
            "year": 2023,
            "school_code": ["S00001", "S00002"],
            "land_area_m2": [1.0, 1.0],
            "building_area_m2": [1.0, 1.0],
            "equipment_value_yuan": [1.0, 1.0],
            "paper_books_count": [300, 500],
        }
    )
    frames = curated(
        school_registry=registry(("S00001", "越城区", "公办"), ("S00002", "柯桥区", "公办")),
        staff=staff,
        school_profile=profile,
    )
    values = compute_indicator_values(frames)
    # 2 / 7 = 28.5714...: truncated to 28.57 (half-up would give the same), and 1 decimal place
    # below shows the difference: 28.57 -> down keeps 28.57
    assert value(values, "senior_title_teacher_share_pct") == 28.57
    assert value(values, "paper_books_count") == 500
    assert value(values, "paper_books_count", "school", school_code="S00001") == 300


def test_years_shown_per_indicator_blanks_earlier_years(monkeypatch) -> None:
    import vetreport.aggregate.compute as aggregate_module

    catalogue = load_indicator_catalogue().with_columns(
        pl.when(pl.col("indicator_id") == "graduates_count")
        .then(pl.lit(1, dtype=pl.Int64))
        .otherwise(pl.col("years_shown"))
        .alias("years_shown")
    )
    monkeypatch.setattr(aggregate_module, "load_indicator_catalogue", lambda: catalogue)
    frames = curated(
        school_registry=pl.concat(
            [
                registry(("S00001", "越城区", "公办")).with_columns(pl.lit(year).alias("year"))
                for year in (2022, 2023)
            ]
        ),
        graduates=pl.concat(
            [
                graduates("S00001", ["直接就业"], [True]).with_columns(pl.lit(year).alias("year"))
                for year in (2022, 2023)
            ]
        ),
    )
    tables = shape_tables(compute_indicator_values(frames), 2023)
    row = tables["scorecard"].filter(pl.col("indicator_id") == "graduates_count")
    assert row["value_2023"].to_list() == [1.0]
    assert row["value_2022"].to_list() == [None]
    rate = tables["scorecard"].filter(pl.col("indicator_id") == "direct_employment_rate_pct")
    assert rate["value_2022"].to_list() == [100.0]
