"""A sign-off whose event was lost still reaches the bureau, and never twice.

The event ``vetreport.school.signed-off`` starts the approval run; when it is lost (the
Prefect server down, or the service restarting while its automations are recreated), the
nightly rebuild's ``announce-signoffs`` finds the signed-off school with no approval run
waiting and sends it again. A second run of the same sign-off gives way to the first.
Runs on the session's Prefect test server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flows.collection import waiting_signoffs
from tests.conftest import wait_for
from vetreport.bucket.store import LocalStore
from vetreport.curate.collection import sign_off
from vetreport.curate.ingest import ingest_keys

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
YEAR = 2023
SCHOOL = "3133060003"
HEADER = "学校代码,毕业生编号,专业名称,毕业去向,是否对口就业,初次就业月收入"


@pytest.fixture
def signed_off(prefect_server: None, tmp_path: Path) -> Iterator[LocalStore]:
    """A school with one clean upload, signed off by an operator's command."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VETREPORT_OPEN_YEARS", str(YEAR))
        store = LocalStore(tmp_path / "bucket")
        rows = [HEADER, *(f"{SCHOOL},G{n:04d},数控技术,直接就业,是,4200" for n in range(3))]
        key = f"uploads/{YEAR}/{SCHOOL}/graduates.csv"
        store.put(key, ("\n".join(rows) + "\n").encode())
        [result] = ingest_keys(store, [key])
        assert result.outcome == "accepted"
        assert sign_off(store, YEAR, SCHOOL, by="test").status.state_zh == "已确认"
        yield store


def paused_approval() -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[f"approve-{YEAR}-{SCHOOL}"]))
        )
    return next((run for run in runs if run.state and run.state.is_paused()), None)


def test_a_lost_signoff_is_announced_again_once_and_a_second_run_gives_way(
    signed_off: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client

    import flows.collection as collection_flows

    store, bucket = signed_off, str(signed_off.root)
    # just signed off: its event may still be on its way, so nothing is sent yet
    assert waiting_signoffs(store, YEAR) == []
    [(school, signoff)] = waiting_signoffs(store, YEAR, older_than_seconds=0)
    assert school == SCHOOL

    sent: list[dict[str, Any]] = []  # what Prefect's emit_event was given
    monkeypatch.setattr(collection_flows, "emit_event", lambda **event: sent.append(event))
    announced = collection_flows.announce_signoffs_again(bucket, older_than_seconds=0)
    assert announced == [{"year": YEAR, "school": SCHOOL, "signoff": signoff}]
    assert [(e["event"], e["payload"]["signoff"]) for e in sent] == [
        ("vetreport.school.signed-off", signoff)
    ]

    # the announced event starts an approval run: it waits for the bureau with its form
    first: dict[str, Any] = {}
    runner = threading.Thread(
        target=lambda: first.update(collection_flows.approve_signoff(bucket, YEAR, SCHOOL)),
        daemon=True,
    )
    runner.start()
    paused = wait_for(paused_approval, 90, "the paused approval")
    assert f"signoff:{signoff}" in paused.tags
    # a run is waiting now: nothing more is announced
    assert waiting_signoffs(store, YEAR, older_than_seconds=0) == []
    sent.clear()
    assert collection_flows.announce_signoffs_again(bucket, older_than_seconds=0) == []
    assert sent == []

    # a second run of the same sign-off (a duplicate event) gives way at once
    second = collection_flows.approve_signoff(bucket, YEAR, SCHOOL)
    assert second["decided"] is False and second["state"] == "signed_off"

    with get_client(sync_client=True) as client:
        client.resume_flow_run(paused.id, run_input={"approve": True, "note": ""})
    runner.join(90)
    assert first["decided"] and first["state"] == "locked"
    assert waiting_signoffs(store, YEAR, older_than_seconds=0) == []  # locked: none waits


def test_an_approval_run_that_ended_without_a_decision_is_announced_again(
    signed_off: LocalStore,
) -> None:
    """The form timed out (the bureau took longer than the run waits): send it again."""
    import flows.collection as collection_flows

    outcome: dict[str, Any] = {}

    def wait_briefly() -> None:
        try:
            outcome.update(
                collection_flows.approve_signoff(
                    str(signed_off.root), YEAR, SCHOOL, timeout_seconds=2
                )
            )
        except Exception as error:  # the pause timed out: the run fails
            outcome["error"] = error

    runner = threading.Thread(target=wait_briefly, daemon=True)
    runner.start()
    runner.join(120)
    assert "error" in outcome
    [(school, _)] = waiting_signoffs(signed_off, YEAR, older_than_seconds=0)
    assert school == SCHOOL
