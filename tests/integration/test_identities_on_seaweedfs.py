"""Per-school credentials enforced by a real object store (SeaweedFS).

The session's SeaweedFS loads the identities file that ``vetreport identities`` wrote for
the demo registry (tests/conftest.py: bucket ``vetreport``, years 2023 and 2024). Each test
talks to it with boto3 under one identity's keys and checks what the store itself allows
and refuses; the pipeline's own checks (school code in the key against the content and
the registry) are not involved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import SEAWEEDFS_YEARS, SeaweedSession

pytestmark = pytest.mark.integration
YEAR = SEAWEEDFS_YEARS[0]
SCHOOL, OTHER = "3133060001", "3133060002"


def denied(call: Callable[[], Any]) -> dict:
    """Run an S3 call that the store must refuse; return the error response."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    assert response["Error"]["Code"] == "AccessDenied", response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    return response


@pytest.fixture(scope="module")
def store(seaweedfs: SeaweedSession) -> SeaweedSession:
    """The bucket as the pipeline leaves it: uploads, reports, a template, a version."""
    pipeline = seaweedfs.client("vetreport-pipeline")
    bucket = seaweedfs.bucket
    for key in [
        f"uploads/{YEAR}/{OTHER}/staff.csv",
        f"uploads/{YEAR}/_city/school_registry.csv",
        f"reports/{YEAR}/{SCHOOL}/abc.json",
        f"reports/{YEAR}/{OTHER}/def.json",
        f"reports/{YEAR}/_city/ghi.json",
        f"templates/{YEAR}/template_{YEAR}.xlsx",
        f"published/{YEAR}/latest.json",
        f"curated/staff/year={YEAR}/school={OTHER}/x.parquet",
        f"ledger/{YEAR}/{OTHER}/staff/x.json",
    ]:
        pipeline.put_object(Bucket=bucket, Key=key, Body=key.encode())
    return seaweedfs


def test_every_school_writes_its_own_prefix_and_no_neighbours(store: SeaweedSession) -> None:
    schools = sorted(
        identity.school_code
        for name, identity in store.identities.items()
        if name.startswith("school-")
    )
    assert len(schools) == 17  # the demo registry
    for index, code in enumerate(schools):
        client = store.client(f"school-{code}")
        for year in SEAWEEDFS_YEARS:
            client.put_object(
                Bucket=store.bucket, Key=f"uploads/{year}/{code}/staff.csv", Body=b"1"
            )
        neighbour = schools[(index + 1) % len(schools)]
        denied(
            lambda client=client, neighbour=neighbour: client.put_object(
                Bucket=store.bucket, Key=f"uploads/{YEAR}/{neighbour}/staff.csv", Body=b"x"
            )
        )


def test_a_school_uploads_reads_its_reports_and_the_templates(store: SeaweedSession) -> None:
    school = store.client(f"school-{SCHOOL}")
    bucket = store.bucket
    school.put_object(Bucket=bucket, Key=f"uploads/{YEAR}/{SCHOOL}/graduates.csv", Body=b"a,b\n")
    report = school.get_object(Bucket=bucket, Key=f"reports/{YEAR}/{SCHOOL}/abc.json")
    assert report["Body"].read() == f"reports/{YEAR}/{SCHOOL}/abc.json".encode()
    template = school.get_object(Bucket=bucket, Key=f"templates/{YEAR}/template_{YEAR}.xlsx")
    assert template["ContentLength"] > 0
    listed = school.list_objects_v2(Bucket=bucket, Prefix=f"uploads/{YEAR}/{SCHOOL}/")
    assert f"uploads/{YEAR}/{SCHOOL}/graduates.csv" in [item["Key"] for item in listed["Contents"]]
    reports = school.list_objects_v2(Bucket=bucket, Prefix=f"reports/{YEAR}/{SCHOOL}/")
    assert [item["Key"] for item in reports["Contents"]] == [f"reports/{YEAR}/{SCHOOL}/abc.json"]
    # withdrawing its own upload is a deletion the school may make
    school.delete_object(Bucket=bucket, Key=f"uploads/{YEAR}/{SCHOOL}/graduates.csv")


