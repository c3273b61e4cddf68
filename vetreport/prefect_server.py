"""A local Prefect server for the embedded default: find one, or start one and wait for it.

What belongs here: deciding which Prefect API the command line talks to. If
``PREFECT_API_URL`` is set, that server is used as it is. Otherwise a server on
127.0.0.1:4200 is used when it answers, and started (SQLite, state under var/prefect/)
when it does not. The started server keeps running after the command exits so the runs
stay visible in the UI; ``vetreport server stop`` (``make down``) stops it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
START_TIMEOUT_SECONDS = 120


def state_dir() -> Path:
    """Where the local server keeps its database, log and pid file."""
    root = Path(os.environ.get("VETREPORT_VAR_DIR", Path.cwd() / "var"))
    return root / "prefect"


def api_url(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str:
    """The API address of a local server."""
    return f"http://{host}:{port}/api"


def is_healthy(url: str, timeout_seconds: float = 2.0) -> bool:
    """Say whether a Prefect API answers its health check."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout_seconds) as reply:
            return reply.status == 200
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError):
        return False


def ensure_server(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> str:
    """Return the API URL to use, starting a local server when none is reachable."""
    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        if not is_healthy(configured):
            raise RuntimeError(f"PREFECT_API_URL={configured} does not answer")
        return configured
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
    return url


def _start(host: str, port: int) -> None:
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    environment = dict(os.environ)
    environment["PREFECT_HOME"] = str(directory)
    environment.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    environment.setdefault("PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT", "false")
    log = (directory / "server.log").open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=environment,
        start_new_session=True,
    )
    (directory / "server.pid").write_text(str(process.pid))


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


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop a process started in its own session, with everything it started.

    SIGTERM first, then SIGKILL if the group has not exited within 20 seconds.
    """
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
            process.wait(timeout=wait)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
