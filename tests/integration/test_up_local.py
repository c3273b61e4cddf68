"""`vetreport up` on the embedded default, as an operator runs it, with the walkthrough's files.

No PREFECT_API_URL: the command finds no server on its port, starts one (SQLite under the
test's var folder), serves the deployments and watches the local bucket. The test then
copies the walkthrough's files into uploads/ the way a person would (``cp``): first the
file with errors (a rejected report, tables untouched), then the corrected one (an accepted
report and a new published version), and finds the runs and artifacts in Prefect.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import flow_runs, free_port, seed_demo_year, wait_for
from vetreport.bucket.store import open_store
from vetreport.curate.ledger import read_records
from vetreport.demo import walkthrough
from vetreport.publish.reader import read_pointer
from vetreport.serve.prefect_server import is_healthy, stop_process_group

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
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
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(
        VETREPORT_VAR_DIR=str(base / "var"),
        VETREPORT_PREFECT_PORT=str(port),
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
            yield {"bucket": bucket, "store": open_store(bucket), "log": log, "api": api_url}
    finally:
        stop_process_group(process)
        subprocess.run(
            [sys.executable, "-m", "vetreport.cli.main", "server", "stop"],
            cwd=ROOT,
            env=env,
            check=False,
        )
        wait_for(lambda: not is_healthy(api_url, 1), 60, "the local server to stop")


def records_of(store: Any, outcome: str) -> list[dict[str, Any]]:
    return [
        record
        for record in read_records(store, [YEAR])
        if record["key"] == TARGET and record["outcome"] == outcome
    ]


def published_version(store: Any) -> int:
    return (read_pointer(store, YEAR) or {}).get("version", 0)


def artifact_keys() -> set[str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return {artifact.key for artifact in client.read_artifacts(limit=200) if artifact.key}


def test_up_started_its_own_server_and_serves_the_deployments(up: dict[str, Any]) -> None:
    text = up["log"].read_text(errors="replace")
    assert f"Prefect API: {up['api']}" in text
    assert "ingest-upload/on-upload" in text and "sweep/every-minute" in text
    assert is_healthy(up["api"])


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


def test_the_corrected_file_is_accepted_and_republished(up: dict[str, Any]) -> None:
    store, bucket = up["store"], up["bucket"]
    before = published_version(store)
    accepted_before = len(records_of(store, "accepted"))
    shutil.copyfile(walkthrough.EXAMPLES_DIR / "graduates-corrected.csv", bucket / TARGET)
    wait_for(
        lambda: len(records_of(store, "accepted")) > accepted_before, 90, "the accepted report"
    )
    wait_for(lambda: published_version(store) > before, 120, "a new published version")
    pointer = read_pointer(store, YEAR) or {}
    changelog = json.loads(store.get(pointer["prefix"] + "changelog.json"))
    changed = {entry["table_id"] for entry in changelog["tables"] if entry["change"] == "changed"}
    assert {"employment", "scorecard"} <= changed

    runs = [
        run for run in flow_runs("ingest-upload") if run.name == "ingest-2023-3133060002-graduates"
    ]
    assert len(runs) == 2 and all(run.state and run.state.is_completed() for run in runs)
    wait_for(
        lambda: any(run.state and run.state.is_completed() for run in flow_runs("aggregate")),
        60,
        "the aggregate run to complete",
    )
    assert {
        "report-2023-3133060002-graduates",
        "completeness-2023",
        "publish-2023",
    } <= artifact_keys()