@pytest.mark.parametrize(
    "key",
    [
        f"uploads/{YEAR}/{OTHER}/staff.csv",
        f"uploads/{YEAR}/{OTHER}/{SCHOOL}/staff.csv",  # its code deeper in another's folder
        f"uploads/{YEAR}/_city/school_registry.csv",
        f"uploads/2022/{SCHOOL}/staff.csv",  # a year its identity was not issued for
        f"curated/staff/year={YEAR}/school={SCHOOL}/x.parquet",
        f"ledger/{YEAR}/{SCHOOL}/staff/x.json",
        f"published/{YEAR}/latest.json",
        f"reports/{YEAR}/{SCHOOL}/forged.json",
        f"templates/{YEAR}/template_{YEAR}.xlsx",
        f"quarantine/{YEAR}/x/staff.csv",
    ],
)
def test_a_school_cannot_write_outside_its_uploads(store: SeaweedSession, key: str) -> None:
    school = store.client(f"school-{SCHOOL}")
    denied(lambda: school.put_object(Bucket=store.bucket, Key=key, Body=b"forged"))


def test_a_school_cannot_delete_what_others_wrote(store: SeaweedSession) -> None:
    school = store.client(f"school-{SCHOOL}")
    pipeline = store.client("vetreport-pipeline")
    bucket = store.bucket
    theirs = [
        f"uploads/{YEAR}/{OTHER}/staff.csv",
        f"uploads/{YEAR}/_city/school_registry.csv",
        f"reports/{YEAR}/{SCHOOL}/abc.json",  # its own report, written by the pipeline
        f"published/{YEAR}/latest.json",
        f"ledger/{YEAR}/{OTHER}/staff/x.json",
    ]
    for key in theirs:
        denied(lambda key=key: school.delete_object(Bucket=bucket, Key=key))
    # A batch delete answers 200 with an error per key, as S3 does, and deletes nothing.
    answer = school.delete_objects(
        Bucket=bucket, Delete={"Objects": [{"Key": key} for key in theirs]}
    )
    assert answer.get("Deleted", []) == []
    assert sorted(error["Key"] for error in answer["Errors"]) == sorted(theirs)
    assert {error["Code"] for error in answer["Errors"]} == {"AccessDenied"}
    for key in theirs:
        pipeline.head_object(Bucket=bucket, Key=key)


@pytest.mark.parametrize(
    "key",
    [
        f"reports/{YEAR}/{OTHER}/def.json",
        f"reports/{YEAR}/_city/ghi.json",
        f"uploads/{YEAR}/{OTHER}/staff.csv",
        f"published/{YEAR}/latest.json",
        f"ledger/{YEAR}/{OTHER}/staff/x.json",
        f"curated/staff/year={YEAR}/school={OTHER}/x.parquet",
    ],
)
def test_a_school_cannot_read_what_is_not_its_own(store: SeaweedSession, key: str) -> None:
    school = store.client(f"school-{SCHOOL}")
    denied(lambda: school.get_object(Bucket=store.bucket, Key=key))


@pytest.mark.parametrize(
    "prefix",
    [
        "",
        "uploads/",
        f"uploads/{YEAR}/",
        f"uploads/{YEAR}/{OTHER}/",
        f"uploads/{YEAR}/_city/",
        f"reports/{YEAR}/{OTHER}/",
        f"reports/{YEAR}/",
        "ledger/",
        "published/",
    ],
)
def test_a_school_cannot_list_other_schools(store: SeaweedSession, prefix: str) -> None:
    school = store.client(f"school-{SCHOOL}")
    denied(lambda: school.list_objects_v2(Bucket=store.bucket, Prefix=prefix))
    denied(lambda: school.list_objects(Bucket=store.bucket, Prefix=prefix))


