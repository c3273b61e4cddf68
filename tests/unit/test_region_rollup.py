"""Indicators at nation, province, city, county and school grain on a hand-computed nation.

Two provinces, three cities, five counties and six schools (tests/unit/region_cases/):
the expected values were worked out by hand from the case CSVs (the ``working`` column),
not by running the pipeline. A region's ratio is a ratio of sums over everything in it,
so a province's differs from the mean of its cities' ratios and the nation's from the
mean of the provinces'; ``max``/``min`` take the extreme school value of the region;
the bureau's city reference figures take their city's province from the registry.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from schemas.indicators import indicator_definitions, load_indicator_catalogue
from tests.unit.test_indicator_cases import load_case_frames
from vetreport.aggregate import compute
from vetreport.aggregate.compute import AggregateResult, compute_indicator_values, shape_tables
from vetreport.aggregate.regions import Region, region_directory
from vetreport.bucket.store import open_store
from vetreport.cli.main import main
from vetreport.curate.completeness import completeness_by_region
from vetreport.publish.reader import RegionNotFound, read_table, read_table_bytes
from vetreport.publish.writer import publish

CASES = Path(__file__).parent / "region_cases"
YEAR = 2023
EXPECTED = pl.read_csv(CASES / "expected.csv", infer_schema=False).with_columns(
    pl.col("expected").cast(pl.Float64)
)
PROVINCE_CITIES = {"浙江省": ["宁波市", "绍兴市"], "江苏省": ["苏州市"]}


@pytest.fixture(scope="module")
def frames() -> dict[str, pl.DataFrame]:
    return load_case_frames(CASES)


@pytest.fixture(scope="module")
def values(frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
    return compute_indicator_values(frames)


def at(values: pl.DataFrame, indicator: str, level: str, region: str) -> pl.DataFrame:
    """The rows of an indicator at a region (a path, or a school code for a school)."""
    selected = values.filter(
        (pl.col("indicator_id") == indicator)
        & (pl.col("region_level") == level)
        & (pl.col("year") == YEAR)
    )
    if level == "school":
        return selected.filter(pl.col("school_code") == region)
    for column, name in Region.parse(region).names().items():
        selected = selected.filter(pl.col(column) == name)
    return selected


@pytest.mark.parametrize(
    "case",
    EXPECTED.to_dicts(),
    ids=[
        f"{row['indicator_id']}-{row['region_level']}-{row['region']}"
        for row in EXPECTED.to_dicts()
    ],
)
def test_indicator_value(values: pl.DataFrame, case: dict) -> None:
    selected = at(values, case["indicator_id"], case["region_level"], case["region"])
    assert selected.height == 1, selected
    assert selected.item(0, "indicator_value") == pytest.approx(case["expected"], abs=1e-9), case


def mean(values: pl.DataFrame, indicator: str, level: str, **where: str) -> float:
    selected = values.filter(
        (pl.col("indicator_id") == indicator)
        & (pl.col("region_level") == level)
        & (pl.col("year") == YEAR)
    )
    for column, name in where.items():
        selected = selected.filter(pl.col(column) == name)
    return round(selected.get_column("value_unrounded").mean(), 2)


@pytest.mark.parametrize(
    ("indicator", "province_mean_of_cities", "nation_mean_of_provinces"),
    [
        ("matched_employment_rate_pct", 65.00, 60.71),
        ("vocational_admissions_share_pct", 29.17, 33.04),
    ],
)
def test_regions_are_ratios_of_sums_not_averages_of_ratios(
    values: pl.DataFrame,
    indicator: str,
    province_mean_of_cities: float,
    nation_mean_of_provinces: float,
) -> None:
    province = at(values, indicator, "province", "浙江省").item(0, "indicator_value")
    nation = at(values, indicator, "nation", "全国").item(0, "indicator_value")
    assert mean(values, indicator, "city", province_name="浙江省") == province_mean_of_cities
    assert mean(values, indicator, "province") == nation_mean_of_provinces
    assert province != province_mean_of_cities
    assert nation != nation_mean_of_provinces
    # ... and the sums: the nation's numerator and denominator are the provinces' sums
    provinces = values.filter(
        (pl.col("indicator_id") == indicator)
        & (pl.col("region_level") == "province")
        & (pl.col("year") == YEAR)
    )
    whole = at(values, indicator, "nation", "全国")
    assert whole.item(0, "numerator") == provinces.get_column("numerator").sum()
    assert whole.item(0, "denominator") == provinces.get_column("denominator").sum()
    assert whole.item(0, "value_unrounded") == pytest.approx(
        whole.item(0, "numerator") * 100 / whole.item(0, "denominator")
    )


def test_every_sum_adds_up_level_by_level(values: pl.DataFrame) -> None:
    """For every summed indicator: nation = Σ provinces, province = Σ its cities."""
    summed = indicator_definitions().filter(pl.col("aggregation") == "sum")["indicator_id"]
    rows = values.filter(pl.col("indicator_id").is_in(summed.to_list()))
    parts = ["numerator", "denominator"]
    for level, parent, keys in (
        ("province", "nation", []),
        ("city", "province", ["province_name"]),
    ):
        children = (
            rows.filter(pl.col("region_level") == level)
            .group_by("year", "indicator_id", *keys)
            .agg(pl.col(part).sum() for part in parts)
        )
        parents = rows.filter(pl.col("region_level") == parent).select(
            "year", "indicator_id", *keys, *parts
        )
        joined = parents.join(children, on=["year", "indicator_id", *keys], suffix="_children")
        assert joined.height == parents.height > 0
        for part in parts:
            differing = joined.filter(
                pl.col(part).fill_null(0) != pl.col(f"{part}_children").fill_null(0)
            )
            assert differing.height == 0, (level, part, differing)


def test_every_indicator_has_a_value_wherever_its_cities_have(values: pl.DataFrame) -> None:
    city = values.filter(
        (pl.col("region_level") == "city") & pl.col("value_unrounded").is_not_null()
    ).select("year", "indicator_id", "province_name")
    for level, keys in (("province", ["province_name"]), ("nation", [])):
        wider = values.filter(
            (pl.col("region_level") == level) & pl.col("value_unrounded").is_not_null()
        ).select("year", "indicator_id", *keys)
        missing = (
            city.select("year", "indicator_id", *keys)
            .unique()
            .join(wider, on=["year", "indicator_id", *keys], how="anti")
        )
        assert missing.height == 0, (level, missing)


def test_city_only_indicators_have_province_and_national_values(values: pl.DataFrame) -> None:
    share = values.filter(pl.col("indicator_id") == "vocational_admissions_share_pct")
    by_level = dict(
        share.group_by("region_level")
        .agg(pl.col("indicator_value").is_not_null().all())
        .iter_rows()
    )
    assert by_level == {
        "nation": True,
        "province": True,
        "city": True,
        "county": False,
        "school": False,
    }
    assert (
        share.filter(pl.col("region_level").is_in(["county", "school"]))["indicator_value"]
        .is_null()
        .all()
    )


def test_max_is_the_largest_school_value_of_the_region(values: pl.DataFrame) -> None:
    # Σ over the standards would be 20800; the mean of the city maxima 4166.67
    assert (
        at(values, "public_funds_standard_per_student_yuan", "nation", "全国").item(
            0, "indicator_value"
        )
        == 5000
    )


def test_min_is_the_smallest_school_value_of_the_region(frames, monkeypatch) -> None:
    catalogue = load_indicator_catalogue()
    lowest = catalogue.filter(
        pl.col("indicator_id") == "public_funds_standard_per_student_yuan"
    ).with_columns(
        pl.lit("lowest_public_funds_standard_yuan").alias("indicator_id"),
        pl.lit("min").alias("aggregation"),
        (pl.col("row_order") + 100).alias("row_order"),
    )
    monkeypatch.setattr(compute, "load_indicator_catalogue", lambda: pl.concat([catalogue, lowest]))
    values = compute_indicator_values(frames)
    expected = {
        ("nation", "全国"): 2500,
        ("province", "浙江省"): 3000,
        ("province", "江苏省"): 2500,
        ("city", "浙江省/绍兴市"): 3000,
        ("city", "浙江省/宁波市"): 4000,
        ("county", "江苏省/苏州市/姑苏区"): 2500,
        ("school", "S00005"): 5000,
    }
    for (level, region), value in expected.items():
        got = at(values, "lowest_public_funds_standard_yuan", level, region)
        assert got.item(0, "indicator_value") == value, (level, region)


def test_counties_of_the_same_name_in_two_cities_stay_apart(values: pl.DataFrame) -> None:
    counties = values.filter(
        (pl.col("indicator_id") == "school_count")
        & (pl.col("region_level") == "county")
        & (pl.col("county_name") == "鼓楼区")
        & (pl.col("year") == YEAR)
    )
    assert sorted(counties["city_name"].to_list()) == ["宁波市", "苏州市"]
    assert counties["numerator"].to_list() == [1, 1]


def test_city_reference_of_a_city_the_registry_does_not_place(frames) -> None:
    # 杭州市 has reference figures but no school in the registry: its city row stays, it
    # counts in the nation, and in no province (there is no province without a name).
    extra = (
        frames["city_reference"]
        .head(1)
        .with_columns(
            pl.lit("杭州市").alias("city_name"),
            pl.lit(
                1000, dtype=frames["city_reference"].schema["general_high_school_admissions_count"]
            ).alias("general_high_school_admissions_count"),
        )
    )
    values = compute_indicator_values(
        {**frames, "city_reference": pl.concat([frames["city_reference"], extra])}
    )
    general = values.filter(
        (pl.col("indicator_id") == "general_high_school_admissions_count")
        & (pl.col("year") == YEAR)
    )
    city = general.filter((pl.col("region_level") == "city") & (pl.col("city_name") == "杭州市"))
    assert city["province_name"].to_list() == [None]
    assert city["indicator_value"].to_list() == [1000]
    assert (
        at(values, "general_high_school_admissions_count", "nation", "全国").item(
            0, "indicator_value"
        )
        == 2000
    )
    provinces = general.filter(pl.col("region_level") == "province")
    assert dict(provinces.select("province_name", "indicator_value").iter_rows()) == {
        "江苏省": 500,
        "浙江省": 500,
    }


def test_indicator_values_keep_their_columns_and_add_the_province(values: pl.DataFrame) -> None:
    assert values.columns == [
        "year",
        "region_level",
        "province_name",
        "city_name",
        "county_name",
        "school_code",
        "school_name",
        "indicator_id",
        "numerator",
        "denominator",
        "value_unrounded",
        "indicator_value",
    ]
    levels = set(values["region_level"].unique())
    assert levels == {"nation", "province", "city", "county", "school"}
    nation = values.filter(pl.col("region_level") == "nation")
    assert nation.select("province_name", "city_name", "county_name").null_count().row(0) == (
        nation.height,
        nation.height,
        nation.height,
    )


def test_every_report_table_has_a_city_province_and_national_shape(values: pl.DataFrame) -> None:
    tables = shape_tables(values, YEAR)
    employment = tables["employment"]
    assert employment.columns[:2] == ["city_name", "year"]
    assert employment.filter(pl.col("year") == YEAR).select(
        "city_name", "matched_employment_rate_pct"
    ).rows() == [("宁波市", 50.0), ("绍兴市", 80.0), ("苏州市", 50.0)]
    by_province = tables["employment_by_province"]
    assert by_province.columns == ["province_name", *employment.columns[1:]]
    assert by_province.filter(pl.col("year") == YEAR).select(
        "province_name", "matched_employment_rate_pct"
    ).rows() == [("江苏省", 50.0), ("浙江省", 71.43)]
    national = tables["employment_national"]
    assert national.columns == employment.columns[1:]
    assert national["year"].to_list() == [YEAR]  # the cases hold one year
    assert national.filter(pl.col("year") == YEAR)["matched_employment_rate_pct"].to_list() == [
        58.82
    ]
    scorecard = tables["scorecard"]
    assert scorecard.columns[0] == "city_name"
    assert tables["scorecard_by_province"].columns == ["province_name", *scorecard.columns[1:]]
    assert tables["scorecard_national"].columns == scorecard.columns[1:]
    rows = tables["scorecard_national"].height
    assert tables["scorecard_by_province"].height == 2 * rows
    assert scorecard.height == 3 * rows
    share = tables["admissions_by_province"].filter(pl.col("year") == YEAR)
    assert share["vocational_admissions_share_pct"].to_list() == [37.5, 28.57]
    assert "province_name" not in tables["employment_by_school"].columns


def test_the_region_directory_names_every_region(values: pl.DataFrame) -> None:
    directory = region_directory(values)
    assert directory["region_path"].to_list() == [
        "全国",
        "江苏省",
        "浙江省",
        "江苏省/苏州市",
        "浙江省/宁波市",
        "浙江省/绍兴市",
        "江苏省/苏州市/姑苏区",
        "江苏省/苏州市/鼓楼区",
        "浙江省/宁波市/鼓楼区",
        "浙江省/绍兴市/柯桥区",
        "浙江省/绍兴市/越城区",
    ]
    for path in directory["region_path"]:
        assert Region.parse(path).path == path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("全国", Region()),
        ("", Region()),
        ("浙江省", Region("浙江省")),
        (" 浙江省／绍兴市 ", Region("浙江省", "绍兴市")),
        ("浙江省/绍兴市/越城区", Region("浙江省", "绍兴市", "越城区")),
        ("/绍兴市", Region(None, "绍兴市")),
    ],
)
def test_region_paths_parse(text: str, expected: Region) -> None:
    assert Region.parse(text) == expected


@pytest.mark.parametrize("text", ["浙江省/", "浙江省//越城区", "a/b/c/d"])
def test_malformed_region_paths_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="省/市"):
        Region.parse(text)


def test_completeness_counts_schools_by_status_per_region(frames) -> None:
    statuses = ["accepted", "missing", "accepted", "rejected", "accepted_with_warnings", "missing"]
    matrix = pl.DataFrame(
        {
            "year": [YEAR] * 6,
            "school_code": [f"S0000{index}" for index in range(1, 7)],
            "county_name": [None] * 6,
            "dataset": ["graduates"] * 6,
            "dataset_name_zh": ["毕业生去向"] * 6,
            "status": statuses,
        }
    )
    table = completeness_by_region(matrix, frames["school_registry"])
    counted = {
        (row["region_level"], row["province_name"], row["city_name"], row["county_name"]): (
            row["expected_school_count"],
            row["accepted_school_count"],
            row["accepted_with_warnings_school_count"],
            row["rejected_school_count"],
            row["missing_school_count"],
        )
        for row in table.iter_rows(named=True)
    }
    assert counted[("nation", None, None, None)] == (6, 2, 1, 1, 2)
    assert counted[("province", "浙江省", None, None)] == (3, 2, 0, 0, 1)
    assert counted[("province", "江苏省", None, None)] == (3, 0, 1, 1, 1)
    assert counted[("city", "浙江省", "绍兴市", None)] == (2, 1, 0, 0, 1)
    assert counted[("city", "江苏省", "苏州市", None)] == (3, 0, 1, 1, 1)
    assert counted[("county", "江苏省", "苏州市", "姑苏区")] == (2, 0, 0, 1, 1)
    assert table["region_level"].to_list()[:3] == ["nation", "province", "province"]
    assert table["withdrawn_school_count"].sum() == 0


@pytest.fixture(scope="module")
def published(values: pl.DataFrame, frames, tmp_path_factory) -> str:
    tables = shape_tables(values, YEAR)
    tables["regions"] = region_directory(values)
    submissions = pl.DataFrame(
        {
            "year": [YEAR],
            "dataset": ["graduates"],
            "submitter": ["S00001"],
            "key": [f"uploads/{YEAR}/S00001/graduates.csv"],
            "version_token": ["etag1"],
            "submission_id": ["sub1"],
        }
    )
    store_url = str(tmp_path_factory.mktemp("regions") / "bucket")
    publish(open_store(store_url), AggregateResult(YEAR, values, tables, submissions))
    return store_url


@pytest.mark.parametrize(
    ("table", "region", "columns", "rows"),
    [
        ("表5", "浙江省/绍兴市", ["city_name", "year"], [("绍兴市", YEAR)]),
        ("employment", "浙江省", ["province_name", "year"], [("浙江省", YEAR)]),
        ("表5", "全国", ["year", "matched_employment_rate_pct"], [(YEAR, 58.82)]),
        ("表5_by_province", "江苏省", ["province_name", "year"], [("江苏省", YEAR)]),
        ("附表1", "江苏省/苏州市", ["city_name"], None),
    ],
)
def test_reading_a_report_table_for_a_region_gives_its_own_shape(
    published: str, table: str, region: str, columns: list[str], rows: list | None
) -> None:
    frame = read_table(published, table, YEAR, region=region)
    if rows is not None:
        assert frame.select(columns).rows() == rows
    else:
        assert set(frame[columns[0]]) == {Region.parse(region).city_name}


def test_reading_other_tables_for_a_region_keeps_the_rows_inside_it(published: str) -> None:
    schools = read_table(published, "表5_by_school", YEAR, region="浙江省")
    assert sorted(schools["school_code"].unique()) == ["S00001", "S00002", "S00003"]
    county = read_table(published, "employment_by_school", YEAR, region="江苏省/苏州市/鼓楼区")
    assert county["school_code"].unique().to_list() == ["S00005"]
    values = read_table(published, "indicator_values", YEAR, region="浙江省/宁波市")
    assert set(values["region_level"]) == {"city", "county", "school"}
    assert set(values["city_name"]) == {"宁波市"}
    assert read_table(published, "indicator_values", YEAR, region="全国").height == (
        read_table(published, "indicator_values", YEAR).height
    )
    regions = read_table(published, "regions", YEAR, region="江苏省")
    assert regions["region_path"].to_list()[0] == "江苏省"


def test_a_region_that_is_not_there_is_refused(published: str) -> None:
    with pytest.raises(RegionNotFound, match="浙江省/绍兴市"):
        read_table(published, "表5", YEAR, region="绍兴市")
    with pytest.raises(RegionNotFound):
        read_table(published, "表5", YEAR, region="江苏省/绍兴市")
    with pytest.raises(ValueError, match="report tables stop at the city"):
        read_table(published, "表5", YEAR, region="浙江省/绍兴市/越城区")
    with pytest.raises(ValueError, match="no province_name"):
        read_table(published, "表5_national", YEAR, region="浙江省")


def test_region_files_are_the_region_rows_in_each_format(published: str) -> None:
    import io

    csv = read_table_bytes(published, "表5", YEAR, file_format="csv", region="浙江省")
    assert pl.read_csv(io.BytesIO(csv))["province_name"].unique().to_list() == ["浙江省"]
    parquet = read_table_bytes(published, "表5", YEAR, file_format="parquet", region="全国")
    assert pl.read_parquet(io.BytesIO(parquet)).height == 1
    workbook = read_table_bytes(published, "表5", YEAR, file_format="xlsx", region="江苏省")
    assert workbook.startswith(b"PK")


def test_tables_get_takes_a_region(published: str, capsysbinary) -> None:
    code = main(
        ["tables", "get", "表5", "--year", str(YEAR), "--region", "浙江省", "--bucket", published]
    )
    assert code == 0
    text = capsysbinary.readouterr().out.decode("utf-8-sig")
    assert text.splitlines()[0].startswith("province_name,year,")
    assert text.count("浙江省") == 1
    code = main(
        ["tables", "get", "表5", "--year", str(YEAR), "--region", "广东省", "--bucket", published]
    )
    assert code == 2
