"""The ingest flow: a batch of upload keys in, reports, curated data and ledger records out.

Keys are processed in batches (one task per batch, not per file) so that thousands of
uploads cost a handful of task runs. Bureau files go first: the registry they carry decides
which school codes are accepted.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event
from prefect.states import Completed, State
from prefect.task_runners import ProcessPoolTaskRunner

from vetreport.bucket.keys import key_owner
from vetreport.bucket.store import ObjectStore, StoreError, open_store
from vetreport.curate.collection import (
    SIGNED_OFF_OUTCOME,
    SchoolStatus,
    read_school_status,
    status_markdown,
)
from vetreport.curate.ingest import (
    ingest_keys,
    split_city_first,
    suspect_keys,
    unprocessed_upload_keys,
)
from vetreport.curate.ledger import HELD
from vetreport.curate.run_summary import (
    ALREADY_PROCESSED_TAG,
    outcome_tags,
    read_upload_report,
    report_markdown,
    run_message,
)
from vetreport.curate.shards import batch_processes, whole_school_batches
from vetreport.receive.events import changes_to_announce, emit_accepted
from vetreport.settings import load_settings
from vetreport.validate.checks import REJECTED

# Keys a sweep hands one ingest task. Normalising and the Pandera and row checks run once
# per batch and dataset, at a cost that grows slower than the rows: 2,048 keys a batch
# ingest 3,000 uploads in about 15% less time than 512 (docs/benchmarks.md), for about
# 120 MiB more memory per process; BATCH_BYTES still caps the bytes held at once.
DEFAULT_BATCH_SIZE = 2048
# The name of the final state of an ingest-upload run whose upload was rejected: a
# Completed state (the run did its job) that the UI shows, and filters, as "Rejected".
REJECTED_STATE_NAME = "Rejected"
# ... and of one that arrived while the school's year was locked (kept, counts nothing).
LOCKED_STATE_NAME = "Locked"
SIGNED_OFF_EVENT = "vetreport.school.signed-off"


def retry_on_storage_errors(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only transient storage failures; a bad file is not made better by retrying."""
    try:
        state.result()
    except StoreError:
        return True
    except Exception:
        return False
    return False


@task(
    name="ingest-batch",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=retry_on_storage_errors,
)
def ingest_batch(store_url: str, keys: list[str]) -> list[dict[str, Any]]:
    """Ingest one batch of keys and return what happened to each."""
    store = open_store(store_url)
    return [asdict(result) for result in ingest_keys(store, keys)]


@task(
    name="find-unprocessed-uploads",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_condition_fn=retry_on_storage_errors,
)
def find_unprocessed_uploads(store_url: str, year: int | None = None) -> list[str]:
    """List uploads/ and return the keys whose current version has no ledger record."""
    return unprocessed_upload_keys(open_store(store_url), year)


@task(name="announce-counted-changes", retries=3, retry_delay_seconds=[1, 5, 15])
def announce_counted_changes(results: list[dict[str, Any]]) -> int:
    """Send a ``vetreport.submission.accepted`` event per upload that changed what counts.

    An accepted upload, or a refusal or deletion that took away what its key counted.
    These events start re-aggregation; return how many were sent.
    """
    return emit_accepted(results)


def _summary_artifact(processed: list[dict[str, Any]]) -> None:
    create_table_artifact(
        key="ingest-summary",
        table=[
            {"key": r["key"], "outcome": r["outcome"], "report": r["report_key"]}
            for r in processed[:500]
        ],
        description=f"Validation outcome of {len(processed)} uploads",
    )


