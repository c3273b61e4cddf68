"""The running service end to end: moto S3 -> SQS notifications -> served Prefect deployments.

A full ``prefect server start`` on PostgreSQL (a database made for the test session, as in
production; SQLite stays the default of ``make demo`` and ``make up``) is used rather than
the test harness, because the harness's ephemeral server runs neither the scheduler (the
sweep) nor proactive triggers (the debounced aggregation). ``vetreport serve`` runs in a
subprocess against it, polling the queue that the moto bucket notifies: moto here, not
SeaweedFS, because SeaweedFS sends no S3 notifications to SQS.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import flow_runs, wait_for
from tests.service_harness import Recorder, running_service, start_prefect_server
from vetreport.bucket.keys import submission_id
from vetreport.curate.ledger import (
    current_submissions,
    current_upload_versions,
    processed_submission_ids,
    read_records,
)
from vetreport.publish.reader import read_pointer
from vetreport.serve.prefect_server import is_healthy, stop_process_group

pytestmark = [pytest.mark.integration, pytest.mark.serial, pytest.mark.timeout(1200)]
SEEDED = ("/_city/", "/school_profile.", "/staff.")  # enough for a registry and tables
YEAR = 2023
ROOT = Path(__file__).resolve().parents[2]
HEADER = "学校代码,教职工编号,是否在编,是否专任教师,最高学历,专业技术职称"


def staff_csv(school: str, rows: int) -> bytes:
    lines = [HEADER, *(f"{school},T{index:05d},是,是,大学本科,中级" for index in range(rows))]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def service(
    s3_endpoint: str, prefect_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("prefect")
    with running_service(s3_endpoint, prefect_database_url, home, YEAR, SEEDED) as running:
        yield running


def named_runs(name: str) -> list[Any]:
    return [run for run in flow_runs("ingest-upload") if run.name == name and run.state]


def report_artifact(key: str) -> Any:
    """The latest artifact with this key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return found[0]


def record_for(service: dict, key: str, version: str) -> dict | None:
    """The ledger record of one upload, named by its version token (ETag and time)."""
    wanted = submission_id(key, version)
    for record in read_records(service["store"], [YEAR]):
        if record["submission_id"] == wanted:
            return record
    return None


def put_version(service: dict, key: str, body: bytes) -> tuple[str, str]:
    """Upload as a school would; return the bucket's version id (what a notification
    names) and the version token the pipeline names the upload by (ETag and time)."""
    reply = service["s3"].put_object(Bucket=service["bucket"], Key=key, Body=body)
    return reply["VersionId"], service["store"].head(key).version_token


def put(service: dict, key: str, body: bytes) -> str:
    """Upload as a school would; return the upload's version token."""
    return put_version(service, key, body)[1]


def published_version(service: dict) -> int:
    return (read_pointer(service["store"], YEAR) or {}).get("version", 0)


def test_upload_notification_ingest_aggregate_publish(service: dict) -> None:
    school = service["schools"][0]
    key = f"uploads/{YEAR}/{school}/staff.csv"
    before = published_version(service)
    started = datetime.now(UTC)
    version = put(service, key, staff_csv(school, 33))
    record = wait_for(lambda: record_for(service, key, version), 60, "the ledger record")
    assert record["outcome"] == "accepted"
    report = json.loads(service["store"].get(record["report_key"]))
    assert report["outcome"] == "accepted"
    named = [
        run for run in flow_runs("ingest-upload") if run.name == f"ingest-{YEAR}-{school}-staff"
    ]
    assert named and {f"year:{YEAR}", f"school:{school}", "staff"} <= set(named[-1].tags)
    wait_for(lambda: published_version(service) > before, 90, "the republished tables")

    def latest_run_finished() -> Any:
        runs = sorted(named_runs(f"ingest-{YEAR}-{school}-staff"), key=lambda r: r.created)
        return runs[-1] if runs and runs[-1].state.is_final() else None

    run = wait_for(latest_run_finished, 30, "the ingest run to finish")
    if "already-processed" in run.tags:
        # the scheduled sweep ingested this version before (or while) the event's run: the
        # sweep's batch run has the outcome, and there is no per-upload artifact to check
        def sweep_accepted() -> bool:
            batches = [r for r in flow_runs("ingest") if r.created and r.created >= started]
            return any("outcome:accepted" in batch.tags for batch in batches)

        wait_for(sweep_accepted, 60, "the sweep's batch run to be tagged accepted")
        return
    assert "outcome:accepted" in run.tags and run.state_name == "Completed"
    # the report artifact links to the bucket with presigned URLs that open
    artifact = report_artifact(f"report-{YEAR}-{school}-staff")
    assert artifact.type == "markdown" and "file://" not in artifact.data
    link = re.search(r"\[JSON\]\((http[^)]+)\)", artifact.data)[1]
    assert record["report_key"] in link and "X-Amz-Signature=" in link
    with urllib.request.urlopen(link, timeout=10) as reply:
        assert json.loads(reply.read())["outcome"] == "accepted"


