"""The sweep's batches run side by side, so none may hold part of a school another one holds.

Each batch ends by rewriting the upload list of every school it touched from the ledger as
it sees it; a school split across two concurrent batches could be left with a list that
misses the other batch's uploads. The sweep runs here against the session's Prefect test
server on a local bucket holding two years of the demo, with batches far smaller than a
school's uploads, and every batch the flow hands to ingest is recorded.

Batches run on a pool of processes when the machine has more than one CPU
(``VETREPORT_INGEST_PROCESSES``): what they write must be what the same batches write on
threads of one process, object for object.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest

from vetreport.bucket.keys import school_index_key
from vetreport.bucket.store import open_store
from vetreport.curate.shards import school_of
from vetreport.demo.generator import build_demo_uploads

pytestmark = pytest.mark.integration
YEARS = (2022, 2023)
SCHOOLS = 6  # of the demo's 17, with the bureau's files: enough to cut schools in two


def demo_uploads(years: tuple[int, ...]) -> dict[str, bytes]:
    """The bureau's and the first schools' demo uploads of these years."""
    uploads = {
        key: body
        for year in years
        for key, body in build_demo_uploads(year).items()
        if key.startswith(f"uploads/{year}/")
    }
    schools = sorted({school_of(key) for key in uploads} - {"_city"})[:SCHOOLS]
    return {key: body for key, body in uploads.items() if school_of(key) in {"_city", *schools}}


def test_a_sweep_never_splits_a_school_between_batches(
    prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import flows.ingest
    from vetreport.curate.ingest import ingest_keys

    store = open_store(tmp_path / "bucket")
    uploads = demo_uploads(YEARS)
    for key, body in uploads.items():
        store.put(key, body)
    batches: list[list[str]] = []
    lock = threading.Lock()

    def recording_ingest_keys(store_arg, keys, *args, **kwargs):  # type: ignore[no-untyped-def]
        with lock:
            batches.append(list(keys))
        return ingest_keys(store_arg, keys, *args, **kwargs)

    monkeypatch.setattr(flows.ingest, "ingest_keys", recording_ingest_keys)
    monkeypatch.setenv("VETREPORT_INGEST_PROCESSES", "1")  # threads: the recorder sees them
    # A school has about ten uploads a year: batches of 7 keys would cut every one of
    # them in two if keys were simply sliced.
    results = flows.ingest.ingest_uploads(
        str(tmp_path / "bucket"), sorted(uploads), label="small", batch_size=7
    )

    assert sorted(result["key"] for result in results) == sorted(uploads)
    school_batches = [batch for batch in batches if "/_city/" not in batch[0]]
    assert len(school_batches) > 2
    seen: dict[str, int] = {}
    for number, batch in enumerate(school_batches):
        for key in batch:
            assert seen.setdefault(school_of(key), number) == number, (
                f"{school_of(key)} is in batches {seen[school_of(key)]} and {number}"
            )
    # ... and every school's upload list names every one of its uploads
    for year in YEARS:
        for school in {school_of(key) for key in uploads if f"/{year}/" in key} - {"_city"}:
            index = json.loads(store.get(school_index_key(year, school, "json")))
            listed = {entry["key"] for entry in index["uploads"]}
            expected = {key for key in uploads if key.startswith(f"uploads/{year}/{school}/")}
            assert expected <= listed, f"{year} {school}: missing {sorted(expected - listed)}"


def test_batches_on_processes_write_what_batches_on_threads_write(
    prefect_server: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    import flows.ingest
    from tests.compare_buckets import compare

    bucket = tmp_path / "bucket"
    store = open_store(bucket)
    uploads = demo_uploads((2023,))
    for key, body in uploads.items():
        store.put(key, body)

    outcomes = {}
    for processes in ("2", "1"):
        monkeypatch.setenv("VETREPORT_INGEST_PROCESSES", processes)
        results = flows.ingest.ingest_uploads(
            str(bucket), sorted(uploads), label=f"on-{processes}", batch_size=20
        )
        outcomes[processes] = sorted((result["key"], result["outcome"]) for result in results)
        target = tmp_path / f"on-{processes}"
        target.mkdir()
        for zone in bucket.iterdir():
            if zone.name != "uploads":
                shutil.move(zone, target / zone.name)

    assert outcomes["2"] == outcomes["1"]
    assert len(outcomes["2"]) == len(uploads)
    assert "accepted" in {outcome for _, outcome in outcomes["2"]}
    zones = ("reports", "ledger", "curated")
    assert compare(tmp_path / "on-2", tmp_path / "on-1", zones) == []
    # each batch ran as a task run of the flow run, as it does on threads
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["ingest-on-2"]))
        )
        assert len(runs) == 1
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id={"any_": [runs[0].id]}))
    batch_runs = [run for run in tasks if run.name.startswith("ingest-batch")]
    assert len(batch_runs) >= 3
    assert all(run.state is not None and run.state.is_completed() for run in batch_runs)