def ingest_in_batches(
    store_url: str, school_keys: list[str], batch_size: int, processes_setting: int = 1
) -> list[dict[str, Any]]:
    """The schools' keys in batches of whole schools, side by side; suspects last, apart.

    Batches run on threads of this process, or on a pool of spawned processes when
    ``batch_processes`` says so for ``processes_setting``: validation holds the GIL, so
    threads of one process share one core. Prefect's process pool spawns (a fork after
    Polars has started its threads can deadlock) and keeps each process for the batches
    that follow.

    Keys a worker already died on (``suspect_keys``) are not put beside the others: they
    go last, in one call in a spawned process of their own that tries each alone while
    nothing else runs, so a file that kills its process again takes nothing else with
    it (not even this flow run's process) and is refused by the next sweep, and the
    files that were only beside it are judged as usual.
    """
    logger = get_run_logger()
    suspects = sorted(suspect_keys(open_store(store_url), school_keys))
    if suspects:
        logger.warning(
            "%d upload(s) were in a batch whose process died: each is tried alone, last",
            len(suspects),
        )
    apart = set(suspects)
    batches = whole_school_batches([key for key in school_keys if key not in apart], batch_size)
    processes = batch_processes(batches, processes_setting)
    results: list[dict[str, Any]] = []
    if processes > 1:
        logger.info("%d batches on %d processes", len(batches), processes)
        with ProcessPoolTaskRunner(max_workers=processes) as runner:
            futures = [
                runner.submit(ingest_batch, {"store_url": store_url, "keys": batch})
                for batch in batches
            ]
            results.extend(result for future in futures for result in future.result())
    else:
        futures = [ingest_batch.submit(store_url, batch) for batch in batches]
        results.extend(result for future in futures for result in future.result())
    if suspects:
        # in a process of their own: a file that kills it again takes down neither this
        # flow run nor a batch beside it (the run fails; the next sweep refuses the file)
        with ProcessPoolTaskRunner(max_workers=1) as runner:
            alone = runner.submit(ingest_batch, {"store_url": store_url, "keys": suspects})
            results.extend(alone.result())
    return results


@flow(name="ingest", flow_run_name="ingest-{label}", log_prints=True)
def ingest_uploads(
    store_url: str,
    keys: list[str],
    label: str = "batch",
    batch_size: int = DEFAULT_BATCH_SIZE,
    announce: bool = True,
) -> list[dict[str, Any]]:
    """Ingest the given upload keys: bureau files first, then schools' in parallel batches.

    A school's keys are never split between two batches: each batch ends by rewriting the
    upload list of every school it touched, from the ledger as that batch sees it.

    The run is tagged ``outcome:{outcome}`` once for each outcome its uploads got.
    """
    logger = get_run_logger()
    city_keys, school_keys = split_city_first(keys)
    results: list[dict[str, Any]] = []
    if city_keys:
        results.extend(ingest_batch(store_url, city_keys))
    results.extend(
        ingest_in_batches(store_url, school_keys, batch_size, load_settings().ingest_processes)
    )
    processed = [result for result in results if not result["was_skipped"]]
    logger.info(
        "%d keys: %d processed, %d already in the ledger",
        len(results),
        len(processed),
        len(results) - len(processed),
    )
    if processed:
        _summary_artifact(processed)
        tag_flow_run(*outcome_tags(processed))
        changes = changes_to_announce(processed)
        if announce and changes:
            announce_counted_changes(changes)
        if announce:
            announce_signoffs(processed)
    return results


