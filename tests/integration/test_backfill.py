"""The backfill on a work pool: two process workers share the shards, and the result is the
one-process run's.

A full ``prefect server start`` on PostgreSQL (the session's database, as in
test_service.py) and two ``prefect worker start --type process`` subprocesses on a fresh
work pool, polling it every second with ``--limit 1`` each. The bucket is a synthetic
national year of 20 schools (202 uploads, ten of them bad). The one-process run
(``run_pipeline``, what ``vetreport run`` starts) goes first; its outputs are moved aside and
the backfill runs on the same uploads. Not on a copy of the bucket: a folder bucket names an
upload by its ETag and arrival time (the file's change time, which no copy keeps), so every
upload of a copy would be another upload, with other submission ids in every output.

Before that, a backfill whose shards crash: a second deployment of the shard flow whose
flow-run processes exit at once with status 1 (``command: false``), as a killed process
would. It must fail naming every shard and publish nothing; the re-run on the real
deployment must then give the one-process result.
"""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from tests.compare_buckets import compare
from tests.conftest import free_port, wait_for
from vetreport.bucket.store import open_store
from vetreport.curate.ledger import read_records
from vetreport.serve.prefect_server import (
    is_healthy,
    start_server_process,
    stop_process_group,
    stop_process_groups,
)

pytestmark = [pytest.mark.integration, pytest.mark.serial, pytest.mark.timeout(600)]
YEAR = 2023
SCHOOLS = 20
SCHOOLS_PER_SHARD = 10  # two shards, one a worker (--limit 1): more would cost a process start
OUTPUT_ZONES = ("published", "reports", "ledger", "curated", "quarantine")
CRASHING = "crashing"  # a deployment of ingest-shard whose processes exit 1 at once


@pytest.fixture(scope="module")
def pool(prefect_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A Prefect server on PostgreSQL, a fresh process work pool and two workers on it."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.backfill import backfill_deployments, register_backfill_deployments
    from vetreport.serve.workers import ensure_process_pool, online_workers, start_worker

    home = tmp_path_factory.mktemp("prefect")
    port = free_port()
    server = start_server_process(
        home, "127.0.0.1", port, {"PREFECT_UI_ENABLED": "false"}, database_url=prefect_database_url
    )
    api_url = f"http://127.0.0.1:{port}/api"
    workers: list[subprocess.Popen[Any]] = []
    try:
        wait_for(lambda: is_healthy(api_url), 150, "the Prefect server")
        with temporary_settings(updates={PREFECT_API_URL: api_url}):
            forget_prefect_services()
            name = f"backfill-test-{uuid4().hex[:8]}"
            assert ensure_process_pool(name)
            register_backfill_deployments(name)
            crashing = backfill_deployments(name)[0]
            crashing.name, crashing.job_variables = CRASHING, {"command": "false"}
            crashing.apply()
            names = [f"{name}-w1", f"{name}-w2"]
            workers = [
                start_worker(name, worker, api_url, home / f"{worker}.log", limit=1)
                for worker in names
            ]
            wait_for(lambda: set(names) <= set(online_workers(name)), 120, "two workers online", 1)
            yield {"name": name, "workers": names, "home": home}
    finally:
        stop_process_groups(workers)
        stop_process_group(server)
        forget_prefect_services()  # theirs talk to the server just stopped


def forget_prefect_services() -> None:
    """Stop the process's concurrency-slot services, so new ones talk to the current server.

    Prefect keeps one slot-acquisition service per set of limit names for the life of the
    process, with a client made for the API it first talked to. Earlier tests of the session
    aggregated the same year against the session's test server, so without this the
    aggregation here would acquire its year's slot there, release it here, and the next
    aggregation would wait for that slot for ever; and after this test, later tests would
    ask this test's stopped server.
    """
    from prefect.concurrency.services import ConcurrencySlotAcquisitionWithLeaseService

    ConcurrencySlotAcquisitionWithLeaseService.drain_all(timeout=30)


def move_outputs(bucket: Path, target: Path) -> None:
    """Move everything the pipeline wrote (all but uploads/ and demo/) under target."""
    target.mkdir()
    for zone in bucket.iterdir():
        if zone.name not in ("uploads", "demo"):
            shutil.move(zone, target / zone.name)


def test_two_workers_give_the_one_process_result(pool: dict, tmp_path: Path) -> None:
    from flows.backfill import BackfillError, backfill
    from flows.pipeline import run_pipeline
    from vetreport.demo.national import write_national_bucket

    bucket = tmp_path / "bucket"
    written = write_national_bucket(bucket, SCHOOLS, 2023, (YEAR,))
    store = open_store(str(bucket))
    uploads = sorted(info.key for info in store.list("uploads/"))
    assert len(uploads) == written.files == 10 * SCHOOLS + 2

    alone = run_pipeline(str(bucket), YEAR)
    assert alone["ingested"] == len(uploads)
    move_outputs(bucket, tmp_path / "one-process")

    with pytest.raises(BackfillError) as failed:
        backfill(
            str(bucket),
            YEAR,
            schools_per_shard=SCHOOLS_PER_SHARD,
            deployment=f"ingest-shard/{CRASHING}",
            poll_seconds=1,
        )
    message = str(failed.value)
    assert "2 of 2 shards did not complete" in message
    assert all(f"shard-{n}-of-2 Crashed" in message for n in (1, 2)), message
    assert not (bucket / "published").exists()  # nothing published
    assert len(read_records(store, [YEAR])) == 2  # only the bureau's files, ingested here

    summary = backfill(str(bucket), YEAR, schools_per_shard=SCHOOLS_PER_SHARD, poll_seconds=1)

    shards = summary["shards"]
    assert [row["shard"] for row in shards] == ["shard-1-of-2", "shard-2-of-2"]
    assert {row["state"] for row in shards} == {"Completed"}
    assert sum(row["keys"] for row in shards) == len(uploads) - 2  # the bureau's: before
    assert {row["worker"] for row in shards} == set(pool["workers"])  # both took shards
    assert summary["publish"]["version"] == 1 and summary["publish"]["is_new_version"]

    # every upload: exactly one ledger record and one report, as in the one-process run
    records = read_records(store, [YEAR])
    assert Counter(record["key"] for record in records) == Counter(uploads)
    reports = {record["report_key"] for record in records}
    assert len(reports) == len(uploads) and all(store.exists(key) for key in reports)
    assert Counter(record["outcome"] for record in records)["rejected"] == written.bad_files

    assert compare(tmp_path / "one-process", bucket, OUTPUT_ZONES) == []

    # a re-run finds nothing to do, starts no shard and publishes nothing new
    again = backfill(str(bucket), YEAR, schools_per_shard=SCHOOLS_PER_SHARD, poll_seconds=1)
    assert again["keys"] == 0 and again["shards"] == []
    assert not again["publish"]["is_new_version"]
    assert compare(tmp_path / "one-process", bucket, OUTPUT_ZONES) == []
