"""`vetreport up` on the embedded default, as an operator runs it, with the walkthrough's files.

No PREFECT_API_URL: the command finds no server on its port, starts one (SQLite under the
test's var folder), serves the deployments and watches the local bucket. The test then
copies the walkthrough's files into uploads/ the way a person would (``cp``): first the
file with errors (a rejected report, tables untouched), then the corrected one (an accepted
report and a new published version), and finds the runs, their states and tags and the
artifacts in Prefect, and opens the artifacts' links on the file server `up` started.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import flow_runs, free_port, seed_demo_year, wait_for
from vetreport.bucket.store import open_store
from vetreport.curate.ledger import read_records
from vetreport.demo import walkthrough
from vetreport.publish.reader import read_pointer
from vetreport.serve.files import served_by
from vetreport.serve.prefect_server import is_healthy, stop_process_group

pytestmark = [pytest.mark.integration, pytest.mark.serial, pytest.mark.timeout(900)]
ROOT = Path(__file__).resolve().parents[2]
YEAR = walkthrough.YEAR
SEEDED = ("/_city/", "/school_profile.", "/graduates.")  # enough for 表5 and 附表1
TARGET = walkthrough.UPLOAD_KEY


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    base = tmp_path_factory.mktemp("up")
    bucket = base / "bucket"
    seed_demo_year(open_store(bucket), YEAR, SEEDED)
    port = free_port()
    files_port = free_port()
    portal_port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(
        VETREPORT_VAR_DIR=str(base / "var"),
        VETREPORT_PREFECT_PORT=str(port),
        VETREPORT_FILES_PORT=str(files_port),
        VETREPORT_PORTAL_PORT=str(portal_port),
        VETREPORT_DEADLINES="{}",
        PREFECT_HOME=str(base / "prefect-home"),
        PREFECT_UI_ENABLED="false",
    )
    log = base / "up.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "vetreport.cli.main", "up", "--bucket", str(bucket)],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api_url = f"http://127.0.0.1:{port}/api"
    try:

        def serving() -> bool:
            text = log.read_text(errors="replace")
            if process.poll() is not None:
                raise AssertionError(f"`vetreport up` exited with {process.returncode}:\n{text}")
            return "serving:" in text

        wait_for(serving, 240, "`vetreport up`")
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            from prefect.client.orchestration import get_client

            def triggers_ready() -> bool:
                with get_client(sync_client=True) as client:
                    names = {automation.name for automation in client.read_automations()}
                return "vetreport-ingest-on-upload" in names

            wait_for(triggers_ready, 120, "the served deployments' triggers")
            yield {
                "bucket": bucket,
                "store": open_store(bucket),
                "log": log,
                "api": api_url,
                "files": f"http://127.0.0.1:{files_port}",
                "portal": f"http://127.0.0.1:{portal_port}",
            }
    finally:
        stop_process_group(process)
        subprocess.run(
            [sys.executable, "-m", "vetreport.cli.main", "server", "stop"],
            cwd=ROOT,
            env=env,
            check=False,
        )
        wait_for(lambda: not is_healthy(api_url, 1), 60, "the local server to stop")
        wait_for(lambda: served_by(files_port) is None, 30, "the file server to stop")


def records_of(store: Any, outcome: str) -> list[dict[str, Any]]:
    return [
        record
        for record in read_records(store, [YEAR])
        if record["key"] == TARGET and record["outcome"] == outcome
    ]


def published_version(store: Any) -> int:
    return (read_pointer(store, YEAR) or {}).get("version", 0)


def artifacts() -> dict[str, Any]:
    """The latest artifact of each key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import ArtifactSort

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(limit=200, sort=ArtifactSort.CREATED_DESC)
    latest: dict[str, Any] = {}
    for artifact in found:
        if artifact.key:
            latest.setdefault(artifact.key, artifact)
    return latest


