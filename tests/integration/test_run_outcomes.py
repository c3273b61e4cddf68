"""What an operator sees of the flows in Prefect: outcome tags, the Rejected state, artifacts.

The flows run against the session's Prefect test server (a real API over HTTP, SQLite),
on a local bucket seeded with part of the demo year, with the walkthrough's two files:
the state names, tags, task runs and artifacts are read back through the API, as the UI
reads them.
"""

from __future__ import annotations

import re
import shutil
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, seed_demo_year
from vetreport.bucket.store import open_store
from vetreport.demo import walkthrough
from vetreport.serve.files import make_file_server

pytestmark = pytest.mark.integration
YEAR = walkthrough.YEAR
SCHOOL = walkthrough.SCHOOL
TARGET = walkthrough.UPLOAD_KEY
SEEDED = ("/_city/", "/school_profile.", "/graduates.")  # enough for 表5 and 附表1
STAFF_HEADER = "学校代码,教职工编号,是否在编,是否专任教师,最高学历,专业技术职称"


@pytest.fixture(scope="module")
def bucket(
    prefect_server: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The seeded bucket, with the file server its links point at (as `vetreport up` runs)."""
    root = tmp_path_factory.mktemp("outcomes") / "bucket"
    store = open_store(root)
    uploads = seed_demo_year(store, YEAR, SEEDED)
    schools = sorted({key.split("/")[2] for key in uploads} - {"_city", SCHOOL})
    port = free_port()
    files = make_file_server(root, port)
    threading.Thread(target=files.serve_forever, daemon=True).start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VETREPORT_FILES_PORT", str(port))
        yield {"root": root, "url": str(root), "store": store, "schools": schools, "port": port}
    files.shutdown()
    files.server_close()


def read_run(run_id: Any) -> Any:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def task_names(run_id: Any) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
    return {run.name.rsplit("-", 1)[0] for run in runs}


def run_ids_with_state_name(name: str) -> set[Any]:
    """The runs a UI filter on the state name finds (``flow_run.state.name``)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateName,
    )

    flow_filter = FlowRunFilter(state=FlowRunFilterState(name=FlowRunFilterStateName(any_=[name])))
    with get_client(sync_client=True) as client:
        return {run.id for run in client.read_flow_runs(flow_run_filter=flow_filter)}


