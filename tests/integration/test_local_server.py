"""The local Prefect server as `make demo` and `make up` start it, on a port other than 4200.

`vetreport server start` runs in a subprocess, as an operator runs it, with its own var
folder and ``VETREPORT_PREFECT_PORT`` set to a free port: the real ``prefect server start``
(SQLite under var/prefect, UI on), started through ``start_server_process``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port, wait_for
from vetreport.serve.prefect_server import is_healthy

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[2]


def vetreport(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vetreport.cli.main", *arguments],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def environment(var_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """The command's environment: no PREFECT_* of the machine, its own var folder and port."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    env.update(
        VETREPORT_VAR_DIR=str(var_dir),
        VETREPORT_PREFECT_PORT=str(port),
        VETREPORT_FILES_PORT=str(free_port()),
        PREFECT_HOME=str(var_dir.parent / "client-home"),
        **extra,
    )
    return env


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("local-server")
    port = free_port()
    env = environment(base / "var", port)
    api = f"http://127.0.0.1:{port}/api"
    try:
        started = vetreport("server", "start", env=env)
        assert started.returncode == 0, started.stdout + started.stderr
        assert started.stdout.strip() == api
        yield {"base": base, "port": port, "api": api, "env": env}
    finally:
        vetreport("server", "stop", env=env)
        wait_for(lambda: not is_healthy(api, 1), 60, "the local server to stop")


def test_the_ui_on_another_port_calls_the_api_on_that_port(local_server: dict[str, Any]) -> None:
    port = local_server["port"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui-settings", timeout=30) as reply:
        settings = json.load(reply)
    assert settings["api_url"] == f"http://127.0.0.1:{port}/api"


def test_the_server_vetreport_started_is_recognised_and_used(local_server: dict[str, Any]) -> None:
    again = vetreport("server", "start", env=local_server["env"])
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == local_server["api"]


def test_make_demo_refuses_a_server_it_did_not_start_and_says_what_to_do(
    local_server: dict[str, Any],
) -> None:
    # Another checkout (another var folder) finds this server on its port: to it, this is
    # someone else's server, as the developer's own `prefect server start` on 4200 would be.
    base, port, api = local_server["base"], local_server["port"], local_server["api"]
    bucket = base / "other-bucket"
    other = environment(base / "other-var", port)
    refused = vetreport("demo", "--bucket", str(bucket), env=other)
    assert refused.returncode == 3
    message = " ".join(refused.stderr.split())  # as printed, wrapped to the terminal
    assert f"A Prefect server that vetreport did not start answers on {api}" in message
    assert f"its PREFECT_HOME is {base / 'var' / 'prefect'}" in message
    assert "VETREPORT_PREFECT_PORT=" in message
    assert f"PREFECT_API_URL={api} make demo" in message
    assert not bucket.exists() or not any(bucket.rglob("*.csv"))  # refused before any work
    assert not (base / "other-var" / "prefect" / "server.pid").exists()

    chosen = vetreport("server", "start", env={**other, "PREFECT_API_URL": api})
    assert chosen.returncode == 0, chosen.stderr  # used on purpose: fine
    assert chosen.stdout.strip() == api