@flow(
    name="ingest-upload",
    flow_run_name="ingest-{year}-{school}-{dataset}",
    log_prints=True,
)
def ingest_upload(
    store_url: str,
    key: str,
    year: int = 0,
    school: str = "",
    dataset: str = "",
    version: str = "",
) -> dict[str, Any] | State:
    """Ingest one upload (started by its upload event); report it and announce acceptance.

    The object's current version is read whatever version the event named, so events out
    of order converge; a version already in the ledger, or that another run (a sweep's
    batch) is processing at that moment, is skipped (tag ``already-processed``).
    Otherwise the run is tagged ``outcome:{outcome}``, and a
    rejected upload ends the run in a Completed state named ``Rejected``; the state's
    message gives the outcome and counts either way. Calling the flow still returns the
    ingest result.
    """
    logger = get_run_logger()
    tag_flow_run(f"year:{year}", f"school:{school}", dataset)
    results = ingest_batch(store_url, [key])
    store = open_store(store_url)
    if not results and store.exists(key):
        # another run (a sweep's batch, most often) has marked this version as being
        # processed: its record and report will come from there
        message = f"{key}: being ingested by another run; its record will say what happened"
        logger.info("%s (version %s)", message, version)
        tag_flow_run(ALREADY_PROCESSED_TAG)
        return Completed(message=message, data={"key": key, "was_skipped": True})
    if not results:
        logger.info("%s no longer exists; nothing to do", key)
        return {"key": key, "outcome": "missing", "was_skipped": True}
    result = results[0]
    if result["was_skipped"]:
        message = run_message(result, None)
        logger.info("%s (version %s)", message, version)
        tag_flow_run(ALREADY_PROCESSED_TAG)
        return Completed(message=message, data=result)
    report = read_upload_report(store, result)
    message = run_message(result, report)
    logger.info("%s; report at %s", message, result["report_key"])
    tag_flow_run(*outcome_tags([result]))
    create_markdown_artifact(
        key=artifact_key("report", year, school, dataset),
        markdown=report_markdown(store, result, report),
        description=f"校验结果 / validation report of {key}",
    )
    changes = changes_to_announce([result])
    if changes:
        announce_counted_changes(changes)
    announce_signoffs([result])
    owner = key_owner(key)
    if owner is not None and not key.startswith(f"uploads/{owner[0]}/_city/"):
        try:  # a courtesy: the upload is recorded and reported already
            status_artifact(store, read_school_status(store, *owner))
        except StoreError:
            raise
        except Exception:
            get_run_logger().exception("no status artifact for %s %s", *owner)
    if result["outcome"] == REJECTED:
        return Completed(name=REJECTED_STATE_NAME, message=message, data=result)
    if result["outcome"] == HELD:
        return Completed(name=LOCKED_STATE_NAME, message=message, data=result)
    return Completed(message=message, data=result)


def status_artifact(store: ObjectStore, status: SchoolStatus) -> None:
    """The school's status artifact: the same key for each run, so the UI shows its history."""
    create_markdown_artifact(
        key=artifact_key("collection", status.year, status.school_code),
        markdown=status_markdown(store, status),
        description=f"{status.school_code} {status.year}: {status.state_zh}",
    )


def announce_signoffs(results: list[dict[str, Any]]) -> int:
    """Send ``vetreport.school.signed-off`` for each sign-off accepted in these results."""
    sent = 0
    for result in results:
        owner = key_owner(result["key"])
        if result["was_skipped"] or result["outcome"] != SIGNED_OFF_OUTCOME or owner is None:
            continue
        year, school = owner
        emit_event(
            event=SIGNED_OFF_EVENT,
            resource={
                "prefect.resource.id": f"vetreport.school.{year}.{school}",
                "vetreport.year": str(year),
            },
            payload={"year": year, "school": school, "key": result["key"]},
        )
        sent += 1
    return sent


def tag_flow_run(*extra: str) -> None:
    """Add tags (year, school, outcome...) to the running flow run, for filtering in the UI.

    The run's current tags are read from the API, not from the run context (which keeps
    the tags the run started with), so tags added earlier in the run are kept.
    """
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    run_id = flow_run.get_id()
    if not run_id or not extra:
        return
    with get_client(sync_client=True) as client:
        current = set(client.read_flow_run(run_id).tags)
        if not set(extra) <= current:
            client.update_flow_run(run_id, tags=sorted(current | set(extra)))


def artifact_key(*parts: Any) -> str:
    """An artifact key from parts: lowercase letters, digits and dashes only."""
    text = "-".join(str(part) for part in parts if part not in (None, ""))
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")


def sweep_run_name() -> str:
    """``sweep-2023`` for one year, ``sweep-all-years`` for the scheduled sweep."""
    from prefect.runtime import flow_run

    year = flow_run.parameters.get("year")
    return f"sweep-{year}" if year else "sweep-all-years"


@flow(name="sweep", flow_run_name=sweep_run_name, log_prints=True)
def sweep_uploads(store_url: str, year: int | None = None) -> list[dict[str, Any]]:
    """Find uploads that no event brought in and ingest them."""
    keys = find_unprocessed_uploads(store_url, year)
    if not keys:
        return []
    return ingest_uploads(store_url, keys, label=f"sweep-{year or 'all'}")