def test_a_school_every_year_identity_writes_any_year_but_no_neighbour(
    store: SeaweedSession,
) -> None:
    """``--every-year`` identities say the year as ``????``: four characters, never a path."""
    school = store.client("every-year-school")
    school.put_object(Bucket=store.bucket, Key=f"uploads/2031/{SCHOOL}/staff.csv", Body=b"1")
    for key in [
        f"uploads/{YEAR}/{OTHER}/{SCHOOL}/staff.csv",
        f"uploads/20231/{SCHOOL}/staff.csv",
        f"uploads/{YEAR}/{OTHER}/staff.csv",
    ]:
        denied(lambda key=key: school.put_object(Bucket=store.bucket, Key=key, Body=b"x"))


def test_the_bureau_sends_city_files_and_reads_every_report_and_version(
    store: SeaweedSession,
) -> None:
    bureau = store.client("vetreport-bureau")
    bucket = store.bucket
    bureau.put_object(Bucket=bucket, Key=f"uploads/{YEAR}/_city/city_reference.csv", Body=b"1")
    bureau.get_object(Bucket=bucket, Key=f"published/{YEAR}/latest.json")
    bureau.get_object(Bucket=bucket, Key=f"reports/{YEAR}/{OTHER}/def.json")
    listed = bureau.list_objects_v2(Bucket=bucket, Prefix=f"reports/{YEAR}/")
    assert f"reports/{YEAR}/{SCHOOL}/abc.json" in [item["Key"] for item in listed["Contents"]]
    bureau.list_objects_v2(Bucket=bucket, Prefix="published/")
    for key in [
        f"uploads/{YEAR}/{SCHOOL}/staff.csv",
        f"published/{YEAR}/latest.json",
        f"ledger/{YEAR}/_city/school_registry/x.json",
        f"curated/school_registry/year={YEAR}/school=_city/x.parquet",
        f"reports/{YEAR}/_city/forged.json",
    ]:
        denied(lambda key=key: bureau.put_object(Bucket=bucket, Key=key, Body=b"x"))
    denied(lambda: bureau.get_object(Bucket=bucket, Key=f"uploads/{YEAR}/{OTHER}/staff.csv"))
    denied(lambda: bureau.list_objects_v2(Bucket=bucket, Prefix="uploads/"))
    denied(lambda: bureau.delete_object(Bucket=bucket, Key=f"published/{YEAR}/latest.json"))


def test_the_pipeline_reads_writes_lists_and_deletes_everywhere(store: SeaweedSession) -> None:
    pipeline = store.client("vetreport-pipeline")
    bucket = store.bucket
    for zone in ["curated/x", "ledger/x", "published/x", "quarantine/x", "reports/x"]:
        pipeline.put_object(Bucket=bucket, Key=f"{zone}/probe.json", Body=b"{}")
        pipeline.get_object(Bucket=bucket, Key=f"{zone}/probe.json")
        pipeline.delete_object(Bucket=bucket, Key=f"{zone}/probe.json")
    keys = [item["Key"] for item in pipeline.list_objects_v2(Bucket=bucket)["Contents"]]
    assert f"uploads/{YEAR}/{OTHER}/staff.csv" in keys
    # put-if-absent, which the ledger relies on, works under the pipeline's identity
    with pytest.raises(ClientError) as caught:
        pipeline.put_object(
            Bucket=bucket, Key=f"ledger/{YEAR}/{OTHER}/staff/x.json", Body=b"2", IfNoneMatch="*"
        )
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def test_unsigned_requests_are_refused(store: SeaweedSession) -> None:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    anonymous = boto3.client(
        "s3",
        endpoint_url=store.endpoint,
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED),
    )
    denied(lambda: anonymous.list_objects_v2(Bucket=store.bucket))
    denied(lambda: anonymous.get_object(Bucket=store.bucket, Key=f"published/{YEAR}/latest.json"))
