"""An event storm on the running service: every school uploads at once, three times over,
with its notifications duplicated and out of order (tests/event_storm.py says how).

This is the reduced storm of ``make test``: all 17 demo schools x the datasets in
``DATASETS`` (staff) x 3 rounds, on the service of tests/service_harness.py (Prefect on
PostgreSQL, a versioned moto bucket notifying SQS, ``vetreport serve --sqs-queue-url``).
The full storm, every school dataset, runs in ``make bench BENCH=bench_event_storm``
(benchmarks/bench_event_storm.py), which checks the same invariants and prints figures:
it takes far longer than the serial test step may grow (figures in docs/benchmarks.md,
"An event storm on the running service"). With two datasets instead of one this test
took 10 min at a load average of 6 to 13, eight of them in the storm.

The invariants: one aggregate run per round (burst) of the year; every uploaded version
one ledger record and its report, and no record of a version nobody uploaded; the
submission that counts for each key is its newest; the published tables equal a clean run
over the final files, ingested and published directly into a folder bucket.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.event_storm import Round, describe, describe_round, run_storm, storm_problems
from tests.service_harness import running_service

pytestmark = [pytest.mark.integration, pytest.mark.serial, pytest.mark.timeout(1500)]
YEAR = 2023
DATASETS = ("staff",)  # every school's (11 CSV files, 6 workbooks): 17 keys
QUIET_SECONDS = 20  # the aggregation's quiet window, as tests/integration/test_service.py


@pytest.fixture(scope="module")
def service(
    s3_endpoint: str, prefect_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("prefect-storm")
    seeded = ("/_city/", "/school_profile.", *(f"/{dataset}." for dataset in DATASETS))
    environment = {"VETREPORT_AGGREGATE_QUIET_SECONDS": str(QUIET_SECONDS)}
    with running_service(
        s3_endpoint, prefect_database_url, home, YEAR, seeded, environment
    ) as running:
        yield running


def test_a_storm_of_uploads_and_mangled_notifications_gives_one_aggregation_a_burst(
    service: dict, tmp_path_factory: pytest.TempPathFactory
) -> None:
    def progress(storm_round: Round) -> None:
        print(describe_round(storm_round), flush=True)

    result = run_storm(service, YEAR, DATASETS, QUIET_SECONDS, progress=progress)
    print(describe(result))
    assert len(result.stormed_keys) == 17 * len(DATASETS)
    assert [len(storm_round.uploads) for storm_round in result.rounds] == [17, 8, 17]
    problems = storm_problems(service, result, tmp_path_factory.mktemp("clean-run"))
    assert problems == [], "\n".join(problems)
