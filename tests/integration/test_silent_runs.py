"""A service run whose process died stops beating, is marked Crashed, and gives back the
sweep deployment's concurrency slot (vetreport/serve/automations.py, flows/service.py).

On a real ``prefect server start`` on PostgreSQL: the sweep deployment is made from the
service's own spec (limit 1, CANCEL_NEW), one of its runs takes the slot and sends one
heartbeat as the engine does, then nothing, as when ``vetreport serve`` is SIGKILLed in
the middle of a sweep. Without the automation every later sweep is cancelled until the
lease runs out (five minutes); with it the silent run is Crashed after its window and the
next sweep runs.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tests.conftest import wait_for
from tests.service_harness import start_prefect_server
from vetreport.serve.automations import HEARTBEAT_TAG
from vetreport.serve.prefect_server import stop_process_group

pytestmark = pytest.mark.service

SILENT_SECONDS = 10  # the test's window; the service uses three heartbeats (90 s)


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory: pytest.TempPathFactory, prefect_database_url: str) -> Iterator:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    home = tmp_path_factory.mktemp("silent-runs-prefect")
    process, url = start_prefect_server(Path(home), prefect_database_url)
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield url
    finally:
        stop_process_group(process)


def _sweep_deployment_id(store_url: str, heartbeat_seconds: int = 30) -> UUID:
    from flows.service import deployment_specs
    from vetreport.settings import Settings

    settings = Settings(run_heartbeat_seconds=heartbeat_seconds)
    flow, options = next(
        (flow, options)
        for flow, options in deployment_specs(store_url, settings)
        if options["name"] == "every-minute"
    )
    options = {key: value for key, value in options.items() if key != "schedules"}
    return flow.to_deployment(**options).apply()


def _propose(client: Any, run_id: UUID, state: Any) -> str:
    return client.set_flow_run_state(run_id, state).status.value


def _heartbeat(run: Any) -> None:
    """The event the engine sends every PREFECT_FLOWS_HEARTBEAT_FREQUENCY seconds."""
    from prefect.events import emit_event
    from prefect.events.related import tags_as_related_resources
    from prefect.events.worker import EventsWorker

    emit_event(
        event="prefect.flow-run.heartbeat",
        resource={"prefect.resource.id": f"prefect.flow-run.{run.id}"},
        related=[
            {
                "prefect.resource.id": f"prefect.flow.{run.flow_id}",
                "prefect.resource.role": "flow",
            },
            *[dict(tag) for tag in tags_as_related_resources(set(run.tags))],
        ],
    )
    EventsWorker.drain_all()


def _start_run(client: Any, deployment_id: UUID) -> tuple[Any, str]:
    from prefect.states import Pending

    run = client.create_flow_run_from_deployment(deployment_id)
    return run, _propose(client, run.id, Pending())


@pytest.mark.parametrize("killed", ["running", "starting"])
def test_a_silent_run_is_crashed_and_frees_the_sweep_slot(prefect_api: str, killed: str) -> None:
    """Killed after its first heartbeat, or while Pending (before its process beat once)."""
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Running

    from vetreport.serve.automations import ensure_silent_run_automation

    ensure_silent_run_automation(SILENT_SECONDS)
    deployment_id = _sweep_deployment_id("file:///nowhere")
    with get_client(sync_client=True) as client:
        held, status = _start_run(client, deployment_id)
        assert status == "ACCEPT"
        assert HEARTBEAT_TAG in held.tags
        if killed == "running":
            assert _propose(client, held.id, Running()) == "ACCEPT"
            _heartbeat(held)
        started = time.monotonic()

        # the slot is held: a sweep started now is refused (CANCEL_NEW)
        refused, status = _start_run(client, deployment_id)
        assert status != "ACCEPT"
        assert client.read_flow_run(refused.id).state.type.value == "CANCELLED"

        crashed = wait_for(
            lambda: client.read_flow_run(held.id).state.is_crashed(),
            SILENT_SECONDS + 60,
            f"the run silent since {killed} to be marked Crashed",
            step=1,
        )
        assert crashed
        assert time.monotonic() - started >= SILENT_SECONDS - 1
        message = client.read_flow_run(held.id).state.message or ""
        assert "heartbeat" in message

        # its slot was released with the crash: the next sweep runs
        following, status = _start_run(client, deployment_id)
        assert status == "ACCEPT"
        _propose(client, following.id, Running())
        assert _propose(client, following.id, Completed()) == "ACCEPT"


def test_a_run_that_keeps_beating_or_ends_is_left_alone(prefect_api: str) -> None:
    """A live run beats again inside the window; a run that ended said so: neither is
    crashed. Runs of deployments without the heartbeat tag are not watched."""
    from prefect.client.orchestration import get_client
    from prefect.states import Completed, Running

    from vetreport.serve.automations import ensure_silent_run_automation

    ensure_silent_run_automation(SILENT_SECONDS)
    deployment_id = _sweep_deployment_id("file:///elsewhere")
    with get_client(sync_client=True) as client:
        alive, status = _start_run(client, deployment_id)
        assert status == "ACCEPT"
        _propose(client, alive.id, Running())
        _heartbeat(alive)
        deadline = time.monotonic() + SILENT_SECONDS * 1.8
        while time.monotonic() < deadline:
            time.sleep(SILENT_SECONDS / 3)
            _heartbeat(alive)
        assert client.read_flow_run(alive.id).state.is_running()

        _heartbeat(alive)
        _propose(client, alive.id, Completed())

        # a deployment whose runs were not told to beat (a work pool's, say): not watched
        unwatched_id = _sweep_deployment_id("file:///elsewhere", heartbeat_seconds=0)
        unwatched, status = _start_run(client, unwatched_id)
        assert status == "ACCEPT" and HEARTBEAT_TAG not in unwatched.tags
        time.sleep(SILENT_SECONDS + 6)
        assert client.read_flow_run(alive.id).state.is_completed()
        assert client.read_flow_run(unwatched.id).state.type.value == "PENDING"
        _propose(client, unwatched.id, Running())
        _propose(client, unwatched.id, Completed())
