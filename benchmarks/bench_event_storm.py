"""The full event storm on the running service: every school dataset, three rounds.

All 17 demo schools x every school dataset (170 upload keys) are uploaded within seconds,
then half of them again with other bytes, then all of them again; a share of each round's
S3 notifications is sent again, shuffled, some twice, and the earlier rounds' notifications
of re-uploaded keys after the new ones (tests/event_storm.py has the storm and its
invariants). The service is the one the integration tests run (tests/service_harness.py):
``prefect server start`` on a throwaway PostgreSQL database, a versioned moto bucket
notifying SQS, ``vetreport serve --sqs-queue-url`` with four runner slots and a 20 s
aggregation quiet window. tests/integration/test_event_storm.py runs a reduced storm
(two datasets) in ``make test``; this one takes longer than that step may grow.

Prints, per round and in total: uploads, notifications re-sent, ingest-upload flow runs,
aggregate runs, published versions, seconds; then checks the invariants (one aggregation
per round, one ledger record and report per uploaded version, the newest version counts,
published tables equal to a clean run's) and exits non-zero, listing them, if one broke.

Run: ``make bench BENCH=bench_event_storm`` or
``.venv/bin/python -m benchmarks.run bench_event_storm``. ``VETREPORT_BENCH_DATASETS=staff,
enrollment`` storms only those datasets. Needs PostgreSQL on ``VETREPORT_TEST_POSTGRES_URL``
(default ``postgresql://postgres@127.0.0.1:5432/postgres``, trust auth).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

YEAR = 2023
QUIET_SECONDS = 20


def main() -> None:
    """Start the service, storm it, print the figures and fail loudly on a broken invariant."""
    from moto.server import ThreadedMotoServer

    from tests.conftest import POSTGRES_ADMIN_URL
    from tests.event_storm import describe, describe_round, run_storm, storm_problems
    from tests.service_harness import running_service
    from vetreport.serve.postgres import create_database, drop_database, prefect_database_url

    chosen = os.environ.get("VETREPORT_BENCH_DATASETS", "")
    datasets = tuple(name.strip() for name in chosen.split(",") if name.strip()) or None
    load_before = Path("/proc/loadavg").read_text().strip()
    work = Path(tempfile.mkdtemp(prefix="vetreport-storm-"))
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    os.environ["VETREPORT_S3_ENDPOINT_URL"] = endpoint
    os.environ["VETREPORT_S3_ADDRESSING"] = "path"
    name = create_database(POSTGRES_ADMIN_URL, "vetreport_bench")
    database_url = prefect_database_url(POSTGRES_ADMIN_URL, name)
    seeded = (
        ("/_city/", *(f"/{dataset}." for dataset in datasets)) if datasets else ("/",)
    )  # the year as the storm's keys and the registry
    problems: list[str] = []
    try:
        home = work / "prefect"
        home.mkdir()
        environment = {"VETREPORT_AGGREGATE_QUIET_SECONDS": str(QUIET_SECONDS)}
        with running_service(endpoint, database_url, home, YEAR, seeded, environment) as service:
            result = run_storm(
                service,
                YEAR,
                datasets,
                QUIET_SECONDS,
                progress=lambda done: print(describe_round(done), flush=True),
            )
            print(describe(result), flush=True)
            problems = storm_problems(service, result, work / "clean")
    finally:
        drop_database(POSTGRES_ADMIN_URL, name)
        moto.stop()
    print(
        f"load average: {load_before} at start, "
        f"{Path('/proc/loadavg').read_text().strip()} at end, {os.cpu_count()} CPUs"
    )
    if problems:
        print(f"{len(problems)} INVARIANTS BROKEN (work folder kept: {work}):")
        for line in problems:
            print(f"  {line}")
        sys.exit(1)
    print("invariants: all held")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