def opens(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.status == 200
        return reply.read()


def graduates_runs() -> list[Any]:
    return [
        run for run in flow_runs("ingest-upload") if run.name == "ingest-2023-3133060002-graduates"
    ]


def test_up_started_its_own_server_and_serves_the_deployments(up: dict[str, Any]) -> None:
    text = up["log"].read_text(errors="replace")
    assert f"Prefect API: {up['api']}" in text
    assert f"files / 文件: {up['files']}/reports/" in text
    assert "ingest-upload/on-upload" in text and "sweep/every-minute" in text
    assert is_healthy(up["api"])


def test_up_serves_the_school_portal_beside_the_service(up: dict[str, Any]) -> None:
    assert f"school portal / 学校门户: {up['portal']}" in up["log"].read_text(errors="replace")
    assert "学校登录" in opens(f"{up['portal']}/signin").decode("utf-8")


def test_a_file_with_errors_gets_a_rejected_report_and_its_data_no_longer_counts(
    up: dict[str, Any],
) -> None:
    store, bucket = up["store"], up["bucket"]
    before = published_version(store)
    shutil.copyfile(
        walkthrough.EXAMPLES_DIR / "graduates-with-errors.csv", bucket / TARGET
    )  # `cp`: written in place, not renamed
    [record] = wait_for(lambda: records_of(store, "rejected"), 90, "the rejected report")
    report = json.loads(store.get(record["report_key"]))
    assert {finding["rule_id"] for finding in report["findings"]} >= {
        "field.enum",
        "field.type",
        "field.required",
        "dataset.duplicate_key",
    }
    html_key = record["report_key"].removesuffix(".json") + ".html"
    assert "毕业去向" in store.get(html_key).decode("utf-8")
    listing = json.loads(store.get(f"reports/{YEAR}/{walkthrough.SCHOOL}/index.json"))
    # the school's graduates files, newest first (its seeded school profile is listed too)
    graduates = [upload for upload in listing["uploads"] if upload["key"] == TARGET]
    assert [upload["outcome"] for upload in graduates] == ["rejected", "accepted"]
    # the refused file replaced the accepted one: the object now at the key counts, for
    # nothing, as the school was told; the tables follow
    assert [upload["is_current"] for upload in graduates] == [False, False]
    wait_for(lambda: published_version(store) > before, 120, "the version without the file")
    pointer = read_pointer(store, YEAR) or {}
    changelog = json.loads(store.get(pointer["prefix"] + "changelog.json"))
    changed = {entry["table_id"] for entry in changelog["tables"] if entry["change"] == "changed"}
    assert "employment" in changed

    # In the UI: a run in the Rejected state, tagged outcome:rejected, with its findings
    [run] = wait_for(
        lambda: [r for r in graduates_runs() if r.state and r.state.is_final()], 60, "the run"
    )
    assert run.state.is_completed() and run.state_name == "Rejected"
    assert {"outcome:rejected", f"year:{YEAR}", f"school:{walkthrough.SCHOOL}"} <= set(run.tags)
    report = artifacts()[f"report-{YEAR}-{walkthrough.SCHOOL}-graduates"]
    assert report.type == "markdown" and "| 打工 | 取值不在允许的选项中 |" in report.data
    html = re.search(r"\[报告 report \(HTML\)\]\((http[^)]+)\)", report.data)[1]
    assert html.startswith(up["files"] + "/reports/")
    assert "毕业去向" in opens(html).decode("utf-8")


def test_the_corrected_file_is_accepted_and_republished(up: dict[str, Any]) -> None:
    store, bucket = up["store"], up["bucket"]
    before = published_version(store)
    accepted_before = len(records_of(store, "accepted"))
    copied = datetime.now(UTC)
    shutil.copyfile(walkthrough.EXAMPLES_DIR / "graduates-corrected.csv", bucket / TARGET)
    wait_for(
        lambda: len(records_of(store, "accepted")) > accepted_before, 90, "the accepted report"
    )
    wait_for(lambda: published_version(store) > before, 120, "a new published version")
    pointer = read_pointer(store, YEAR) or {}
    changelog = json.loads(store.get(pointer["prefix"] + "changelog.json"))
    changed = {entry["table_id"] for entry in changelog["tables"] if entry["change"] == "changed"}
    assert {"employment", "scorecard"} <= changed

    runs = wait_for(
        lambda: [r for r in graduates_runs() if r.state and r.state.is_final()], 60, "the runs"
    )
    assert len(runs) == 2 and all(run.state.is_completed() for run in runs)
    assert sorted(run.state_name for run in runs) == ["Completed", "Rejected"]
    [accepted] = [run for run in runs if run.state_name == "Completed"]
    assert "outcome:accepted" in accepted.tags and "outcome:rejected" not in accepted.tags

    def finished_since_the_correction() -> bool:
        # the run that published this version writes its artifact last (after the report
        # document): wait for every aggregate run since the correction, not for any one
        runs = [run for run in flow_runs("aggregate") if run.created and run.created >= copied]
        return bool(runs) and all(run.state and run.state.is_final() for run in runs)

    wait_for(finished_since_the_correction, 120, "the aggregate runs to finish")
    found = artifacts()
    assert {"report-2023-3133060002-graduates", "completeness-2023", "publish-2023"} <= set(found)
    published = found["publish-2023"].data
    listed = re.findall(r"^\| [^|]+ \| `([a-z0-9_]+)` \|", published, re.MULTILINE)
    assert sorted(listed) == sorted(changed) and "unchanged not listed" in published
    employment = re.search(r"`employment` .*\[csv\]\((http[^)]+)\)", published)[1]
    assert opens(employment) == store.get(pointer["prefix"] + "tables/employment.csv")
