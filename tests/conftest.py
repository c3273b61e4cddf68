"""Shared fixtures: a real S3 endpoint (moto's ThreadedMotoServer over HTTP), a Prefect test
server for the whole session, and stores of both kinds."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

# Credentials for the in-process S3 endpoint only; set before any boto3 client exists.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)
# The tests upload for 2021-2024; the default collection calendar opens 2021-2023 only.
os.environ.setdefault("VETREPORT_OPEN_YEARS", "2021-2024")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on a free loopback port, shared by the session."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    previous = os.environ.get("VETREPORT_S3_ENDPOINT_URL")
    os.environ["VETREPORT_S3_ENDPOINT_URL"] = endpoint
    os.environ["VETREPORT_S3_ADDRESSING"] = "path"
    yield endpoint
    if previous is None:
        os.environ.pop("VETREPORT_S3_ENDPOINT_URL", None)
    server.stop()


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.5) -> Any:
    """Poll until the predicate returns something truthy, and return it; fail after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def flow_runs(flow_name: str) -> list[Any]:
    """The runs of a flow on the Prefect server the settings point at (newest 200)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])), limit=200
        )


def seed_demo_year(store: Any, year: int, parts: tuple[str, ...]) -> list[str]:
    """Put the year's demo uploads whose key contains one of ``parts``, ingest them and
    publish version 1; return their keys (the state a running service starts from)."""
    from vetreport.aggregate.compute import aggregate
    from vetreport.curate.ingest import ingest_keys
    from vetreport.demo.generator import build_demo_uploads
    from vetreport.publish.writer import publish

    uploads = {
        key: body
        for key, body in build_demo_uploads(year).items()
        if key.startswith(f"uploads/{year}/") and any(part in key for part in parts)
    }
    for key, body in uploads.items():
        store.put(key, body)
    ingest_keys(store, sorted(uploads))
    publish(store, aggregate(store, year))
    return sorted(uploads)


def make_bucket(endpoint: str, versioned: bool = False) -> str:
    """Create a fresh bucket on the endpoint and return its name."""
    name = f"vet-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=name)
    if versioned:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


@pytest.fixture(params=["local", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh empty store of each kind: a local folder and a bucket on the S3 endpoint."""
    if request.param == "local":
        return str(tmp_path / "bucket")
    endpoint = request.getfixturevalue("s3_endpoint")
    return f"s3://{make_bucket(endpoint)}"


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One Prefect test server (SQLite, temporary) for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


# -- which tests are quick ----------------------------------------------------------------
# `make test-fast` deselects integration, service, browser and backtest tests. Besides the
# explicit marks, a test is integration when it talks to the S3 endpoint (moto over HTTP) or
# the Prefect test server, or lives under tests/integration; everything under
# tests/backtests is a backtest.


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.path)).parts
        callspec = getattr(item, "callspec", None)
        uses_s3 = "s3_endpoint" in item.fixturenames or (
            callspec is not None
            and "s3" in (callspec.params.get("store_url"), callspec.params.get("store"))
        )
        if "integration" in parts or uses_s3 or "prefect_server" in item.fixturenames:
            item.add_marker(pytest.mark.integration)
        if "backtests" in parts:
            item.add_marker(pytest.mark.backtest)
