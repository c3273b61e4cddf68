"""The flows against S3 endpoints and a Prefect test server: every test runs twice, on moto
over HTTP and on a real SeaweedFS (a versioned bucket on each)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import boto3
import polars as pl
import pytest
import xlsxwriter

from tests.conftest import make_bucket
from vetreport.bucket.store import open_store
from vetreport.curate.ledger import read_records
from vetreport.demo.generator import write_demo_uploads
from vetreport.publish.reader import read_pointer, read_table

pytestmark = pytest.mark.integration
SCHOOL = "3133060003"  # 绍兴护士学校, an XLSX school


@pytest.fixture(scope="module", params=["moto", "seaweedfs"])
def s3_server(request: pytest.FixtureRequest) -> Iterator[str]:
    """The endpoint of this round of the module's tests, which the stores use meanwhile."""
    if request.param == "moto":
        endpoint = request.getfixturevalue("s3_endpoint")
    else:
        endpoint = request.getfixturevalue("seaweedfs").endpoint
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VETREPORT_S3_ENDPOINT_URL", endpoint)
        patch.setenv("VETREPORT_S3_ADDRESSING", "path")
        yield endpoint


@pytest.fixture(scope="module")
def bucket(prefect_server, s3_server: str) -> dict:
    from flows.pipeline import run_pipeline

    name = make_bucket(s3_server, versioned=True)
    store_url = f"s3://{name}"
    write_demo_uploads(store_url, seed=2023)
    summary = run_pipeline(store_url, 2023)
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    return {"store_url": store_url, "summary": summary, "client": client, "name": name}


def broken_staff_workbook() -> bytes:
    """A staff workbook missing required columns, with a value that is not 是/否."""
    buffer = io.BytesIO()
    book = xlsxwriter.Workbook(buffer, {"in_memory": True})
    sheet = book.add_worksheet("staff")
    sheet.write_row(0, 0, ["学校代码", "教职工编号", "是否在编"])
    sheet.write_row(1, 0, [SCHOOL, "T0001", "也许"])
    book.close()
    return buffer.getvalue()


def staff_total(store_url: str) -> float:
    table = read_table(open_store(store_url), "staff_size", 2023)
    return table.filter(pl.col("year") == 2023).item(0, "staff_count")


def test_pipeline_publishes_from_s3(bucket) -> None:
    from vetreport.demo.generator import build_demo_uploads

    assert bucket["summary"]["outcomes"] == {"accepted": len(build_demo_uploads(seed=2023))}
    assert staff_total(bucket["store_url"]) == 3406
    assert read_pointer(open_store(bucket["store_url"]), 2023)["version"] == 1


def test_the_same_object_ingested_twice_is_a_no_op(bucket) -> None:
    from flows.ingest import ingest_uploads

    key = f"uploads/2023/{SCHOOL}/staff.xlsx"
    first = ingest_uploads(bucket["store_url"], [key, key], label="twice")
    assert [result["was_skipped"] for result in first] == [True, True]
    records = [
        record
        for record in read_records(open_store(bucket["store_url"]), [2023])
        if record["key"] == key
    ]
    assert len(records) == 1


def test_a_refused_overwrite_withdraws_the_file_and_a_correction_republishes(bucket) -> None:
    from flows.aggregate import aggregate_and_publish
    from flows.ingest import ingest_uploads

    store = open_store(bucket["store_url"])
    before = (
        read_table(store, "staff_size_by_school", 2023)
        .filter((pl.col("school_code") == SCHOOL) & (pl.col("year") == 2023))
        .item(0, "staff_count")
    )
    # A broken staff file replaces the school's good one in the bucket (same key): the
    # object now at the key is what counts, and it counts for nothing.
    key = f"uploads/2023/{SCHOOL}/staff.xlsx"  # the school sends Excel
    assert store.exists(key)
    store.put(key, broken_staff_workbook())
    results = ingest_uploads(bucket["store_url"], [key])
    assert results[0]["outcome"] == "rejected"
    report = json.loads(store.get(results[0]["report_key"]))
    assert {item["rule_id"] for item in report["counts_by_rule"]} >= {"structure.missing_column"}
    withdrawn = aggregate_and_publish(bucket["store_url"], 2023)
    assert withdrawn["is_new_version"] is True
    assert staff_total(bucket["store_url"]) == 3406 - before

    # The school fixes it: a valid file with one more staff member than before.
    header = "学校代码,教职工编号,是否在编,是否专任教师,最高学历,专业技术职称"
    rows = [f"{SCHOOL},T{index:05d},是,是,大学本科,中级" for index in range(int(before) + 1)]
    store.put(f"uploads/2023/{SCHOOL}/staff.csv", ("\n".join([header, *rows]) + "\n").encode())
    store.delete(key)  # the school replaces its workbook with a CSV
    results = ingest_uploads(
        bucket["store_url"], [f"uploads/2023/{SCHOOL}/staff.csv", key], announce=False
    )
    outcomes = {result["key"]: result["outcome"] for result in results}
    assert outcomes == {f"uploads/2023/{SCHOOL}/staff.csv": "accepted", key: "withdrawn"}
    republished = aggregate_and_publish(bucket["store_url"], 2023)
    assert republished["is_new_version"] is True
    assert staff_total(bucket["store_url"]) == 3407


