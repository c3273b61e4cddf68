"""A local Prefect server for the embedded default: find one, or start one and wait for it.

What belongs here: deciding which Prefect API the command line talks to. If
``PREFECT_API_URL`` is set, that server is used as it is. Otherwise a server on
127.0.0.1:4200 (``VETREPORT_PREFECT_PORT`` to change the port) is used when it answers,
and started (SQLite, state under var/prefect/) when it does not. The started server keeps
running after the command exits so the runs stay visible in the UI; ``vetreport server
stop`` (``make down``) stops it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from vetreport.settings import load_settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200  # the default of VETREPORT_PREFECT_PORT (vetreport.settings)
START_TIMEOUT_SECONDS = 120
# Settings of every Prefect server we start, here and in infra/compose.yaml (a test checks).
SERVER_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
}


def state_dir() -> Path:
    """Where the local server keeps its database, log and pid file."""
    root = load_settings().var_dir.resolve()
    return root / "prefect"


def local_port() -> int:
    """The port of the local server: ``VETREPORT_PREFECT_PORT``, else 4200."""
    return load_settings().prefect_port


def api_url(host: str = DEFAULT_HOST, port: int | None = None) -> str:
    """The API address of a local server."""
    return f"http://{host}:{port or local_port()}/api"


def is_healthy(url: str, timeout_seconds: float = 2.0) -> bool:
    """Say whether a Prefect API answers its health check."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout_seconds) as reply:
            return reply.status == 200
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError):
        return False


def ensure_server(host: str = DEFAULT_HOST, port: int | None = None) -> str:
    """Return the API URL to use, starting a local server when none is reachable.

    Prefect reads its settings once, at import; when it is already imported, its settings
    are refreshed so that clients created from now on talk to this server rather than
    starting an ephemeral one of their own.
    """
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        if not is_healthy(configured):
            raise RuntimeError(f"PREFECT_API_URL={configured} does not answer")
        _refresh_prefect_settings()
        return configured
    port = port or local_port()
    url = api_url(host, port)
    if not is_healthy(url):
        _start(host, port)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not is_healthy(url):
            if time.monotonic() > deadline:
                log = state_dir() / "server.log"
                raise RuntimeError(f"the Prefect server did not start; see {log}")
            time.sleep(0.5)
    os.environ["PREFECT_API_URL"] = url
    _refresh_prefect_settings()
    return url


def _refresh_prefect_settings() -> None:
    """Make an already imported Prefect see the environment's PREFECT_API_URL."""
    context = sys.modules.get("prefect.context")
    if context is not None:
        context.refresh_global_settings_context()


def _start(host: str, port: int) -> None:
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    process = start_server_process(directory, host, port)
    (directory / "server.pid").write_text(str(process.pid))


def start_server_process(
    home: Path,
    host: str,
    port: int,
    extra_env: dict[str, str] | None = None,
    database_url: str | None = None,
) -> subprocess.Popen:
    """``prefect server start`` in its own session: state and server.log in home.

    The database is SQLite under home unless ``database_url`` names another, e.g.
    ``postgresql+asyncpg://user:password@host:5432/prefect`` (the server creates its tables
    there on start). Analytics and promotional content are off unless the environment says
    otherwise; ``extra_env`` (e.g. a shorter scheduler loop for tests) is applied last.
    """
    environment = dict(os.environ)
    environment.pop("PREFECT_API_URL", None)
    environment["PREFECT_HOME"] = str(home)
    for name, value in SERVER_DEFAULTS.items():
        environment.setdefault(name, value)
    if database_url:
        environment["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    environment.update(extra_env or {})
    log = (home / "server.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=environment,
        start_new_session=True,
    )


def stop_server() -> bool:
    """Stop a server this module started; return whether one was running."""
    pid_file = state_dir() / "server.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().strip())
    pid_file.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def stop_process_group(process: subprocess.Popen, grace_seconds: float = 20) -> None:
    """Stop a process started in its own session, with everything it started.

    SIGTERM to the group first; whatever of the group is still alive after
    ``grace_seconds`` (the leader, or a child such as a flow run still trying to report to
    a server that has gone) gets SIGKILL.
    """
    group = process.pid
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        process.wait()
        return
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        process.poll()
        if not _group_alive(group):
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    process.wait(timeout=10)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
