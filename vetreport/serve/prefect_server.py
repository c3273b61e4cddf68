"""A local Prefect server for the embedded default: find one, or start one and wait for it.

What belongs here: deciding which Prefect API the command line talks to. If
``PREFECT_API_URL`` is set, that server is used as it is: that is how to use any other
server on purpose. Otherwise vetreport uses its own server on 127.0.0.1:4200
(``VETREPORT_PREFECT_PORT`` to change the port), starting it (SQLite, state under
var/prefect/) when nothing answers there. When a server answers there that vetreport did
not start (its ``PREFECT_HOME``, read from the server's ``/api/admin/settings``, is not
var/prefect/: a developer's own server, another checkout's), the command refuses
(``ServerConflict``) and says which server it is and how to use another port, rather
than fill someone else's server with runs. The started server keeps running after the
command exits so the runs stay visible in the UI; ``vetreport server stop`` (``make
down``) stops it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
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


class ServerConflict(RuntimeError):
    """A port vetreport would use is held by a server it must not use without being told."""


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
    if is_healthy(url):
        _refuse_unless_started_here(url, port)
    else:
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


def server_home(url: str, timeout_seconds: float = 5.0) -> Path | None:
    """The ``PREFECT_HOME`` of the server at a Prefect API, or None if it does not say."""
    try:
        with urllib.request.urlopen(
            url.rstrip("/") + "/admin/settings", timeout=timeout_seconds
        ) as reply:
            home = json.loads(reply.read()).get("home")
    except (urllib.error.URLError, OSError, ValueError, AttributeError):
        return None
    return Path(home) if isinstance(home, str) and home else None


def server_version(url: str, timeout_seconds: float = 5.0) -> str | None:
    """The Prefect version of the server at a Prefect API, or None if it does not say."""
    try:
        with urllib.request.urlopen(
            url.rstrip("/") + "/admin/version", timeout=timeout_seconds
        ) as reply:
            version = json.loads(reply.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return version if isinstance(version, str) else None


def _refuse_unless_started_here(url: str, port: int) -> None:
    """Raise ServerConflict unless the server at url keeps its state in our var/prefect/."""
    home = server_home(url)
    if home is not None and home.resolve() == state_dir():
        return
    version = server_version(url)
    what = f"Prefect {version}" if version else "Prefect (version unknown)"
    where = f"its PREFECT_HOME is {home}" if home else "it does not say where its database is"
    raise ServerConflict(
        f"A Prefect server that vetreport did not start answers on {url} ({what}; {where}; "
        f"vetreport's own keeps its database in {state_dir()}). vetreport will not put its "
        "runs, deployments and automations on it unasked.\n"
        f"  - to start vetreport's own server on another port:  "
        f"VETREPORT_PREFECT_PORT={_free_port_after(port)} make demo   (or make up)\n"
        f"  - to use that server on purpose:  PREFECT_API_URL={url} make demo"
    )


def _free_port_after(port: int) -> int:
    """The first port after ``port`` that nothing listens on (a suggestion, not a claim)."""
    for candidate in range(port + 1, port + 100):
        with socket.socket() as probe:
            try:
                probe.bind((DEFAULT_HOST, candidate))
            except OSError:
                continue
            return candidate
    return port + 100


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

    The UI it serves calls this server's API. ``--port`` moves only the API: the UI's
    address of the API (``/ui-settings`` ``api_url``, setting ``PREFECT_SERVER_UI_API_URL``,
    legacy ``PREFECT_UI_API_URL``) defaults to ``PREFECT_API_URL``, else to
    ``http://PREFECT_SERVER_API_HOST:PREFECT_SERVER_API_PORT/api`` (4200 by default), so
    without these settings a server on another port would serve a UI showing the runs of
    whatever server is on 4200. Analytics and promotional content are off unless the
    environment says otherwise; ``extra_env`` (e.g. a shorter scheduler loop for tests) is
    applied last. The database is SQLite under home unless ``database_url`` names another,
    e.g. ``postgresql+asyncpg://user:password@host:5432/prefect`` (the server creates its
    tables there on start).
    """
    environment = dict(os.environ)
    environment.pop("PREFECT_API_URL", None)
    environment["PREFECT_HOME"] = str(home)
    environment["PREFECT_SERVER_API_HOST"] = host
    environment["PREFECT_SERVER_API_PORT"] = str(port)
    environment.pop("PREFECT_UI_API_URL", None)  # the legacy name would be read second
    environment["PREFECT_SERVER_UI_API_URL"] = api_url(_browser_host(host), port)
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


def _browser_host(host: str) -> str:
    """The host a browser on this machine reaches a server bound to ``host`` at."""
    return DEFAULT_HOST if host in ("0.0.0.0", "::", "") else host


def stop_server() -> bool:
    """Stop a server this module started; return whether one was running."""
    return stop_recorded_process(state_dir() / "server.pid")


def stop_recorded_process(pid_file: Path) -> bool:
    """Stop the process group whose leader's pid a file records; forget it; say if it ran."""
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
    stop_process_groups([process], grace_seconds)


def stop_process_groups(processes: list[subprocess.Popen], grace_seconds: float = 20) -> None:
    """Stop several process groups at once: SIGTERM to each, one shared grace, then SIGKILL.

    N workers that each take their time to stop cost one grace period, not N.
    """
    stopping = []
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            stopping.append(process)
        except ProcessLookupError:
            process.wait()
    deadline = time.monotonic() + grace_seconds
    while stopping and time.monotonic() < deadline:
        for process in stopping:
            process.poll()
        stopping = [process for process in stopping if _group_alive(process.pid)]
        if stopping:
            time.sleep(0.2)
    for process in stopping:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    for process in processes:
        process.wait(timeout=10)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
