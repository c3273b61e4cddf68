"""Upload latency with the service running: upload -> report, and upload -> republished tables.

Starts a throwaway Prefect server (``prefect server start``, SQLite in a temporary folder),
seeds a local bucket with the 2023 demo uploads (ingested and published directly), runs
``vetreport serve --watch`` on it, then drops corrected staff files into uploads/ the way a
school's sync client would (write elsewhere, rename into place):

- upload -> report: from the rename to the ledger record of that version (the report is
  written just before it), for every upload;
- upload -> republished tables: from the rename to a new ``published/2023/latest.json``
  version; every ``REPUBLISH_EVERY``-th upload waits for it, so the debounced aggregation
  (quiet window ``VETREPORT_AGGREGATE_QUIET_SECONDS``, 10 s) has its quiet moment.

Run: ``.venv/bin/python -m benchmarks.run bench_latency`` or
``.venv/bin/python -m benchmarks.bench_latency [UPLOADS]``.
Targets: report p50 <= 3 s and p95 <= 10 s; republished p50 <= 30 s.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def _version(bucket: Path) -> int:
    try:
        return json.loads((bucket / f"published/{YEAR}/latest.json").read_text())["version"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def _seed(bucket: Path) -> list[str]:
    from vetreport.aggregate.compute import aggregate
    from vetreport.bucket.store import open_store
    from vetreport.curate.ingest import ingest_keys
    from vetreport.demo.generator import build_demo_uploads
    from vetreport.publish.writer import publish

    store = open_store(bucket)
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
    from vetreport.bucket.keys import submission_id

    work = Path(tempfile.mkdtemp(prefix="vetreport-latency-"))
    bucket = work / "bucket"
    schools = _seed(bucket)
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    home = work / "prefect"
    home.mkdir()
    server = start_server_process(home, "127.0.0.1", port, {"PREFECT_UI_ENABLED": "false"})
    env = dict(os.environ)
    env["PREFECT_HOME"] = str(home)
    service = None
    try:
        if not _wait(lambda: is_healthy(api), 180, 0.5):
            raise RuntimeError(f"Prefect server did not start; see {home / 'server.log'}")
        env["PREFECT_API_URL"] = api
        env["VETREPORT_DEADLINES"] = "{}"
        service = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vetreport.cli.main",
                "serve",
                "--watch",
                "--bucket",
                str(bucket),
            ],
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
            record = (
                bucket
                / f"ledger/{YEAR}/{school}/staff"
                / f"{submission_id(key, hashlib.md5(body, usedforsecurity=False).hexdigest())}.json"
            )
            before = _version(bucket)
            staging = bucket / f".upload-{index}"
            staging.write_bytes(body)
            started = time.monotonic()
            os.replace(staging, bucket / key)
            if not _wait(record.exists, 120):
                raise RuntimeError(f"no report for upload {index} ({key}); see {log}")
            report_seconds.append(time.monotonic() - started)
            if (index + 1) % REPUBLISH_EVERY == 0:
                if not _wait(lambda b=before: _version(bucket) > b, 180, 0.2):
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
    figures = run(uploads)
    print(
        f"uploads: {int(figures['uploads'])}; load average (1 min) {load_before:.2f} at start, "
        f"{os.getloadavg()[0]:.2f} at end, {os.cpu_count()} CPUs\n"
        f"upload -> report: p50 {figures['report_p50']:.2f} s (target 3), "
        f"p95 {figures['report_p95']:.2f} s (target 10), max {figures['report_max']:.2f} s\n"
        f"upload -> republished: p50 {figures['republish_p50']:.2f} s (target 30), "
        f"max {figures['republish_max']:.2f} s over {int(figures['republish_samples'])} samples"
    )


if __name__ == "__main__":
    main()
