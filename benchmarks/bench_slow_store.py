"""A slow object store: the pipeline on SeaweedFS directly and behind a proxy that adds latency.

Production stores are not on the loopback: a request to MinIO across a data centre or to
AWS costs tens to hundreds of milliseconds whatever its size. This starts a real SeaweedFS
and a TCP proxy in front of its S3 port that holds every request for a fixed delay
(``VETREPORT_BENCH_DELAY_MS``, default 200) before passing it on, then runs the same work
on each endpoint, each on a bucket of its own holding the same uploads:

- ``batch``: ``ingest_keys`` over the demo year's uploads (17 schools, 172 files), as the
  sweep or a burst would: seconds and files/s;
- ``report``: one school's corrected file ingested alone, five times over (an event's
  run): seconds from the call to the record, median and worst;
- ``publish``: aggregate and publish the year;
- ``republish``: one more corrected file ingested, then aggregate and publish again, as the
  service does after each burst. The first aggregation leaves a digest of the ledger
  (vetreport.curate.ledger), so this one reads a record per new upload, not one per upload
  of the year. ``VETREPORT_BENCH_DIGESTS=0`` runs it without digests, for comparison.

And the requests the proxy passed, per file and per phase: what the delay multiplies.

Run:

    .venv/bin/python -m benchmarks.run bench_slow_store
    VETREPORT_BENCH_DELAY_MS=50 .venv/bin/python -m benchmarks.run bench_slow_store
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from vetreport.aggregate.compute import aggregate
from vetreport.bucket.store import open_store
from vetreport.curate.ingest import ingest_keys
from vetreport.demo.generator import build_demo_uploads
from vetreport.publish.writer import publish
from vetreport.serve.seaweedfs import start_seaweedfs

YEAR = 2023
CORRECTIONS = 5
METHODS = (b"GET ", b"PUT ", b"POST", b"HEAD", b"DELE")


class DelayProxy:
    """Forward TCP to a target, holding each HTTP request's first bytes for ``delay`` s."""

    def __init__(self, target_port: int, delay_seconds: float) -> None:
        self.target_port, self.delay = target_port, delay_seconds
        self.requests = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        self._ready.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", 0)
        )
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _connection(self, client_in: Any, client_out: Any) -> None:
        try:
            server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_out.close()
            return

        async def upstream() -> None:
            while data := await client_in.read(65536):
                if data[:4] in METHODS:  # a new request on this connection
                    self.requests += 1
                    await asyncio.sleep(self.delay)
                server_out.write(data)
                await server_out.drain()
            server_out.close()

        async def downstream() -> None:
            while data := await server_in.read(65536):
                client_out.write(data)
                await client_out.drain()
            client_out.close()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)


def timed(work: Callable[[], Any]) -> float:
    """Seconds one call takes."""
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def run_on(endpoint: str, bucket: str, uploads: dict[str, bytes], proxy: DelayProxy | None):
    """The three phases on one endpoint; returns figures by phase."""
    os.environ["VETREPORT_S3_ENDPOINT_URL"] = endpoint
    os.environ["VETREPORT_S3_ADDRESSING"] = "path"
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "any")  # the gateway runs without identities
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "any")
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="any",
        aws_secret_access_key="any",
    )
    client.create_bucket(Bucket=bucket)
    client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    store = open_store(f"s3://{bucket}")
    for key, body in uploads.items():
        store.put(key, body)
    keys = sorted(uploads)

    def requests() -> int:
        return proxy.requests if proxy else 0

    figures: dict[str, Any] = {}
    before = requests()
    seconds = timed(lambda: ingest_keys(store, keys))
    figures["batch"] = (seconds, len(keys) / seconds, (requests() - before) / len(keys))

    key = next(k for k in keys if k.endswith("/staff.xlsx") or k.endswith("/staff.csv"))
    latencies, counts = [], []
    for attempt in range(CORRECTIONS):
        body = uploads[key] if attempt % 2 else uploads[key] + b"\n"  # a new version each time
        store.put(key, body)
        before = requests()
        latencies.append(timed(lambda: ingest_keys(store, [key])))
        counts.append(requests() - before)
    figures["report"] = (statistics.median(latencies), max(latencies), statistics.median(counts))

    before = requests()
    seconds = timed(lambda: publish(store, aggregate(store, YEAR)))
    figures["publish"] = (seconds, requests() - before)

    store.put(key, uploads[key] + b"\n\n")  # one more correction
    ingest_keys(store, [key])
    before = requests()
    seconds = timed(lambda: publish(store, aggregate(store, YEAR)))
    figures["republish"] = (seconds, requests() - before)
    return figures


def _without_digests() -> None:
    """Aggregations that leave no ledger digest (the comparison run)."""
    import vetreport.aggregate.compute as compute

    plain = compute.read_ledger_view
    compute.read_ledger_view = lambda store, years, write_digest=False: plain(store, years)


def main() -> None:
    """Run the phases on SeaweedFS directly and through the delaying proxy; print figures."""
    delay_ms = float(os.environ.get("VETREPORT_BENCH_DELAY_MS", "200"))
    if os.environ.get("VETREPORT_BENCH_DIGESTS", "1") == "0":
        _without_digests()
    uploads = {
        key: body
        for key, body in build_demo_uploads(YEAR).items()
        if key.startswith(f"uploads/{YEAR}/")
    }
    with tempfile.TemporaryDirectory(prefix="bench-slow-store-") as folder:
        server = start_seaweedfs(Path(folder) / "data")
        try:
            s3_port = int(server.endpoint.rsplit(":", 1)[1])
            proxy = DelayProxy(s3_port, delay_ms / 1000)
            load = os.getloadavg()[0]
            results = {
                "direct": run_on(server.endpoint, "direct", uploads, None),
                f"+{delay_ms:g} ms": run_on(
                    f"http://127.0.0.1:{proxy.port}", "delayed", uploads, proxy
                ),
            }
        finally:
            server.stop(grace_seconds=2)
    print(f"SeaweedFS, {len(uploads)} uploads of the demo year; load average {load:.2f} at start")
    print(
        f"{'store':>10} | {'batch s':>8} | {'files/s':>7} | {'req/file':>8} | "
        f"{'report p50 s':>12} | {'report max s':>12} | {'req/report':>10} | "
        f"{'publish s':>9} | {'req/publish':>11} | {'republish s':>11} | {'req/republish':>13}"
    )
    for name, figures in results.items():
        batch, report, published = figures["batch"], figures["report"], figures["publish"]
        again = figures["republish"]
        print(
            f"{name:>10} | {batch[0]:8.1f} | {batch[1]:7.1f} | {batch[2]:8.1f} | "
            f"{report[0]:12.2f} | {report[1]:12.2f} | {report[2]:10.0f} | "
            f"{published[0]:9.1f} | {published[1]:11d} | {again[0]:11.1f} | {again[1]:13d}"
        )


if __name__ == "__main__":
    main()