def test_a_late_duplicate_event_for_a_processed_version_is_a_no_op(bucket) -> None:
    from flows.ingest import ingest_uploads

    store = open_store(bucket["store_url"])
    key = f"uploads/2023/{SCHOOL}/graduates.xlsx"
    versions = bucket["client"].list_object_versions(Bucket=bucket["name"], Prefix=key)
    assert len(versions["Versions"]) == 1
    # The current version is already processed; re-delivering its event changes nothing.
    again = ingest_uploads(bucket["store_url"], [key], label="late")
    assert again[0]["was_skipped"] is True
    records = [r for r in read_records(store, [2023]) if r["key"] == key]
    assert len(records) == 1


def test_keys_outside_the_layout_are_quarantined(bucket) -> None:
    from flows.ingest import ingest_uploads

    store = open_store(bucket["store_url"])
    store.put("uploads/2023/3133060003/../../etc.csv".replace("../", "x/"), b"a,b\n")
    store.put("uploads/2023/3133060003/graduates.pdf", b"%PDF-1.4 ...")
    results = ingest_uploads(
        bucket["store_url"],
        ["uploads/2023/3133060003/x/x/etc.csv", "uploads/2023/3133060003/graduates.pdf"],
    )
    assert [result["outcome"] for result in results] == ["rejected", "rejected"]
    quarantined = [info.key for info in store.list("quarantine/")]
    assert any(key.endswith("etc.csv") for key in quarantined)
    assert any(key.endswith("graduates.pdf.reason.json") for key in quarantined)


def test_a_correction_to_an_earlier_year_republishes_the_later_year_showing_it(bucket) -> None:
    from flows.aggregate import aggregate_and_publish
    from flows.ingest import ingest_uploads

    store_url = bucket["store_url"]
    store = open_store(store_url)
    first = aggregate_and_publish(store_url, 2022)  # 2022 published; 2023 has not changed
    assert first["is_new_version"] is True
    assert first["later_years"][2023]["is_new_version"] is False
    version_2023 = read_pointer(store, 2023)["version"]

    def shown_in_2023(table: str, **where: object) -> float:
        frame = read_table(store, table, 2023).filter(pl.col("year") == 2022)
        for column, value in where.items():
            frame = frame.filter(pl.col(column) == value)
        return frame.item(0, "staff_count")

    city_2022 = shown_in_2023("staff_size")
    school_2022 = shown_in_2023("staff_size_by_school", school_code=SCHOOL)
    header = "学校代码,教职工编号,是否在编,是否专任教师,最高学历,专业技术职称"
    rows = [f"{SCHOOL},T{index:05d},是,是,大学本科,中级" for index in range(int(school_2022) + 2)]
    key = f"uploads/2022/{SCHOOL}/staff.csv"
    store.put(key, ("\n".join([header, *rows]) + "\n").encode())
    assert ingest_uploads(store_url, [key])[0]["outcome"] == "accepted"

    corrected = aggregate_and_publish(store_url, 2022)
    assert corrected["is_new_version"] is True
    assert corrected["later_years"][2023]["is_new_version"] is True
    assert read_pointer(store, 2023)["version"] == version_2023 + 1
    assert shown_in_2023("staff_size") == city_2022 + 2
    assert shown_in_2023("staff_size_by_school", school_code=SCHOOL) == school_2022 + 2
