"""The running service for integration tests and benchmarks: a ``prefect server start`` on
PostgreSQL, a versioned moto bucket notifying an SQS queue, and ``vetreport serve
--sqs-queue-url`` polling it, each in its own process group.

What belongs here: starting and stopping that service around a seeded bucket
(``running_service``), and what its users share to watch it (``start_prefect_server``,
the webhook ``Recorder``). tests/integration/test_service.py and test_event_storm.py use
it through fixtures; benchmarks/bench_event_storm.py through ``running_service`` directly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3

from tests.conftest import free_port, make_bucket, seed_demo_year, wait_for
from vetreport.bucket.store import open_store
from vetreport.serve.prefect_server import is_healthy, start_server_process, stop_process_group

ROOT = Path(__file__).resolve().parents[1]
AUTOMATIONS = {
    "vetreport-ingest-on-upload",
    "vetreport-aggregate-when-quiet",
    "vetreport-run-failed-webhook",
    "vetreport-crash-silent-runs",
}


class Recorder(BaseHTTPRequestHandler):
    """The failure webhook's receiving end: keeps every POST it gets."""

    calls: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        Recorder.calls.append({"path": self.path, "body": body.decode("utf-8", "replace")})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def start_prefect_server(
    home: Path, database_url: str, port: int | None = None
) -> tuple[subprocess.Popen, str]:
    """``prefect server start`` on the database (scheduler every 5 s); wait until healthy."""
    port = port or free_port()
    process = start_server_process(
        home,
        "127.0.0.1",
        port,
        {"PREFECT_UI_ENABLED": "false", "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5"},
        database_url=database_url,
    )
    url = f"http://127.0.0.1:{port}/api"
    wait_for(lambda: is_healthy(url), 150, "the Prefect server")
    return process, url


@contextmanager
def running_service(
    s3_endpoint: str,
    database_url: str,
    home: Path,
    year: int,
    seeded: tuple[str, ...],
    environment: dict[str, str] | None = None,
) -> Iterator[dict[str, Any]]:
    """The service on a fresh versioned moto bucket whose year is seeded with the demo
    uploads whose key contains one of ``seeded`` (ingested and published as version 1).

    Yields what its users need: the processes (a user that restarts one puts the new one
    back in ``processes``), the Prefect settings, the store and its boto3 clients, the
    queue and the bucket's notification configuration, the schools and the serve log.
    Prefect's API settings point at the server inside the block. ``environment`` adds
    to or overrides the service's settings.
    """
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server, api_url = start_prefect_server(home, database_url)
    processes: dict[str, subprocess.Popen] = {"server": server}
    Recorder.calls = []
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        name = make_bucket(s3_endpoint, versioned=True)
        store_url = f"s3://{name}"
        store = open_store(store_url)
        uploads = seed_demo_year(store, year, seeded)

        s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
        sqs = boto3.client("sqs", endpoint_url=s3_endpoint, region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName=f"n-{name}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        notifications = {
            "QueueConfigurations": [
                {
                    "QueueArn": arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "uploads/"}]}},
                }
            ]
        }
        s3.put_bucket_notification_configuration(
            Bucket=name, NotificationConfiguration=notifications
        )

        env = dict(os.environ)
        env.update(
            PREFECT_API_URL=api_url,
            PREFECT_HOME=str(home),
            VETREPORT_S3_ENDPOINT_URL=s3_endpoint,
            VETREPORT_S3_ADDRESSING="path",
            VETREPORT_SWEEP_SECONDS="15",
            VETREPORT_RUNNER_LIMIT="4",
            # wider than the gaps between reports on a loaded 2-core machine
            VETREPORT_AGGREGATE_QUIET_SECONDS="20",
            VETREPORT_DEADLINES="{}",
            VETREPORT_FAILURE_WEBHOOK_URL=f"http://127.0.0.1:{hook.server_address[1]}/hook",
        )
        env.update(environment or {})
        processes["served"] = subprocess.Popen(
            [sys.executable, "-m", "vetreport.cli.main", "serve", "--bucket", store_url]
            + ["--sqs-queue-url", queue_url],
            cwd=ROOT,
            env=env,
            stdout=(home / "serve.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        with temporary_settings(updates={PREFECT_API_URL: api_url}):

            def ready() -> bool:
                with get_client(sync_client=True) as client:
                    names = {automation.name for automation in client.read_automations()}
                return names >= AUTOMATIONS

            wait_for(ready, 120, "the served deployments and their automations")
            # and every deployment added: "serving:" is printed once the runner has them all
            wait_for(
                lambda: b"serving: " in (home / "serve.log").read_bytes(),
                120,
                "the runner to serve",
            )
            yield {
                "processes": processes,
                "prefect_home": home,
                "api_url": api_url,
                "database_url": database_url,
                "store_url": store_url,
                "store": store,
                "bucket": name,
                "s3": s3,
                "sqs": sqs,
                "queue_url": queue_url,
                "notifications": notifications,
                "schools": sorted({key.split("/")[2] for key in uploads} - {"_city"}),
                "seeded": uploads,
                "log": home / "serve.log",
            }
    finally:
        for role in ("served", "server"):
            if role in processes:
                stop_process_group(processes[role])
        hook.shutdown()
        hook.server_close()
