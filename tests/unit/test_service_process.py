"""The service's process plumbing: deployments and triggers, the fork server, the local server.

These run without a Prefect server: the deployment specs are plain objects, the fork
server patch is checked against the Prefect code it replaces, and the local-server
lookup is pointed at a stub health endpoint.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from vetreport.receive.events import ACCEPTED_EVENT, UPLOAD_EVENT
from vetreport.serve.prefect_server import ServerConflict, ensure_server, stop_process_group
from vetreport.settings import load_settings


def specs(monkeypatch: pytest.MonkeyPatch, **environment: str) -> dict[str, dict[str, Any]]:
    from flows.service import deployment_specs

    monkeypatch.setenv("VETREPORT_DEADLINES", '{"2023": "2024-03-31T18:00:00+08:00"}')
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    return {
        f"{flow.name}/{options['name']}": options
        for flow, options in deployment_specs("s3://bucket", settings)
    }


def test_the_seven_deployments_and_how_each_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    deployments = specs(monkeypatch, VETREPORT_SWEEP_SECONDS="30")
    assert set(deployments) == {
        "ingest-upload/on-upload",
        "aggregate/on-accepted",
        "sweep/every-minute",
        "rebuild/nightly",
        "approve-signoff/on-signoff",
        "reopen-school/by-operator",
        "remind-schools/on-calendar",
    }
    [approval] = deployments["approve-signoff/on-signoff"]["triggers"]
    assert approval.expect == {"vetreport.school.signed-off"}
    assert approval.parameters["school"] == "{{ event.payload.school }}"
    assert "triggers" not in deployments["reopen-school/by-operator"]
    assert deployments["remind-schools/on-calendar"]["schedules"] == []  # no calendar, no dates

    [ingest] = deployments["ingest-upload/on-upload"]["triggers"]
    assert ingest.expect == {UPLOAD_EVENT} and ingest.posture == "Reactive"
    assert ingest.parameters["key"] == "{{ event.payload.key }}"

    [aggregate] = deployments["aggregate/on-accepted"]["triggers"]
    assert aggregate.posture == "Proactive" and aggregate.for_each == {"vetreport.year"}
    assert aggregate.after == aggregate.expect == {ACCEPTED_EVENT}
    assert aggregate.within == timedelta(seconds=10)
    [deadline] = deployments["aggregate/on-accepted"]["schedules"]
    assert deadline.parameters == {
        "store_url": "s3://bucket",
        "report_year": 2023,
        "status": "final",
    }

    [sweep] = deployments["sweep/every-minute"]["schedules"]
    assert sweep.interval == timedelta(seconds=30)


def test_each_reminder_date_of_the_calendar_is_a_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "VETREPORT_DEADLINES",
        '{"2023": {"open": "2024-01-02T09:00:00+08:00", '
        '"reminders": ["2024-03-01T09:00:00+08:00", "2024-03-15T09:00:00+08:00"], '
        '"school_deadline": "2024-03-20T18:00:00+08:00", '
        '"bureau_lock": "2024-03-28T18:00:00+08:00", '
        '"publication": "2024-03-31T18:00:00+08:00"}}',
    )
    from flows.service import deployment_specs

    deployments = {
        f"{flow.name}/{options['name']}": options
        for flow, options in deployment_specs("s3://bucket", load_settings())
    }
    reminders = deployments["remind-schools/on-calendar"]["schedules"]
    assert [schedule.parameters for schedule in reminders] == [
        {"store_url": "s3://bucket", "year": 2023}
    ] * 2
    assert "DTSTART:20240301T010000Z" in reminders[0].rrule
    [final] = deployments["aggregate/on-accepted"]["schedules"]
    assert "DTSTART:20240331T100000Z" in final.rrule  # the publication moment, as before


def test_the_quiet_window_is_never_below_prefects_minimum(monkeypatch: pytest.MonkeyPatch) -> None:
    deployments = specs(monkeypatch, VETREPORT_AGGREGATE_QUIET_SECONDS="2")
    [aggregate] = deployments["aggregate/on-accepted"]["triggers"]
    assert aggregate.within == timedelta(seconds=10)


def test_the_fork_server_replaces_the_spawn_context_prefect_uses() -> None:
    import prefect.flow_engine as engine

    from flows.prefect_fork_server import use_fork_server

    # The patch stands in for exactly this call; if Prefect changes it, this fails first.
    assert 'multiprocessing.get_context("spawn")' in inspect.getsource(
        engine.run_flow_in_subprocess
    )
    original = engine.multiprocessing
    try:
        use_fork_server()
        use_fork_server()  # idempotent
        context = engine.multiprocessing.get_context("spawn")
        assert context.get_start_method() == "forkserver"
        assert engine.multiprocessing.Process is original.Process  # everything else passes through
    finally:
        engine.multiprocessing = original


class Health(BaseHTTPRequestHandler):
    """A stub Prefect API: health, and the settings that say where its state is."""

    home = ""

    def do_GET(self) -> None:  # noqa: N802
        replies = {
            "/api/health": b"true",
            "/api/admin/settings": json.dumps({"home": Health.home}).encode(),
            "/api/admin/version": b'"3.9.1"',
        }
        body = replies.get(self.path)
        self.send_response(200 if body else 404)
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def healthy_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """A stub server that vetreport started: its home is var/prefect of VETREPORT_VAR_DIR."""
    monkeypatch.setenv("VETREPORT_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setattr(Health, "home", str(tmp_path / "var" / "prefect"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


@pytest.mark.service
def test_an_already_imported_prefect_is_pointed_at_the_local_server(healthy_port: int) -> None:
    # In a fresh interpreter, as the command line runs: Prefect is imported first (the
    # flows import it), then the local server is found; clients must then talk to it.
    script = textwrap.dedent(
        """
        import prefect.flows
        from prefect.settings import get_current_settings
        from vetreport.serve.prefect_server import ensure_server

        url = ensure_server()
        print(url, get_current_settings().api.url)
        """
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env["VETREPORT_PREFECT_PORT"] = str(healthy_port)
    found = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    expected = f"http://127.0.0.1:{healthy_port}/api"
    assert found.stdout.split() == [expected, expected]


@pytest.mark.parametrize("home", ["/home/someone/.prefect", ""])
def test_a_server_on_the_port_that_vetreport_did_not_start_is_refused(
    healthy_port: int, home: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # e.g. the developer's own `prefect server start` on 4200, or another checkout's
    monkeypatch.setattr(Health, "home", home)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("VETREPORT_PREFECT_PORT", str(healthy_port))
    url = f"http://127.0.0.1:{healthy_port}/api"
    with pytest.raises(ServerConflict) as refused:
        ensure_server()
    message = str(refused.value)
    assert f"A Prefect server that vetreport did not start answers on {url}" in message
    assert "Prefect 3.9.1" in message
    assert (f"its PREFECT_HOME is {home}" if home else "does not say where") in message
    assert "VETREPORT_PREFECT_PORT=" in message and f"PREFECT_API_URL={url} make demo" in message
    assert "PREFECT_API_URL" not in os.environ  # nothing was pointed at it


def test_a_configured_api_that_does_not_answer_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    with pytest.raises(RuntimeError, match="does not answer"):
        ensure_server()


@pytest.mark.service
def test_stopping_a_process_group_also_stops_a_child_that_outlives_its_parent() -> None:
    # The parent exits on SIGTERM; its child ignores SIGTERM, like a flow run still
    # reporting to a server that has gone away.
    child = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)"
    parent = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {child!r}])
        print(child.pid, flush=True)
        time.sleep(300)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", parent], stdout=subprocess.PIPE, start_new_session=True, text=True
    )
    assert process.stdout is not None
    child_pid = int(process.stdout.readline())
    time.sleep(0.3)  # let the child install its handler
    started = time.monotonic()
    stop_process_group(process, grace_seconds=1)
    assert process.returncode is not None
    assert time.monotonic() - started < 10
    deadline = time.monotonic() + 5  # SIGKILL has been sent; give the kernel a moment
    while _alive(child_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child_pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "State:\tZ" not in status.read()
    except FileNotFoundError:
        return False


def test_a_server_process_gets_its_database_url(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from vetreport.serve import prefect_server

    started: list[dict[str, str]] = []

    class Recorded:
        def __init__(self, arguments: list[str], **options: Any) -> None:
            started.append(options["env"])

    monkeypatch.setattr(prefect_server.subprocess, "Popen", Recorded)
    monkeypatch.delenv("PREFECT_API_DATABASE_CONNECTION_URL", raising=False)
    url = "postgresql+asyncpg://postgres@127.0.0.1:5432/prefect"
    prefect_server.start_server_process(tmp_path, "127.0.0.1", 4200, database_url=url)
    prefect_server.start_server_process(tmp_path, "127.0.0.1", 4200)
    assert started[0]["PREFECT_API_DATABASE_CONNECTION_URL"] == url
    assert "PREFECT_API_DATABASE_CONNECTION_URL" not in started[1]  # SQLite under home
    assert started[1]["PREFECT_HOME"] == str(tmp_path)