def test_the_same_notification_twice_is_processed_once(service: dict) -> None:
    school = service["schools"][1]
    key = f"uploads/{YEAR}/{school}/staff.csv"
    version = put(service, key, staff_csv(school, 44))
    wait_for(lambda: record_for(service, key, version), 60, "the first ledger record")
    etag = service["s3"].head_object(Bucket=service["bucket"], Key=key)["ETag"].strip('"')
    body = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"object": {"key": key.replace("/", "%2F"), "eTag": etag}},
            }
        ]
    }
    count = len(processed_submission_ids(service["store"]))
    for _ in range(2):
        service["sqs"].send_message(QueueUrl=service["queue_url"], MessageBody=json.dumps(body))
    wait_for(
        lambda: (
            service["sqs"].get_queue_attributes(
                QueueUrl=service["queue_url"], AttributeNames=["ApproximateNumberOfMessages"]
            )["Attributes"]["ApproximateNumberOfMessages"]
            == "0"
        ),
        30,
        "the queue to drain",
    )
    time.sleep(4)
    assert len(processed_submission_ids(service["store"])) == count
    wanted = submission_id(key, version)
    records = read_records(service["store"], [YEAR])
    assert sum(1 for record in records if record["submission_id"] == wanted) == 1


def test_notifications_out_of_order_keep_the_newest_upload(service: dict) -> None:
    school = service["schools"][2]
    key = f"uploads/{YEAR}/{school}/staff.csv"
    older, _ = put_version(service, key, staff_csv(school, 51))
    newer = put(service, key, staff_csv(school, 52))
    wait_for(lambda: record_for(service, key, newer), 60, "the newer version's record")
    late = {
        "Records": [
            {
                "eventName": "ObjectCreated:Put",
                "s3": {"object": {"key": key, "versionId": older, "eTag": "late"}},
            }
        ]
    }
    service["sqs"].send_message(QueueUrl=service["queue_url"], MessageBody=json.dumps(late))
    time.sleep(5)
    store = service["store"]
    current = current_submissions(
        read_records(store, [YEAR]), current_upload_versions(store, [YEAR])
    )
    row = current.filter(
        (current["submitter"] == school) & (current["dataset"] == "staff")
    ).to_dicts()
    assert [entry["submission_id"] for entry in row] == [submission_id(key, newer)]


def test_a_lost_notification_is_caught_by_the_sweep(service: dict) -> None:
    school = service["schools"][3]
    key = f"uploads/{YEAR}/{school}/staff.csv"
    s3, bucket = service["s3"], service["bucket"]
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    try:
        version = put(service, key, staff_csv(school, 77))
    finally:
        s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration=service["notifications"]
        )
    record = wait_for(lambda: record_for(service, key, version), 60, "the sweep")
    assert record["outcome"] == "accepted"


