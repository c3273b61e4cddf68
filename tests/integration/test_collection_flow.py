"""One school through the collection, on the session's Prefect test server.

Upload with a warning that needs explaining → explanations uploaded → sign-off → the
bureau approves through the paused approval run's input, submitted through the Prefect API
as the UI submits it → locked, final version published → a late upload changes nothing
and is reported as locked (its run's state is named "Locked") → reopened → the held
upload counts and a revision is published with a changelog. Each step reads the status word
shown to the school (its upload list) and in the school's status artifact.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import seed_demo_year, wait_for
from vetreport.bucket.store import ObjectStore, open_store
from vetreport.demo.generator import build_demo_uploads
from vetreport.publish.reader import read_pointer
from vetreport.publish.writer import FINAL

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
YEAR = 2023
SCHOOL = "3133060002"
SEEDED = ("/_city/", "/school_profile.", "/graduates.")
GRADUATES = f"uploads/{YEAR}/{SCHOOL}/graduates.csv"
QUIET_ROW = f"{SCHOOL},G2307dc9697,中餐烹饪,单考单招,,,否"


@pytest.fixture(scope="module")
def bucket(prefect_server: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("collection") / "bucket"
    seed_demo_year(open_store(root), YEAR, SEEDED)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VETREPORT_OPEN_YEARS", str(YEAR))
        yield str(root)


def demo_graduates() -> str:
    return build_demo_uploads(YEAR)[GRADUATES].decode("utf-8-sig")


def shown_to_school(store: ObjectStore) -> str:
    page = store.get(f"reports/{YEAR}/{SCHOOL}/index.html").decode()
    start = page.index('class="state"')
    return page[page.index(">", start) + 1 : page.index("</span>", start)]


def artifact_word() -> str:
    """The state word of the school's status artifact, as the UI's artifact page shows it."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        [artifact] = client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[f"collection-{YEAR}-{SCHOOL}"])
            )
        )
    return str(artifact.description).rsplit(": ", 1)[-1]


def completeness_artifact() -> tuple[str, str]:
    """The school's 状态 in the year's completeness artifact, and the artifact's counts."""
    import json

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        [artifact] = client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"completeness-{YEAR}"]))
        )
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    [row] = [row for row in rows if row["school_code"] == SCHOOL]
    return row["状态"], str(artifact.description)


def upload(store_url: str, name: str, body: bytes) -> Any:
    """The school puts a file; the ingest-upload flow runs as its event would start it."""
    from flows.ingest import ingest_upload

    store = open_store(store_url)
    key = f"uploads/{YEAR}/{SCHOOL}/{name}"
    store.put(key, body)
    return ingest_upload(store_url, key, YEAR, SCHOOL, name.split(".")[0], return_state=True)


def step(store_url: str, word: str) -> None:
    store = open_store(store_url)
    assert (shown_to_school(store), artifact_word()) == (word, word)


def paused_run(name: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))
        )
    return next((run for run in runs if run.state and run.state.is_paused()), None)


def test_one_school_from_warnings_to_a_revision(bucket: str) -> None:
    from prefect.client.orchestration import get_client

    from flows.aggregate import aggregate_and_publish
    from flows.collection import approve_signoff, reopen_school

    store = open_store(bucket)
    with_warning = demo_graduates().replace(
        QUIET_ROW, QUIET_ROW.replace(",单考单招,,", ",单考单招,是,")
    )
    assert with_warning != demo_graduates()
    state = upload(bucket, "graduates.csv", with_warning.encode())
    assert state.result()["outcome"] == "accepted_with_warnings"
    step(bucket, "待说明")

    # the pre-filled explanations file beside the school's page, with a reason written in
    offered = store.get(f"reports/{YEAR}/{SCHOOL}/explanations.csv").decode("utf-8-sig")
    rows = offered.splitlines()
    assert len(rows) == 2 and "row.matched_only_if_employed" in rows[1]
    filled = "\n".join([rows[0], rows[1] + "该生先就业后参加单考单招，对口情况按就业时记录"])
    state = upload(bucket, "explanations.csv", (filled + "\n").encode())
    assert state.result()["outcome"] == "accepted"
    step(bucket, "已提交")

    state = upload(bucket, "signoff.json", '{"signed_by": "校长"}'.encode())
    assert state.result()["outcome"] == "signed_off"
    step(bucket, "已确认")

    # the bureau decides in the UI: the approval run pauses with its form
    outcome: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: outcome.update(approve_signoff(bucket, YEAR, SCHOOL)), daemon=True
    )
    runner.start()
    paused = wait_for(lambda: paused_run(f"approve-{YEAR}-{SCHOOL}"), 60, "the paused approval")
    assert paused.state.state_details.run_input_keyset  # it waits for a typed input
    with get_client(sync_client=True) as client:
        client.resume_flow_run(paused.id, run_input={"approve": True, "note": ""})
    runner.join(60)
    assert outcome["state"] == "locked" and outcome["approved"]
    step(bucket, "已锁定")
    final = aggregate_and_publish(bucket, YEAR, FINAL)
    assert final["status"] == FINAL
    word, counts = completeness_artifact()
    assert word == "已锁定" and "已锁定 1" in counts and "已提交 16" in counts

    # a late upload: kept, reported as locked, counts nothing, publishes nothing
    late = demo_graduates().replace(
        f"{SCHOOL},G2301067446,中餐烹饪,直接就业,是,3300,",
        f"{SCHOOL},G2301067446,中餐烹饪,直接就业,是,9300,",
    )
    assert late != demo_graduates()
    state = upload(bucket, "graduates.csv", late.encode())
    assert state.name == "Locked" and state.result()["outcome"] == "held"
    report_page = store.get(state.result()["report_key"].replace(".json", ".html")).decode()
    assert "已锁定：已转交教育局作为修订" in report_page
    step(bucket, "已锁定")
    unchanged = aggregate_and_publish(bucket, YEAR)
    assert (unchanged["is_new_version"], unchanged["version"]) == (False, final["version"])

    # reopened: the held upload is ingested and a revision is published with a changelog
    reopened = reopen_school(bucket, YEAR, SCHOOL, "同意修订起薪")
    assert reopened["ingested"] == [GRADUATES]
    step(bucket, "修订中")
    revision = aggregate_and_publish(bucket, YEAR)
    assert revision["is_new_version"] and revision["version"] == final["version"] + 1
    assert (revision["status"], revision["revision_of"]) == ("revision", final["version"])
    assert (read_pointer(store, YEAR) or {})["version"] == revision["version"]
    assert completeness_artifact()[0] == "修订中"
    changelog = store.get(f"{revision['prefix']}changelog.md").decode()
    assert "graduates" in changelog
