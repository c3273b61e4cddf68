"""A school's own numbers before publication: its value, last year's, its city's and the
median of its peers, where a peer group too small to hide a single school shows no median."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from vetreport.aggregate.school_feedback import PEER_GROUP_MINIMUM, school_feedback
from vetreport.bucket.store import LocalStore
from vetreport.school.numbers_page import write_school_numbers

INDICATOR = "paper_books_per_student_count"  # school-level, 册, two decimals
YEAR = 2023

# code: (type, ownership, value this year, value last year)
SCHOOLS = {
    "S1": ("中等专业学校", "公办", 40.0, 38.0),
    "S2": ("中等专业学校", "公办", 10.0, 10.0),
    "S3": ("中等专业学校", "公办", 20.0, 20.0),
    "S4": ("中等专业学校", "公办", 90.0, 90.0),
    "P1": ("职业高中", "民办", 30.0, 31.0),  # a peer group of two: no median for either
    "P2": ("职业高中", "民办", 70.0, None),
    "U1": (None, "公办", 55.0, 50.0),  # no type in the registry: alone among the untyped
}
CITY_VALUE = 44.44


def value_row(year: int, level: str, code: str | None, value: float | None) -> dict:
    return {
        "year": year,
        "region_level": level,
        "province_name": "浙江省",
        "city_name": "绍兴市",
        "county_name": None,
        "school_code": code,
        "school_name": None if code is None else f"学校{code}<b>",
        "indicator_id": INDICATOR,
        "indicator_value": value,
    }


@pytest.fixture
def values() -> pl.DataFrame:
    rows = [value_row(YEAR, "city", None, CITY_VALUE), value_row(YEAR - 1, "city", None, 40.0)]
    for code, (_, _, now, before) in SCHOOLS.items():
        rows.append(value_row(YEAR, "school", code, now))
        if before is not None:
            rows.append(value_row(YEAR - 1, "school", code, before))
    return pl.DataFrame(rows)


@pytest.fixture
def registry() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "year": [YEAR] * len(SCHOOLS),
            "school_code": list(SCHOOLS),
            "school_type": [kind for kind, _, _, _ in SCHOOLS.values()],
            "ownership": [ownership for _, ownership, _, _ in SCHOOLS.values()],
        }
    )


def feedback_of(values: pl.DataFrame, registry: pl.DataFrame, code: str) -> dict:
    rows = school_feedback(values, registry, YEAR).filter(
        (pl.col("school_code") == code) & (pl.col("indicator_id") == INDICATOR)
    )
    assert rows.height == 1
    return rows.row(0, named=True)


def test_the_median_is_of_the_other_schools_of_the_same_type_and_ownership(
    values: pl.DataFrame, registry: pl.DataFrame
) -> None:
    assert PEER_GROUP_MINIMUM == 3
    one = feedback_of(values, registry, "S1")
    assert one["peer_school_count"] == 3  # S2, S3, S4: never S1 itself
    assert one["peer_median_value"] == 20.0  # median of 10, 20, 90
    assert one["school_value"] == 40.0 and one["school_value_last_year"] == 38.0
    assert one["city_value"] == CITY_VALUE
    four = feedback_of(values, registry, "S4")
    assert four["peer_median_value"] == 20.0  # median of 40, 10, 20


def test_a_peer_group_of_two_shows_no_median(values: pl.DataFrame, registry: pl.DataFrame) -> None:
    for code in ("P1", "P2"):
        row = feedback_of(values, registry, code)
        assert row["peer_school_count"] == 1
        assert row["peer_median_value"] is None
    assert feedback_of(values, registry, "P2")["school_value_last_year"] is None


def test_a_school_the_registry_does_not_type_is_not_compared_with_typed_schools(
    values: pl.DataFrame, registry: pl.DataFrame
) -> None:
    row = feedback_of(values, registry, "U1")
    assert row["peer_school_count"] == 0 and row["peer_median_value"] is None


def test_a_school_without_a_value_is_nobodys_peer(
    values: pl.DataFrame, registry: pl.DataFrame
) -> None:
    missing = values.with_columns(
        pl.when((pl.col("school_code") == "S4") & (pl.col("year") == YEAR))
        .then(None)
        .otherwise(pl.col("indicator_value"))
        .alias("indicator_value")
    )
    row = feedback_of(missing, registry, "S1")
    assert row["peer_school_count"] == 2 and row["peer_median_value"] is None


def test_a_registry_without_school_types_compares_by_ownership(values: pl.DataFrame) -> None:
    registry = pl.DataFrame(
        {"year": [YEAR] * 4, "school_code": ["S1", "S2", "S3", "S4"], "ownership": ["公办"] * 4}
    )
    assert feedback_of(values, registry, "S1")["peer_median_value"] == 20.0


def test_the_page_shows_the_numbers_the_warning_and_escapes_names(
    values: pl.DataFrame, registry: pl.DataFrame, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path)
    feedback = school_feedback(values, registry, YEAR)
    warning = {
        "indicator_id": INDICATOR,
        "change_pct": 5.26,
        "tolerance": 5,
        "message_zh": "较上年变化超出范围",
    }
    written = write_school_numbers(store, feedback, {"S1": [warning]}, YEAR, PEER_GROUP_MINIMUM)
    assert written == len(SCHOOLS)
    page = store.get(f"reports/{YEAR}/S1/numbers.html").decode()
    row = page[page.index("生均纸质图书") :].split("</tr>")[0]
    for text in ("40.00", "38.00", "44.44", "20.00", "+5.3%", "较上年变化超出范围"):
        assert text in row
    assert "学校S1&lt;b&gt;" in page and "学校S1<b>" not in page
    lonely = store.get(f"reports/{YEAR}/P1/numbers.html").decode()
    lonely_row = lonely[lonely.index("生均纸质图书") :].split("</tr>")[0]
    assert "30.00" in lonely_row and "—" in lonely_row
    document = json.loads(store.get(f"reports/{YEAR}/P1/numbers.json"))
    assert document["indicators"][0]["peer_median_value"] is None
    # unchanged numbers: nothing is rewritten
    assert write_school_numbers(store, feedback, {"S1": [warning]}, YEAR, PEER_GROUP_MINIMUM) == 0
    assert write_school_numbers(store, feedback, {}, YEAR, PEER_GROUP_MINIMUM) == 1  # S1's


def peer_medians_by_pairs(own: pl.DataFrame) -> pl.DataFrame:
    """The peer statistics as first written: every school joined to every valued peer."""
    keys = ["year", "city_name", "school_type", "ownership", "indicator_id"]
    peers = own.filter(pl.col("school_value").is_not_null()).select(
        *keys, pl.col("school_code").alias("peer_code"), pl.col("school_value").alias("peer")
    )
    return (
        own.select(*keys, "school_code")
        .join(peers, on=keys, how="inner")
        .filter(pl.col("peer_code") != pl.col("school_code"))
        .group_by("school_code", "indicator_id")
        .agg(
            pl.len().cast(pl.Int64).alias("peer_school_count"),
            pl.col("peer").median().alias("peer_median_value"),
        )
    )


@pytest.mark.parametrize("seed", range(6))
def test_peer_medians_from_ranks_are_those_of_every_pair(seed: int) -> None:
    """Ranks instead of a group's square: the same counts and medians, to the last bit."""
    import random

    from vetreport.aggregate.school_feedback import _peer_medians

    generator = random.Random(seed)
    rows = []
    for school in range(300):
        city = generator.choice(["甲市", "乙市", "丙市", None])
        kind = generator.choice(["中等专业学校", "职业高中", ""])
        ownership = generator.choice(["公办", "民办"])
        for indicator in ("a_count", "b_pct", "c_yuan"):
            value = generator.choice(
                [None, 0.0, 1.0, 1.0, -2.5, generator.random() * 100, generator.random() * 1e9]
            )
            rows.append((YEAR, f"S{school:03d}", city, kind, ownership, indicator, value))
    own = pl.DataFrame(
        rows,
        schema=[
            ("year", pl.Int64),
            ("school_code", pl.Utf8),
            ("city_name", pl.Utf8),
            ("school_type", pl.Utf8),
            ("ownership", pl.Utf8),
            ("indicator_id", pl.Utf8),
            ("school_value", pl.Float64),
        ],
        orient="row",
    )
    on = ["school_code", "indicator_id"]
    expected = own.select(on).join(peer_medians_by_pairs(own), on=on, how="left")
    actual = own.select(on).join(_peer_medians(own), on=on, how="left")
    assert expected.sort(on).to_dicts() == actual.sort(on).to_dicts()
    assert expected["peer_school_count"].drop_nulls().max() >= 10  # groups worth a median
    assert expected["peer_median_value"].null_count() < expected.height