def test_a_failed_run_calls_the_failure_webhook(service: dict) -> None:
    from prefect.deployments import run_deployment

    run_deployment(
        "aggregate/on-accepted",
        parameters={"store_url": "nosuch://bucket", "report_year": YEAR},
        timeout=0,
    )
    wait_for(lambda: Recorder.calls, 90, "the webhook call")
    payload = json.loads(Recorder.calls[0]["body"])
    assert payload["state"] == "Failed" and payload["flow_run"] == f"aggregate-{YEAR}"


def test_the_server_keeps_its_runs_in_postgres(service: dict, prefect_database_url: str) -> None:
    import asyncio

    import asyncpg

    async def count_runs() -> int:
        url = prefect_database_url.replace("postgresql+asyncpg://", "postgresql://")
        connection = await asyncpg.connect(url, timeout=10)
        try:
            return await connection.fetchval("SELECT count(*) FROM flow_run")
        finally:
            await connection.close()

    assert asyncio.run(count_runs()) >= len(flow_runs("ingest-upload")) > 0


OUTAGE_SECONDS = 30


def test_uploads_while_the_prefect_server_is_down_are_held_then_processed(service: dict) -> None:
    """The server stops for 30 s while three schools upload, then comes back on the same
    port and database: the notifications wait in the queue (the poller deletes a message
    only once Prefect has its events), and every upload is processed and published after."""
    from urllib.parse import urlsplit

    processes = service["processes"]
    before = published_version(service)
    stop_process_group(processes["server"])
    assert not is_healthy(service["api_url"])
    schools = service["schools"][5:8]
    versions = {
        school: put(service, f"uploads/{YEAR}/{school}/staff.csv", staff_csv(school, 90 + i))
        for i, school in enumerate(schools)
    }
    time.sleep(OUTAGE_SECONDS)
    counts = service["sqs"].get_queue_attributes(
        QueueUrl=service["queue_url"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    held = sum(int(value) for value in counts.values())
    assert held >= len(schools), f"notifications were dropped during the outage: {counts}"
    for school, version in versions.items():  # nothing can run without the server
        assert record_for(service, f"uploads/{YEAR}/{school}/staff.csv", version) is None

    port = urlsplit(service["api_url"]).port
    processes["server"], _ = start_prefect_server(
        service["prefect_home"], service["database_url"], port
    )
    # (Prefect's runner gives up on an API that three polls in a row cannot reach; the
    # service starts a new one, or nothing would be processed from here on)
    for school, version in versions.items():
        record = wait_for(
            lambda s=school, v=version: record_for(service, f"uploads/{YEAR}/{s}/staff.csv", v),
            180,
            f"the record of {school}'s upload after the outage",
        )
        assert record["outcome"] == "accepted"
    wait_for(lambda: published_version(service) > before, 120, "the republished tables")


def test_a_sign_off_waits_for_the_bureau_suspended_and_the_decision_locks_the_year(
    service: dict,
) -> None:
    """A served approval run suspends (its process exits: a bureau that takes a week holds
    no runner slot); resumed with the bureau's input through the API, as the UI does, it
    starts again, finds the same sign-off and locks the year."""
    from prefect.client.orchestration import get_client

    from vetreport.curate.collection import LOCKED, SIGNED_OFF, read_school_status

    school, store = service["schools"][9], service["store"]
    put(service, f"uploads/{YEAR}/{school}/signoff.json", '{"signed_by": "教务处"}'.encode())
    wait_for(
        lambda: read_school_status(store, YEAR, school).state == SIGNED_OFF, 120, "the sign-off"
    )

    def suspended() -> Any:
        runs = [
            run for run in flow_runs("approve-signoff") if run.name == f"approve-{YEAR}-{school}"
        ]
        return next((run for run in runs if run.state and run.state.is_paused()), None)

    run = wait_for(suspended, 180, "the approval run to wait for the bureau")
    assert run.state.name == "Suspended" and run.state.state_details.run_input_keyset
    with get_client(sync_client=True) as client:
        client.resume_flow_run(run.id, run_input={"approve": True, "note": ""})
    wait_for(lambda: read_school_status(store, YEAR, school).state == LOCKED, 180, "the lock")
