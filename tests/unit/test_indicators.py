"""Indicator computation on tiny hand-computed frames."""

from __future__ import annotations

import polars as pl
import pytest

from schemas.catalogue import load_datasets
from vetreport.aggregate import (
    _empty_curated,
    compute_indicator_values,
    indicator_terms,
    load_indicator_catalogue,
    shape_tables,
)


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


def test_catalogue_terms_name_only_measures_the_sql_produces() -> None:
    import re
    from pathlib import Path

    sql = "\n".join(path.read_text() for path in Path("sql/measures").glob("*.sql"))
    produced = set(re.findall(r"\bas (\w+)", sql))
    terms = indicator_terms(load_indicator_catalogue())
    unknown = set(terms.get_column("measure_id").to_list()) - produced
    assert not unknown


@pytest.mark.parametrize("column", ["numerator", "table_id", "decimals"])
def test_catalogue_rows_are_complete(column: str) -> None:
    assert load_indicator_catalogue().get_column(column).null_count() == 0
