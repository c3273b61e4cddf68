"""The backfill: a year's (or every year's) unprocessed uploads fanned out over a work pool.

What belongs here: the two flows of a backfill and their deployments on a process work pool.

- ``backfill`` lists the uploads not in the ledger yet, ingests the bureau's files itself
  (they decide which school codes count), cuts the schools' keys into shards of whole
  schools (``vetreport.curate.shards``), starts one run of the ``ingest-shard/backfill``
  deployment per shard, waits for all of them, fails naming every shard that did not
  complete, and then aggregates and publishes once (the ``aggregate`` flow).
- ``ingest-shard`` ingests its keys with ``ingest_keys`` in batches of whole schools (the
  ``ingest-batch`` task of the ingest flow), on whichever worker of the pool took it.

Workers on any number of machines share the shards: each polls the pool, and a worker
started with ``--limit 1`` takes one shard at a time. Everything a shard writes is
idempotent per upload version (the ledger record is written last), so a backfill re-run
after a crashed shard ingests only what is still missing.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.states import Completed, State

from flows.aggregate import aggregate_and_publish
from flows.ingest import (
    DEFAULT_BATCH_SIZE,
    find_unprocessed_uploads,
    ingest_batch,
    ingest_in_batches,
    tag_flow_run,
)
from flows.pipeline import latest_upload_year
from vetreport.curate.ingest import split_city_first
from vetreport.curate.run_summary import outcome_tags
from vetreport.curate.shards import Shard, shard_by_school

SHARD_FLOW = "ingest-shard"
SHARD_DEPLOYMENT_NAME = "backfill"
SHARD_DEPLOYMENT = f"{SHARD_FLOW}/{SHARD_DEPLOYMENT_NAME}"
BACKFILL_DEPLOYMENT_NAME = "national"
DEFAULT_POOL = "vetreport"
# 50 schools are about 500 uploads: 15-25 s of work on one core, against the 5-10 s (idle)
# to 20-30 s (loaded) it costs to start a flow-run process, a fresh interpreter importing
# Prefect, Polars and Pandera. Larger shards spread that cost; aim for a few shards per
# worker slot, so the last round does not leave most slots idle (docs/benchmarks.md).
DEFAULT_SCHOOLS_PER_SHARD = 50
WORKER_TAG_PREFIX = "worker:"
READ_LIMIT = 200  # flow runs per API read (the server's default page size)
NO_WORKER_WARNING_SECONDS = 120  # say so when no shard has left Scheduled for this long


class BackfillError(RuntimeError):
    """A backfill could not finish: shards that did not complete, or uploads left over."""


@flow(name=SHARD_FLOW, flow_run_name="{label}", log_prints=True)
def ingest_shard(
    store_url: str,
    keys: list[str],
    label: str = "shard",
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> State:
    """Ingest one shard's keys in batches of whole schools, side by side on this worker.

    The run is tagged with the worker that ran it (``worker:{name}``) and ``outcome:…``
    for each outcome its uploads got; its Completed state's message gives the counts.
    """
    logger = get_run_logger()
    worker = os.environ.get("PREFECT__WORKER_NAME")  # set by the worker for its runs
    if worker:
        tag_flow_run(f"{WORKER_TAG_PREFIX}{worker}")
    # on threads: a worker's parallelism is its flow runs (--limit), each a process
    results = ingest_in_batches(store_url, keys, batch_size)
    processed = [result for result in results if not result["was_skipped"]]
    if processed:
        tag_flow_run(*outcome_tags(processed))
    message = shard_message(len(keys), results)
    logger.info("%s on %s: %s", label, worker or "this process", message)
    return Completed(message=message, data=results)


def shard_message(requested: int, results: list[dict[str, Any]]) -> str:
    """``500 keys: 480 processed (accepted 470, rejected 10), 20 already in the ledger``."""
    processed = [result for result in results if not result["was_skipped"]]
    outcomes = Counter(result["outcome"] for result in processed)
    counts = ", ".join(f"{outcome} {count}" for outcome, count in sorted(outcomes.items()))
    text = f"{requested} keys: {len(processed)} processed"
    if counts:
        text += f" ({counts})"
    text += f", {len(results) - len(processed)} already in the ledger"
    missing = requested - len(results)
    if missing:
        text += f", {missing} not taken (another worker's batch holds them)"
    return text


def backfill_run_name() -> str:
    """``backfill-2023``, or ``backfill-latest`` when the report year is left to the data."""
    from prefect.runtime import flow_run

    year = flow_run.parameters.get("report_year")
    return f"backfill-{year or 'latest'}"


@flow(name="backfill", flow_run_name=backfill_run_name, log_prints=True)
def backfill(
    store_url: str,
    report_year: int | None = None,
    year: int | None = None,
    schools_per_shard: int = DEFAULT_SCHOOLS_PER_SHARD,
    batch_size: int = DEFAULT_BATCH_SIZE,
    deployment: str = SHARD_DEPLOYMENT,
    status: str | None = None,
    poll_seconds: float = 2.0,
) -> dict[str, Any]:
    """Ingest the unprocessed uploads on the pool's workers, then publish once.

    Uploads of ``year`` (default: every year) are ingested; ``report_year`` (default: the
    latest year with uploads) is aggregated and published. Raises BackfillError, naming
    them, when shards did not complete or uploads are still unprocessed after every shard
    finished; nothing is published then. Run it again: what the shards finished stays done.
    """
    logger = get_run_logger()
    if "://" not in store_url:
        store_url = str(Path(store_url).resolve())  # workers run in other folders
    steps: dict[str, float] = {}  # seconds of each step, for the summary
    mark = time.perf_counter()
    keys = find_unprocessed_uploads(store_url, year)
    city_keys, school_keys = split_city_first(keys)
    steps["list"], mark = time.perf_counter() - mark, time.perf_counter()
    if city_keys:
        ingest_batch(store_url, city_keys)
    shards = shard_by_school(school_keys, schools_per_shard)
    steps["bureau"], mark = time.perf_counter() - mark, time.perf_counter()
    logger.info(
        "%d unprocessed uploads: %d of the bureau ingested here, %d of %d schools in %d "
        "shards of up to %d schools on %s",
        len(keys),
        len(city_keys),
        len(school_keys),
        sum(len(shard.schools) for shard in shards),
        len(shards),
        schools_per_shard,
        deployment,
    )
    started = start_shards(store_url, shards, deployment, batch_size)
    finished = wait_for_flow_runs(list(started), poll_seconds, logger)
    rows = shard_rows(shards, started, finished)
    steps["shards"], mark = time.perf_counter() - mark, time.perf_counter()
    if rows:
        create_table_artifact(
            key="backfill-shards", table=rows, description="The backfill's shards and their runs"
        )
    failed = [row for row in rows if row["state"] != "Completed"]
    if failed:
        raise BackfillError(
            f"{len(failed)} of {len(rows)} shards did not complete: "
            + "; ".join(f"{row['shard']} {row['state']}: {row['message']}" for row in failed)
            + ". Nothing was published; run the backfill again: it ingests only what is "
            "still missing."
        )
    left = sorted(set(find_unprocessed_uploads(store_url, year)) & set(keys))
    steps["check"], mark = time.perf_counter() - mark, time.perf_counter()
    if left:
        raise BackfillError(
            f"{len(left)} uploads are still unprocessed after every shard completed, e.g. "
            f"{left[:5]}: another worker's batch holds them, or a worker died on them "
            "(they are retried once its marker is older than "
            "VETREPORT_ATTEMPT_STALE_SECONDS). Nothing was published; run the backfill again."
        )
    report_year = report_year or latest_upload_year(store_url)
    summary = None
    if report_year is not None:
        summary = aggregate_and_publish(store_url, report_year, status)
    steps["publish"] = time.perf_counter() - mark
    logger.info("seconds by step: %s", ", ".join(f"{k} {v:.1f}" for k, v in steps.items()))
    return {
        "keys": len(keys),
        "city_keys": len(city_keys),
        "shards": rows,
        "publish": summary,
        "steps": steps,
    }


def start_shards(
    store_url: str, shards: list[Shard], deployment: str, batch_size: int
) -> dict[UUID, Shard]:
    """One run of the shard deployment per shard, scheduled now; not waited for here."""
    from prefect.deployments import run_deployment
    from prefect.runtime import flow_run

    parent = flow_run.get_id() or "local"
    started: dict[UUID, Shard] = {}
    for shard in shards:
        run = run_deployment(
            deployment,
            parameters={
                "store_url": store_url,
                "keys": list(shard.keys),
                "label": shard.label,
                "batch_size": batch_size,
            },
            flow_run_name=shard.label,
            timeout=0,
            tags=["vetreport", "backfill"],
            idempotency_key=f"{parent}-{shard.name}",
        )
        started[run.id] = shard
    return started


def wait_for_flow_runs(ids: list[UUID], poll_seconds: float, logger: Any = None) -> list[Any]:
    """Poll the API until every flow run is in a final state; return them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    reported = -1
    waiting_since = time.monotonic()
    while True:
        runs = []
        with get_client(sync_client=True) as client:
            for start in range(0, len(ids), READ_LIMIT):
                chunk = ids[start : start + READ_LIMIT]
                runs += client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=chunk)),
                    limit=len(chunk),
                )
        done = sum(1 for run in runs if run.state is not None and run.state.is_final())
        if logger is not None and done != reported:
            logger.info("%d of %d shards finished", done, len(ids))
        if done == len(ids) and len(runs) == len(ids):
            return runs
        if done != reported or any(
            run.state is not None and not run.state.is_scheduled() and not run.state.is_final()
            for run in runs
        ):
            waiting_since = time.monotonic()  # a shard is starting or running: workers are there
        elif logger is not None and time.monotonic() - waiting_since > NO_WORKER_WARNING_SECONDS:
            logger.warning(
                "no shard has started for %.0f s: is a worker polling the deployment's pool?",
                time.monotonic() - waiting_since,
            )
            waiting_since = time.monotonic()
        reported = done
        time.sleep(poll_seconds)


