"""The national demo generator: deterministic, complete, spread over the country, realistic in
size, flat in memory, and its bucket goes through ingest and aggregation with the accepted and
rejected files its manifest promises."""

from __future__ import annotations

import gc
import hashlib
import json
import re
import tracemalloc
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from vetreport.aggregate.compute import aggregate
from vetreport.bucket.store import LocalStore
from vetreport.cli.main import EXIT_USAGE, main
from vetreport.curate.ingest import ingest_keys, unprocessed_upload_keys
from vetreport.demo.generator import SCHOOL_DATASETS
from vetreport.demo.national import (
    EXPECTED_RULES,
    MANIFEST_KEY,
    TOTAL_ROW,
    national_geography,
    national_schools,
    read_manifest,
    school_allocation,
    school_year_tables,
    write_national_bucket,
)

SEED = 2023
YEAR = 2023


def bucket_digest(root: Path) -> str:
    """One hash over every file's key and bytes (uploads and manifest)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def read_bureau_csv(root: Path, year: int, dataset: str) -> pl.DataFrame:
    return pl.read_csv(root / f"uploads/{year}/_city/{dataset}.csv", infer_schema=False)


# ------------------------------------------------------------------------------------------
# Determinism and counts
# ------------------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    first = write_national_bucket(tmp_path / "a", schools=6, seed=SEED, years=(2022, 2023))
    write_national_bucket(tmp_path / "b", schools=6, seed=SEED, years=(2022, 2023))
    write_national_bucket(tmp_path / "c", schools=6, seed=SEED + 1, years=(2022, 2023))
    assert bucket_digest(tmp_path / "a") == bucket_digest(tmp_path / "b")
    assert bucket_digest(tmp_path / "a") != bucket_digest(tmp_path / "c")
    assert first.files == 2 * (6 * len(SCHOOL_DATASETS) + 2)


def test_counts_registry_and_manifest(tmp_path: Path) -> None:
    years = (2021, 2022, 2023)
    summary = write_national_bucket(tmp_path, schools=12, seed=SEED, years=years)
    uploads = sorted(p for p in (tmp_path / "uploads").rglob("*") if p.is_file())
    assert len(uploads) == summary.files == len(years) * (12 * len(SCHOOL_DATASETS) + 2)
    assert not list(tmp_path.rglob(".tmp-*"))
    manifest = read_manifest(tmp_path)
    assert sorted(manifest["key"]) == [p.relative_to(tmp_path).as_posix() for p in uploads]
    assert summary.bad_files == manifest.filter(pl.col("defect").is_not_null()).height
    assert summary.data_rows == manifest["data_rows"].sum()
    for year in years:
        registry = read_bureau_csv(tmp_path, year, "school_registry")
        assert registry.columns == [
            "学校代码",
            "学校名称",
            "省份",
            "地市",
            "区县",
            "办学性质",
            "办学类型",
        ]
        assert set(registry["办学类型"]) <= {"中等专业学校", "职业高中"}
        assert registry.height == 12 and registry["学校代码"].n_unique() == 12
        folders = {p.name for p in (tmp_path / f"uploads/{year}").iterdir()} - {"_city"}
        assert folders == set(registry["学校代码"])
        for code in registry["学校代码"]:
            names = {p.name.split(".")[0] for p in (tmp_path / f"uploads/{year}/{code}").iterdir()}
            assert names == set(SCHOOL_DATASETS)
        reference = read_bureau_csv(tmp_path, year, "city_reference")
        assert set(reference["地市"]) == set(registry["地市"])
    # Files are written the ways schools write them.
    formats = Counter(manifest.filter(pl.col("submitter") != "_city")["file_format"])
    assert set(formats) <= {"csv-utf8-bom", "csv-gbk", "xlsx"}
    for path in uploads:
        data = path.read_bytes()
        if path.suffix == ".xlsx":
            assert data.startswith(b"PK")
        elif "_city" not in path.parts and data.startswith(b"\xef\xbb\xbf"):
            data[3:].decode("utf-8")
        else:
            data.decode("utf-8-sig" if "_city" in path.parts else "gbk")


# ------------------------------------------------------------------------------------------
# Regions and sizes
# ------------------------------------------------------------------------------------------


def test_geography_and_allocation() -> None:
    geography = national_geography(SEED)
    assert len(geography) == 31
    cities = [city for province in geography for city in province.cities]
    counties = [county for city in cities for county in city.counties]
    assert 300 <= len(cities) <= 340
    assert len({city.name for city in cities}) == len(cities)
    assert len(set(counties)) == len(counties)
    assert all(re.fullmatch(r"示例市\d{3}", city.name) for city in cities)
    assert all(re.fullmatch(r"示例县\d{4}", county) for county in counties)
    assert {"北京市", "浙江省", "西藏自治区", "新疆维吾尔自治区"} <= {p.name for p in geography}
    for count in (5, 31, 40, 400, 7000):
        allocation = school_allocation(SEED, count, geography)
        assert sum(n for _, _, n in allocation) == count
        provinces_with_schools = {province.code for province, _, n in allocation if n}
        assert len(provinces_with_schools) == min(31, count)
    # At the default 7,000 schools every city has some, spread by the provinces' weights.
    per_province = Counter()
    for province, city, n in school_allocation(SEED, 7000, geography):
        assert n >= 1, city.name
        per_province[province.name] += n
    assert per_province["河南省"] > per_province["浙江省"] > per_province["西藏自治区"] >= 1


def test_schools_are_spread_over_provinces_cities_and_counties() -> None:
    schools = list(national_schools(SEED, 120))
    assert len({school.code for school in schools}) == 120
    assert all(re.fullmatch(r"9\d{9}", school.code) for school in schools)
    assert len({school.province.code for school in schools}) == 31
    assert len({school.city.name for school in schools}) > 90
    for school in schools:
        assert school.county in school.city.counties
        assert school.city in school.province.cities
        assert school.name.startswith(school.city.name)
        assert ("民办" in school.name) == (school.ownership == "民办")
    assert 0.1 < sum(school.ownership == "民办" for school in schools) / 120 < 0.35


def test_sizes_are_realistic() -> None:
    students = graduates = staff = 0
    for school in national_schools(SEED, 60):
        tables = school_year_tables(SEED, YEAR, school)
        enrollment = tables["enrollment"]
        assert 3 <= enrollment.filter(pl.col("program_type") == "中职").height <= 6
        assert enrollment["enrolled_count"].is_between(10, 200).all()
        assert (enrollment["admissions_count"] <= enrollment["enrolled_count"]).all()
        assert tables["awards"].height >= 1
        for dataset_id in SCHOOL_DATASETS:
            assert tables[dataset_id].height >= 1, dataset_id
            assert set(tables[dataset_id]["school_code"]) == {school.code}
        students += int(enrollment["enrolled_count"].sum())
        graduates += tables["graduates"].height
        staff += tables["staff"].height
    assert 0.28 < graduates / students < 0.4
    assert 12 < students / staff < 18


# ------------------------------------------------------------------------------------------
# Through the pipeline
# ------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_30_school_bucket_goes_through_ingest_and_aggregation(tmp_path: Path) -> None:
    summary = write_national_bucket(tmp_path, schools=30, seed=SEED, years=(YEAR,))
    manifest = read_manifest(tmp_path)
    assert summary.bad_files >= 5, "the seed should give a few bad files"
    store = LocalStore(tmp_path)
    results = ingest_keys(store, unprocessed_upload_keys(store, YEAR))
    outcomes = pl.DataFrame(
        {
            "key": [result.key for result in results],
            "outcome": [result.outcome for result in results],
            "report_key": [result.report_key for result in results],
        }
    )
    joined = manifest.join(outcomes, on="key", how="left", validate="1:1")
    assert joined["outcome"].null_count() == 0
    rejected = joined.filter(pl.col("outcome") == "rejected")
    assert sorted(rejected["key"]) == sorted(manifest.filter(pl.col("defect").is_not_null())["key"])
    for row in rejected.iter_rows(named=True):
        report = json.loads(store.get(row["report_key"]))
        rules = {finding["rule_id"] for finding in report["findings"]}
        assert EXPECTED_RULES[row["defect"]] in rules, (row["key"], rules)
    messy = joined.filter(pl.col("mess") == TOTAL_ROW)
    assert (messy["outcome"] == "accepted_with_warnings").all()

    result = aggregate(store, YEAR)
    values = result.indicator_values.filter(pl.col("year") == YEAR)
    registry = read_bureau_csv(tmp_path, YEAR, "school_registry")
    city_values = values.filter(pl.col("region_level") == "city")
    assert set(city_values["city_name"]) == set(registry["地市"])
    schools_with_values = values.filter(pl.col("region_level") == "school")["school_code"]
    assert set(schools_with_values) <= set(registry["学校代码"])
    completeness = result.tables["completeness"].filter(pl.col("year") == YEAR)
    assert completeness["school_code"].n_unique() == 30
    statuses = Counter(completeness["status"])
    assert statuses["rejected"] == rejected.height


# ------------------------------------------------------------------------------------------
# Memory and the command line
# ------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_memory_is_flat_in_the_number_of_schools(tmp_path: Path) -> None:
    """The generator's peak of Python allocations hardly moves from 20 to 80 schools.

    tracemalloc sees Python's allocations only (Polars' buffers live outside it); the
    per-school frames are small, so a whole-country list or frame would still show here.
    A first small run pays for imports and caches, which otherwise land in whichever
    measured run first needs them (it depends on what the worker ran before), and each
    measurement starts after a full collection.
    """
    write_national_bucket(tmp_path / "warm", schools=3, seed=SEED, years=(YEAR,))
    peaks = {}
    for count in (20, 80):
        gc.collect()
        tracemalloc.start()
        try:
            write_national_bucket(tmp_path / str(count), schools=count, seed=SEED, years=(YEAR,))
            peaks[count] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks[80] < 1.5 * peaks[20], peaks


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bucket"
    code = main(["demo-data", "--national", "--schools", "3", "--years", "2023", "--out", str(out)])
    assert code == 0
    assert "3 schools" in capsys.readouterr().out
    assert (out / MANIFEST_KEY).is_file()
    assert len(list((out / "uploads/2023").iterdir())) == 4
    assert main(["demo-data", "--schools", "3", "--out", str(out)]) == EXIT_USAGE
    assert main(["demo-data", "--national", "--years", "20x3", "--out", str(out)]) == EXIT_USAGE