def run_ids_with_tag(tag: str) -> set[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterTags

    flow_filter = FlowRunFilter(tags=FlowRunFilterTags(all_=[tag]))
    with get_client(sync_client=True) as client:
        return {run.id for run in client.read_flow_runs(flow_run_filter=flow_filter)}


def artifacts_of(run_id: Any) -> dict[str, Any]:
    """The artifacts a flow run created, by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    return {artifact.key: artifact for artifact in found}


def links_in(markdown: str) -> dict[str, str]:
    return dict(re.findall(r"\[([^\]]+)\]\((http[^)]+)\)", markdown))


def opens(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.status == 200
        return reply.read()


def drop_in(bucket: dict[str, Any], name: str) -> None:
    target: Path = bucket["root"] / TARGET
    shutil.copyfile(walkthrough.EXAMPLES_DIR / name, target)


def test_a_rejected_upload_ends_its_run_rejected_and_announces_the_data_it_took_away(
    bucket: dict[str, Any],
) -> None:
    from flows.ingest import ingest_upload

    drop_in(bucket, "graduates-with-errors.csv")
    state = ingest_upload(
        bucket["url"], TARGET, YEAR, SCHOOL, walkthrough.DATASET, return_state=True
    )
    assert state.result()["outcome"] == "rejected"  # callers still get the ingest result
    run = read_run(state.state_details.flow_run_id)
    assert run.state.is_completed() and run.state.name == "Rejected"
    assert run.state_name == "Rejected"
    assert "rejected" in run.state.message and "field.enum" in run.state.message
    assert {"outcome:rejected", f"year:{YEAR}", f"school:{SCHOOL}", "graduates"} <= set(run.tags)
    assert not {"outcome:accepted", "outcome:accepted_with_warnings"} & set(run.tags)
    # the refused file replaced the school's accepted one under the same name: what that
    # key counted is gone, so the change is announced (and re-aggregated)
    assert task_names(run.id) == {"ingest-batch", "announce-counted-changes"}
    assert run.id in run_ids_with_state_name("Rejected")
    assert run.id not in run_ids_with_state_name("Completed")
    assert run.id in run_ids_with_tag("outcome:rejected")

    artifact = artifacts_of(run.id)[f"report-{YEAR}-{SCHOOL}-graduates"]
    assert artifact.type == "markdown"
    assert "| 错误 error | `field.enum` | — | 3 | 毕业去向 | 打工 | 取值不在允许的选项中 |" in (
        artifact.data
    )
    assert "**5 错误 errors · 2 警告 warnings**" in artifact.data
    assert "file://" not in artifact.data
    links = links_in(artifact.data)
    assert links["报告 report (HTML)"].startswith(f"http://127.0.0.1:{bucket['port']}/reports/")
    assert "毕业去向" in opens(links["报告 report (HTML)"]).decode("utf-8")
    assert opens(links["批注工作簿 annotated workbook"]).startswith(b"PK")  # a workbook


def test_an_accepted_upload_completes_and_emits_its_accepted_event(
    bucket: dict[str, Any],
) -> None:
    from flows.ingest import ingest_upload

    drop_in(bucket, "graduates-corrected.csv")
    state = ingest_upload(
        bucket["url"], TARGET, YEAR, SCHOOL, walkthrough.DATASET, return_state=True
    )
    run = read_run(state.state_details.flow_run_id)
    assert run.state.is_completed() and run.state.name == "Completed"
    assert "accepted" in run.state.message
    assert {"outcome:accepted", f"year:{YEAR}", f"school:{SCHOOL}"} <= set(run.tags)
    assert "outcome:rejected" not in run.tags
    assert task_names(run.id) == {"ingest-batch", "announce-counted-changes"}
    assert run.id not in run_ids_with_state_name("Rejected")

    again = ingest_upload(
        bucket["url"], TARGET, YEAR, SCHOOL, walkthrough.DATASET, return_state=True
    )  # the same version again: nothing to do
    rerun = read_run(again.state_details.flow_run_id)
    assert rerun.state.name == "Completed" and "already processed" in rerun.state.message
    assert "already-processed" in rerun.tags
    assert not [tag for tag in rerun.tags if tag.startswith("outcome:")]
    assert task_names(rerun.id) == {"ingest-batch"}


def test_an_upload_another_run_is_ingesting_is_skipped_not_called_missing(
    bucket: dict[str, Any],
) -> None:
    """The sweep's batch marked this version as being processed a moment before the
    event's run came (seen in the event storm): the run skips it, saying so, rather than
    reporting the file as gone."""
    import json
    from datetime import UTC, datetime

    from flows.ingest import ingest_upload
    from vetreport.bucket.keys import submission_id
    from vetreport.curate.ingest import ATTEMPTS_PREFIX

    store = open_store(bucket["url"])
    staff = f"uploads/{YEAR}/{SCHOOL}/staff.csv"
    store.put(staff, f"{STAFF_HEADER}\n{SCHOOL},T00001,是,是,大学本科,中级\n".encode())
    marker = f"{ATTEMPTS_PREFIX}another-worker.marker"
    store.put(  # what another live worker's batch writes before it reads anything
        marker,
        json.dumps(
            {
                "submissions": [submission_id(staff, store.head(staff).version_token)],
                "keys": [staff],
                "attempts": 1,
                "started_at": datetime.now(UTC).isoformat(),
            }
        ).encode(),
    )
    try:
        state = ingest_upload(bucket["url"], staff, YEAR, SCHOOL, "staff", return_state=True)
    finally:
        store.delete(marker)
    run = read_run(state.state_details.flow_run_id)
    assert run.state.name == "Completed"
    assert "being ingested by another run" in run.state.message
    assert "already-processed" in run.tags
    assert not [tag for tag in run.tags if tag.startswith("outcome:")]


def test_a_batch_run_is_tagged_once_for_each_outcome_it_produced(bucket: dict[str, Any]) -> None:
    from flows.ingest import ingest_uploads

    good, bad = bucket["schools"][:2]
    rows = [f"{good},T{index:05d},是,是,大学本科,中级" for index in range(30)]
    bucket["store"].put(
        f"uploads/{YEAR}/{good}/staff.csv", ("\n".join([STAFF_HEADER, *rows]) + "\n").encode()
    )
    bucket["store"].put(
        f"uploads/{YEAR}/{bad}/staff.csv", f"学校代码,教职工编号,是否在编\n{bad},T1,也许\n".encode()
    )
    state = ingest_uploads(
        bucket["url"],
        [f"uploads/{YEAR}/{good}/staff.csv", f"uploads/{YEAR}/{bad}/staff.csv"],
        label="two-schools",
        return_state=True,
    )
    assert [result["outcome"] for result in state.result()] == ["accepted", "rejected"]
    run = read_run(state.state_details.flow_run_id)
    outcome_tags = sorted(tag for tag in run.tags if tag.startswith("outcome:"))
    assert outcome_tags == ["outcome:accepted", "outcome:rejected"]
    assert task_names(run.id) == {"ingest-batch", "announce-counted-changes"}


def test_the_publish_artifact_lists_the_changed_tables_with_links_that_open(
    bucket: dict[str, Any],
) -> None:
    import json

    from flows.aggregate import aggregate_and_publish
    from vetreport.publish.reader import read_table_bytes, read_version_file

    # the earlier tests accepted the corrected graduates and one school's staff file
    state = aggregate_and_publish(bucket["url"], YEAR, return_state=True)
    summary = state.result()
    assert summary["is_new_version"] and summary["version"] == 2
    artifact = artifacts_of(state.state_details.flow_run_id)[f"publish-{YEAR}"]
    assert artifact.type == "markdown"
    changelog = json.loads(read_version_file(bucket["store"], YEAR, "changelog.json", 2))
    changed = [entry["table_id"] for entry in changelog["tables"] if entry["change"] != "unchanged"]
    unchanged = len(changelog["tables"]) - len(changed)
    assert "employment" in changed and unchanged > 0
    listed = re.findall(r"^\| [^|]+ \| `([a-z0-9_]+)` \|", artifact.data, re.MULTILINE)
    assert listed == changed
    cells = changelog["summary"]["cells_changed"]
    assert f"{cells} cells changed" in artifact.data
    assert f"{unchanged} unchanged not listed" in artifact.data
    assert "file://" not in artifact.data
    employment = re.search(r"`employment` .*\[csv\]\((http[^)]+)\)", artifact.data)[1]
    assert employment.startswith(f"http://127.0.0.1:{bucket['port']}/published/{YEAR}/v2/")
    assert opens(employment) == read_table_bytes(bucket["store"], "employment", YEAR, 2, "csv")
    assert b"<html" in opens(links_in(artifact.data)["报告 report"]).lower()