def shard_rows(
    shards: list[Shard], started: dict[UUID, Shard], finished: list[Any]
) -> list[dict[str, Any]]:
    """One row per shard: its name, schools, keys, run, final state, message and worker."""
    by_shard = {started[run.id].name: run for run in finished}
    rows = []
    for shard in shards:
        run = by_shard[shard.name]
        workers = [tag for tag in run.tags if tag.startswith(WORKER_TAG_PREFIX)]
        rows.append(
            {
                "shard": shard.name,
                "schools": f"{shard.schools[0]}…{shard.schools[-1]} ({len(shard.schools)})",
                "keys": len(shard.keys),
                "flow_run": run.name,
                "state": run.state.name if run.state else "unknown",
                "message": (run.state.message or "") if run.state else "",
                "worker": workers[0].removeprefix(WORKER_TAG_PREFIX) if workers else "",
            }
        )
    return rows


def backfill_deployments(pool: str) -> list[Any]:
    """The backfill's deployments on a process work pool, flows named by module path.

    ``ingest-shard/backfill`` is what the workers run. ``backfill/national`` lets the
    whole backfill be started from the UI or ``prefect deployment run``; it then holds a
    worker slot while it waits for its shards, so the pool needs one slot more than the
    shards use (``vetreport backfill`` runs it in the command's own process instead).
    """
    from prefect.deployments.runner import EntrypointType

    return [
        ingest_shard.to_deployment(
            name=SHARD_DEPLOYMENT_NAME,
            work_pool_name=pool,
            entrypoint_type=EntrypointType.MODULE_PATH,
            tags=["vetreport", "backfill"],
            description="Ingest one shard of a backfill (whole schools)",
        ),
        backfill.to_deployment(
            name=BACKFILL_DEPLOYMENT_NAME,
            work_pool_name=pool,
            entrypoint_type=EntrypointType.MODULE_PATH,
            tags=["vetreport", "backfill"],
            description="Fan a backfill out as shard runs on the pool, then publish once",
        ),
    ]


def register_backfill_deployments(pool: str) -> list[UUID]:
    """Create or update the backfill's deployments on the pool; return their ids."""
    return [deployment.apply() for deployment in backfill_deployments(pool)]
